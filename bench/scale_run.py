"""Run one stage as its CLI would, and at exit record this process's own peak RSS.

`python -m bench.scale_run OUT.json -m MODULE ARGS...` runs MODULE as `python -m MODULE ARGS...` would;
`python -m bench.scale_run OUT.json -c CODE` runs CODE as `python -c CODE` would. At interpreter exit it
writes `{"self_kb": ..., "children_kb": ..., "modules": [...]}` to OUT.json: the peak RSS of this process
alone (the driver; what the issue's memory goals are about), of the largest child it waited for (pool
workers), and the modules it had imported, so that a baseline can import exactly those and nothing else.
`os.wait4` in the parent cannot tell these apart: it reports the larger of the two. Only the standard
library is imported here, so the wrapper adds nothing to what it measures.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import sys


def _report(out: str) -> None:
    record = {"self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
              "modules": sorted(name for name in list(sys.modules) if not name.startswith(("__main__", "__mp_main__")))}
    tmp = f"{out}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, out)


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] not in ("-m", "-c"):
        raise SystemExit("usage: python -m bench.scale_run OUT.json (-m MODULE ARGS... | -c CODE ARGS...)")
    out, mode, target, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    atexit.register(_report, out)
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
