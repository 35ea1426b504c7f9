"""Run every benchmark and write bench/results.json (records: stage, metric, value, peer, peer_value, ratio,
machine). Later issues add their stages to STAGES."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from bench import ingest_bench, loader_bench, training_bench
from bench.common import machine

STAGES = {"ingest": ingest_bench.run, "loader": loader_bench.run, "training": training_bench.run}
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
        stage_records, profile = STAGES[name](work / name)
        records += stage_records
        profiles[name] = profile
    out = {"machine": machine(), "records": records, "profiles": profiles}
    RESULTS.write_text(json.dumps(out, indent=1))
    for r in records:
        print(f"{r['stage']:<22} {r['metric']:<28} {r['value']:>10.1f}  vs {r['peer']:<40} "
              f"{r['peer_value']:>9.1f}  ratio {r['ratio']:.2f}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
