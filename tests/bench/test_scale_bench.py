"""The scale bench's machinery on a few hundred clips: every stage measured, counts right, goals judged."""

from __future__ import annotations

import json
import math
import struct

import pytest

from bench.scale_bench import STAGES, TARGET_CLIPS, ScaleConfig, run_bench, table
from bench.scale_synth import CORPORA, synthesise


def test_synthesis_is_deterministic_and_reused(tmp_path):
    a = synthesise(tmp_path / "a", 40, seed=3)
    b = synthesise(tmp_path / "b", 40, seed=3)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "corpora").rglob("*.wav"))
    assert len(files) == 40 and {f.parts[1] for f in files} == {c for c, _ in CORPORA}
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert a.seconds == b.seconds and 40 * 0.05 <= a.seconds <= 40 * 0.1
    head = (tmp_path / "a" / files[0]).read_bytes()[:44]
    assert head[:4] == b"RIFF" and struct.unpack("<HHI", head[20:28]) == (1, 1, 16000)  # PCM, mono, 16 kHz
    before = {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in files}
    assert synthesise(tmp_path / "a", 40, seed=3) == a  # the same (clips, seed): nothing rewritten
    assert before == {f: (tmp_path / "a" / f).stat().st_mtime_ns for f in files}
    synthesise(tmp_path / "a", 20, seed=3)  # another count: the tree is replaced
    assert len(list((tmp_path / "a" / "corpora").rglob("*.wav"))) == 20
    with pytest.raises(ValueError, match="clips=2"):
        synthesise(tmp_path / "c", 2)


@pytest.mark.slow
def test_every_stage_is_measured_on_300_clips(tmp_path):
    out = run_bench(ScaleConfig(clips=300, work=tmp_path / "w", out=tmp_path / "scale.json", workers=0))
    assert json.loads((tmp_path / "scale.json").read_text()) == json.loads(json.dumps(out))
    assert out["counts"]["diet_all_clips"] == 300 and out["counts"]["load_diet_clips"] == 300
    assert out["counts"]["shards"] == 1  # ~3,200 clips per shard
    assert {"cores", "ram_gb", "cpu", "commit"} <= set(out["machine"]) and out["machine"]["cores"] >= 1
    by_name = {r["stage"]: r for r in out["stages"]}
    assert list(by_name) == [s.name for s in STAGES]
    for r in out["stages"]:
        if not r["measured"]:  # only planning, and only while ingest has no --plan-only
            assert r["stage"] == "plan" and "--plan-only" in r["why"] and not r["failed"], r["why"]
            assert all(not g["met"] for g in r["goals"].values())
            continue
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 0 and r["baseline"]["rss_mb"] > 0
        assert r["baseline"]["seconds"] > 0 and r["baseline"]["modules"] > 0 and math.isfinite(r["bytes_per_clip"])
        assert r["at_target"]["clips"] == TARGET_CLIPS
        # the line through two sizes never slopes down, so the target is at least what N measured (the
        # baseline, measured apart, can land a few hundred KB either side of a flat stage's peak)
        assert r["at_target"]["seconds"] >= r["seconds"] * (1 - 1e-9) and r["baseline"]["seconds"] > 0
        assert r["at_target"]["rss_mb"] >= r["peak_rss_mb"] * (1 - 1e-9)
        for g in r["goals"].values():
            assert g["met"] == (g["at_target"] <= g["limit"])
    assert by_name["diet"]["goals"]["seconds"]["limit"] == 10 and by_name["diet"]["goals"]["rss_mb"]["limit"] == 500
    assert by_name["ingest"]["goals"]["rss_mb"]["limit"] == 1500
    assert table(out).row_count == len(STAGES)
