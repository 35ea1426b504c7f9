"""Run every benchmark and write bench/results.json (records: stage, metric, value, peer, peer_value, ratio,
machine). `python -m bench STAGE ...` runs some stages and replaces only their records in results.json."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path

from bench.common import machine

# stage name -> module under bench/ whose run(work) -> (records, profile) measures it against its naive peer
STAGES = {"ingest": "ingest_bench", "loader": "loader_bench", "training": "training_bench",
          "descriptors": "descriptors_bench", "rsa": "rsa_bench", "store": "store_bench",
          "frames": "frames_bench", "learning": "learning_bench"}
RESULTS = Path(__file__).with_name("results.json")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    wanted = (argv if argv is not None else sys.argv[1:]) or list(STAGES)
    work = Path(__file__).with_name("work")
    records, profiles = [], {}
    for name in wanted:
        if name not in STAGES:
            print(f"error: unknown bench stage {name!r}; known: {list(STAGES)}", file=sys.stderr)
            return 1
        stage_records, profile = importlib.import_module(f"bench.{STAGES[name]}").run(work / name)
        records += [{**r, "bench_stage": name} for r in stage_records]
        profiles[name] = profile
    if RESULTS.exists():  # keep the other stages' last results
        old = json.loads(RESULTS.read_text())
        kept = [r for r in old.get("records", []) if r.get("bench_stage", r["stage"]) not in wanted]
        records = kept + records
        profiles = {**{k: v for k, v in old.get("profiles", {}).items() if k not in wanted}, **profiles}
    out = {"machine": machine(), "records": records, "profiles": profiles}
    RESULTS.write_text(json.dumps(out, indent=1))
    for r in records:
        print(f"{r['stage']:<22} {r['metric']:<28} {r['value']:>10.1f}  vs {r['peer']:<40} "
              f"{r['peer_value']:>9.1f}  ratio {r['ratio']:.2f}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
