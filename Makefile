# audiodiet — every stage as a target. The first target that needs Python creates .venv and installs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
# The uv that bootstraps the install; the same version is locked as a dev dependency (tests/test_lock.py).
UV_VERSION := 0.13.9
DATA      ?=
CORPORA   ?= ingest/corpora.toml
CODEC     ?=
WORKERS   ?=
SCHEDULER ?=
COLLECTION ?=
DEMO      ?= demo
DIET      ?= all
STATS_CROPS ?= 10000
ROOT       = $(or $(DATA),./data)
comma := ,
MODEL   ?=
DATASET ?=
SEEDS   ?= 5
NAME    ?= study
# --flag value for each comma-separated item of a variable: $(call each,--model,$(MODEL))
each = $(foreach v,$(subst $(comma), ,$(2)),$(1) $(v))
# The demo prints each stage's wall time: $(call timed,NAME,COMMAND)
timed = t=$$(date +%s); $(2) || exit 1; echo "[demo] $(1): $$(( $$(date +%s) - t )) s"

# Optional flags only when set, so the config file's [settings] (data, codec, ...) apply otherwise.
INGEST_FLAGS = $(if $(DATA),--data $(DATA)) $(if $(CODEC),--codec $(CODEC)) $(if $(WORKERS),--workers $(WORKERS)) \
               $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(COLLECTION),--collection $(COLLECTION))
# Exit status 3 means "finished, some input quarantined": a success for make, with the count printed.
OK3 = rc=$$?; if [ $$rc -eq 3 ]; then echo "finished with quarantined input (counted above): see catalog/*/quarantine/"; \
      elif [ $$rc -ne 0 ]; then exit $$rc; fi

.PHONY: help venv lock demo test test-fast shards transfer verify diets stats stream pretrain embed describe sql knn \
        probe rsa tsne report bench bench-scale gpu-check gpu-wheels lint clean

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

# Every install reads uv.lock (exact versions and hashes of every package, transitive ones included).
# `--locked` refuses when pyproject.toml and uv.lock disagree: run `make lock` on purpose, then commit both.
$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every module's .pyc is written once at install. Where PYTHONDONTWRITEBYTECODE is set (CI
# sandboxes), Python otherwise compiles torch & co. from source in every process: `import torch, pyarrow, duckdb,
# polars, librosa` took 7.3 s without .pyc files and 4.2 s with them (the compile takes ~30 s once).
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --extra dev --python $(PY) --no-progress --compile-bytecode
	touch $@

venv: $(VENV)/.installed ## create .venv and install exactly what uv.lock lists (project editable, dev extra)

lock: | $(UV) ## re-resolve uv.lock from pyproject.toml on purpose (LOCK_FLAGS=--upgrade to take newer releases)
	$(UV) lock $(LOCK_FLAGS)

# Baselines join the demo only when their weights are present locally (never downloaded): WEIGHTS/yamnet.pt
# (converted from yamnet.h5 with `python -m featurestore convert-yamnet`) and WEIGHTS/WavLM-Base+.pt.
WEIGHTS ?= weights
DEMO_MODELS = run:speech-v2-s42,run:nonspeech-v2-s42,run:all-v2-s42,byola-v2:random:tiny,byola-v2:random
DEMO_BANNER = Synthetic demo, not the study: tiny models pre-trained for 3 epochs on a few minutes of synthetic \
              audio, probed on a 50-clip ESC-50 look-alike and 60 short AVA-Speech-like movies. Every number is \
              a real result of this run.

demo: venv ## the whole pipeline on the built-in demo corpus: shards, tiny pre-training, store, probes, RSA, report
	@$(call timed,synthesise,$(PY) -m ingest demo --out $(DEMO))
	@$(call timed,shards,$(MAKE) --no-print-directory shards CORPORA=$(DEMO)/corpora.toml DATA=$(DEMO)/data)
	@$(call timed,transfer,$(MAKE) --no-print-directory transfer \
	  DATASETS="esc50=esc50:$(DEMO)/ESC-50-master ava=ava_speech:$(DEMO)/AVA-Speech" DATA=$(DEMO)/data)
	@$(call timed,verify,$(MAKE) --no-print-directory verify DATA=$(DEMO)/data)
	@$(call timed,stats,$(MAKE) --no-print-directory stats DATA=$(DEMO)/data STATS_CROPS=1000)
	@$(call timed,stream,$(MAKE) --no-print-directory stream DATA=$(DEMO)/data BATCH=8)
	rm -rf $(DEMO)/data/models $(DEMO)/data/store $(DEMO)/data/reports  # the demo's runs start afresh each time
	@$(call timed,pretrain,for diet in speech nonspeech all; do \
	  $(MAKE) --no-print-directory pretrain DATA=$(DEMO)/data DIET=$$diet CONFIG=tiny BATCH=8 EPOCHS=3 || exit 1; done)
	@$(call timed,embed,$(MAKE) --no-print-directory embed DATA=$(DEMO)/data MODEL="$(DEMO_MODELS)$$( \
	  [ -f $(WEIGHTS)/yamnet.pt ] && printf ',yamnet:$(WEIGHTS)/yamnet.pt')$$( \
	  [ -f $(WEIGHTS)/WavLM-Base+.pt ] && printf ',wavlm-base-plus:$(WEIGHTS)/WavLM-Base+.pt')")
	@$(call timed,describe,$(MAKE) --no-print-directory describe DATA=$(DEMO)/data)
	@$(call timed,probe,$(MAKE) --no-print-directory probe DATA=$(DEMO)/data SEEDS=3)
	@$(call timed,rsa,$(MAKE) --no-print-directory rsa DATA=$(DEMO)/data PERMUTATIONS=1000)
	@$(call timed,tsne,$(MAKE) --no-print-directory tsne DATA=$(DEMO)/data)
	@$(call timed,report,$(MAKE) --no-print-directory report DATA=$(DEMO)/data NAME=demo BANNER="$(DEMO_BANNER)")
	@echo "[demo] report: $(DEMO)/data/reports/demo/report.html"

shards: venv ## ingest CORPORA (TOML) into DATA/shards/<collection>/ and write the speech/nonspeech/all diets
	$(PY) -m ingest shards --config $(CORPORA) $(INGEST_FLAGS); $(OK3)

transfer: venv ## ingest labelled datasets: make transfer DATASETS="esc50=esc50:/data/ESC-50-master ..."
	$(PY) -m ingest transfer $(foreach d,$(DATASETS),--dataset $(d)) --data $(ROOT) $(if $(CODEC),--codec $(CODEC)) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)); $(OK3)

verify: venv ## re-read every shard under DATA: checksums, counts, decoding, catalog, DALI idx
	$(PY) -m shards verify $(ROOT)

diets: venv ## (re)write the speech/nonspeech/all indexes over DATA's pre-training shards
	$(PY) -m shards diet $(ROOT)

stats: venv ## compute each diet's log-mel normalisation stats once (STATS_CROPS random crops)
	$(PY) -m shards stats $(ROOT) --stats-crops $(STATS_CROPS)

stream: venv ## stream DIET through a loader (BACKEND=auto|torch|dali, BATCH=256): throughput + batch summary
	$(PY) -m shards stream $(ROOT) --diet $(DIET) --backend $(or $(BACKEND),auto) --batch-size $(or $(BATCH),256)

pretrain: venv ## pre-train BYOL-A: make pretrain DIET=nonspeech [CONFIG=tiny|paper|paper-v1|file.toml] [EPOCHS=] [BATCH=] [RUN=] [RESUME=1]
	$(PY) -m training pretrain --data $(ROOT) --diet $(DIET) $(if $(CONFIG),--config $(CONFIG)) \
	  $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(BATCH),--batch-size $(BATCH)) $(if $(RUN),--run $(RUN)) \
	  $(if $(RESUME),--resume)

embed: venv ## embed transfer datasets: make embed MODEL=run:all-v2-s42,byola-v2:random [DATASET=a,b] [DEVICE=] [WORKERS=] [SCHEDULER=]
	$(PY) -m featurestore embed --data $(ROOT) $(call each,--model,$(MODEL)) $(call each,--dataset,$(DATASET)) \
	  $(if $(DEVICE),--device $(DEVICE)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

describe: venv ## acoustic descriptors of the RSA items: make describe [DATASET=a,b] [SUBSET=rsa|tsne|all]
	$(PY) -m featurestore describe --data $(ROOT) $(call each,--dataset,$(DATASET)) $(if $(SUBSET),--subset $(SUBSET)) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

sql: venv ## read-only SQL over the store: make sql Q="select ..." [OUT=x.csv|x.parquet]
	$(PY) -m featurestore sql --data $(ROOT) "$(Q)" $(if $(OUT),--out $(OUT))

knn: venv ## exact cosine neighbours: make knn MODEL=run-all-v2-s42 KEY=<item key> [K=10]
	$(PY) -m featurestore knn --data $(ROOT) --model $(MODEL) --key "$(KEY)" -k $(or $(K),10)

probe: venv ## linear probes: make probe [MODELS=a,b] [DATASET=x,y] [SEEDS=5] [PROTOCOL=paper|evar]
	$(PY) -m analysis probe --data $(ROOT) $(if $(MODELS),--models $(MODELS)) $(if $(DATASET),--datasets $(DATASET)) \
	  --seeds $(SEEDS) $(if $(PROTOCOL),--protocol $(PROTOCOL))

rsa: venv ## RSA vs acoustic descriptors and between models: make rsa [MODELS=] [DATASET=] [PERMUTATIONS=10000]
	$(PY) -m analysis rsa --data $(ROOT) $(if $(MODELS),--models $(MODELS)) $(if $(DATASET),--datasets $(DATASET)) \
	  $(if $(PERMUTATIONS),--permutations $(PERMUTATIONS))

tsne: venv ## t-SNE of each dataset's t-SNE items (Fig. 2): make tsne [TSNE_MODEL=run-all-v2-s42] [DATASET=]
	$(PY) -m analysis tsne --data $(ROOT) $(if $(TSNE_MODEL),--model $(TSNE_MODEL)) $(if $(DATASET),--datasets $(DATASET))

report: venv ## DATA/reports/NAME/ report.html + report.md + figures: make report [NAME=study] [BANNER=]
	$(PY) -m analysis report --data $(ROOT) --name $(NAME) $(if $(BANNER),--banner "$(BANNER)")

test: venv ## the whole test suite (slow tests included), as CI runs it
	$(PY) -m pytest -n 2 -q

test-fast: venv ## the suite without tests marked slow
	$(PY) -m pytest -n 2 -q -m "not slow"

bench: venv ## benchmarks against their naive peers; writes bench/results.json
	$(PY) -m bench

bench-scale: venv ## N tiny clips (default 200000) through every stage, extrapolated to 3.85 M; writes bench/scale_results.json
	$(PY) -m bench.scale_bench --clips $(or $(N),200000)

gpu-check: ## on a GPU machine: DALI GPU pipeline, GPU parity, GPU throughput -> $$OUT or bench/gpu_check.json
	bash bench/gpu_check.sh

gpu-wheels: ## here: fetch and split the wheels gpu-check installs on a GPU machine without a registry (.whl/)
	bash bench/gpu_wheels.sh

lint: venv
	$(PY) -m ruff check .

clean: ## remove generated data (not the venv)
	rm -rf $(DEMO) bench/work bench/results.json bench/scale_results.json .pytest_cache
