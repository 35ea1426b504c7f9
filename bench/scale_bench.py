"""`make bench-scale [N=200000]`: every stage on N tiny clips, extrapolated to the paper's 3.85 M clips.

Each stage runs through its CLI (or, for `load_diet`, a `python -c` calling the public function) in a fresh
subprocess under `bench.scale_run`, which records the peak RSS of that process alone: the driver, which
is what the memory goals bound; the largest pool worker is recorded beside it. Wall time is measured
around the subprocess, and CPU seconds (user + system of the stage and every process it waited for: its
pool workers) beside it: on a shared machine wall time moves with the load, CPU time much less.

Every stage is run at two sizes, N and a smaller `--fit-clips` (default N/4), and extrapolated along the
line through the two (per-clip cost = the slope between them, never below zero):

    at 3.85 M = value at N + (value at N - value at n) / (N - n) * (3.85 M - N)     (seconds, CPU s, peak RSS)

A stage's fixed costs (imports, starting workers, Arrow's pools and thread arenas, a reader's buffers) fall
out of the slope. The older estimate, the cost above a python that only imports the modules the stage had
imported (lazy imports included) taken as linear in N, charges all of them to the clips: a memory that is
flat in N was extrapolated to gigabytes (`shards diet` at 200,000 clips said 2.7 GB at 3.85 M; a 3.82 M-clip
catalog measured 0.24 GB). It is still measured and recorded (`above_baseline`), and is the estimate only
when the fit is off (`--fit-clips 0`). The goals (issue 6 §3) are compared with the fitted totals, the
import included; a goal missed is reported as missed. MB are 10^6 bytes. Writes `bench/scale_results.json`
and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.scale_replica import replicate
from bench.scale_synth import CORPORA, Synth, synthesise

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
TARGET_CLIPS = 3_850_000  # Table I of the paper: ~3.85 M pre-training examples
MB = 1e6


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    clips: int = 200_000  # the measurement: 200,000 tiny clips
    work: Path = REPO / "bench" / "work" / "scale"  # synthesised corpora (reused) and data roots
    out: Path = REPO / "bench" / "scale_results.json"
    workers: int = 2  # ingest/verify pool size: the goals are stated for 2 cores
    seed: int = 0  # of the synthesised audio
    # the second size the per-clip costs are fitted from (None: clips // 4; 0: no fit, costs above the
    # import baseline are taken as linear in the clip count)
    fit_clips: int | None = None
    at_scale: bool = True  # catalog-only stages also run at the target size on a replicated catalog

    def fit_size(self) -> int:
        """The smaller size measured (0: none)."""
        return self.clips // 4 if self.fit_clips is None else self.fit_clips


@dataclass(frozen=True, slots=True)
class Goal:
    seconds: float | None = None  # at 3.85 M clips
    rss_mb: float | None = None  # peak RSS of the stage's driver process at 3.85 M clips


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    what: str
    goal: Goal
    catalog_only: bool = False  # reads only the catalog: also run at the target size (`scale_replica`)


# Issue 6 §3: at 3.85 M clips the ingest driver <= 1.5 GB and planning <= 3 min on 2 cores; `shards diet`
# and `load_diet` <= 10 s and <= 500 MB. verify has no number there (parallel, memory bounded by a member).
STAGES = (
    Stage("plan", "python -m ingest shards --plan-only (listing, probe, plan)", Goal(seconds=180.0, rss_mb=1500.0)),
    Stage("ingest", "python -m ingest shards (plan, shards, catalog, diets)", Goal(rss_mb=1500.0)),
    Stage("verify", "python -m shards verify", Goal()),
    Stage("diet", "python -m shards diet (speech, nonspeech, all)", Goal(seconds=10.0, rss_mb=500.0), True),
    Stage("load_diet", "shards.diets.load_diet(data, 'all')", Goal(seconds=10.0, rss_mb=500.0), True),
)


@dataclass(frozen=True, slots=True)
class Run:
    rc: int
    seconds: float
    cpu_seconds: float  # user + system, the process and the children it waited for (pool workers)
    driver_kb: int  # peak RSS of the process itself
    workers_kb: int  # peak RSS of its largest child (0: none)
    modules: tuple[str, ...]  # imported when it exited
    stdout: str
    stderr: str


def measure(args: list[str], log_dir: Path, name: str) -> Run:
    """`python -m bench.scale_run` + args in a fresh process: wall time and peak RSS."""
    report = log_dir / f"{name}.rss.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log_dir / f"{name}.out", "w+") as out, open(log_dir / f"{name}.err", "w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bench.scale_run", str(report), *args],
                                cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if report.exists():
        kb = json.loads(report.read_text())
        driver, workers, modules = kb["self_kb"], kb["children_kb"], tuple(kb["modules"])
    else:  # exited without running atexit (os._exit, a signal): wait4's figure bounds the driver
        driver, workers, modules = usage.ru_maxrss, 0, ()
    cpu = usage.ru_utime + usage.ru_stime
    return Run(proc.returncode, seconds, cpu, driver, workers, modules, stdout, stderr)


# Imports each module a stage had loaded; the wrapper's own and those with import side effects are left out.
_BASELINE = """import importlib, json, sys
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""
_SKIP = ("bench", "this", "antigravity")


def measure_baseline(run: Run, log_dir: Path, name: str) -> Run:
    """A python importing only the modules `run` had imported, measured as `measure` measures a stage."""
    modules = [m for m in run.modules if m.split(".")[0] not in _SKIP]
    listing = log_dir / f"{name}.modules.json"
    listing.write_text(json.dumps(modules))
    return _check(measure(["-c", _BASELINE, str(listing)], log_dir, name), f"baseline {name}")


def _unknown_flag(run: Run, flag: str) -> bool:
    return run.rc == 2 and "unrecognized arguments" in run.stderr and flag in run.stderr


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no output)"])[-1]


def _check(run: Run, what: str) -> Run:
    if run.rc != 0:
        raise RuntimeError(f"scale bench: {what} exited {run.rc}: {_last_line(run.stderr)}")
    return run


def _ingest_counts(data: Path) -> dict:
    """Clips in the `all` diet and shards in the collection, from the files ingest documents."""
    counts = {}
    manifest, complete = data / "diets" / "all.json", data / "shards" / "scale" / "_COMPLETE.json"
    if manifest.exists():
        counts["diet_all_clips"] = json.loads(manifest.read_text()).get("clips")
    if complete.exists():
        counts["shards"] = json.loads(complete.read_text()).get("shards")
    return counts


def _stage_commands(cfg: ScaleConfig, synth: Synth,
                    data: Path | None = None) -> dict[str, list[tuple[list[str], str | None]]]:
    """Per stage, the argument lists to try in order, each with the flag the CLI may not have (yet)."""
    data, plan = str(data or cfg.work / "data"), str(cfg.work / "data-plan")
    ingest = ["-m", "ingest", "shards", "--config", str(synth.config), "--workers", str(cfg.workers)]
    verify = ["-m", "shards", "verify", data]
    return {
        "plan": [([*ingest, "--data", plan, "--plan-only"], "--plan-only")],
        "ingest": [([*ingest, "--data", data], None)],
        "verify": [([*verify, "--workers", str(cfg.workers)], "--workers"), (verify, None)],
        "diet": [(["-m", "shards", "diet", data], None)],
        "load_diet": [(["-c", f"from shards.diets import load_diet; print(len(load_diet({data!r}, 'all')))"], None)],
    }


def _line(small: float, large: float, n: int, clips: int) -> tuple[float, float]:
    """(per-clip slope, value at TARGET_CLIPS) of the line through (n, small) and (clips, large); a slope
    below zero (noise on a flat cost) counts as zero."""
    slope = max((large - small) / (clips - n), 0.0)
    return slope, large + slope * (TARGET_CLIPS - clips)


def _result(stage: Stage, run: Run, base: Run, clips: int, argv: list[str], fit: tuple[int, Run] | None) -> dict:
    """The stage's figures at `clips` and at TARGET_CLIPS: fitted through the smaller run `fit` when there
    is one, else its cost above the import baseline taken as linear in the clip count."""
    us = (run.seconds - base.seconds) / clips * 1e6
    cpu_us = (run.cpu_seconds - base.cpu_seconds) / clips * 1e6
    per_clip = (run.driver_kb - base.driver_kb) * 1024 / clips
    linear = {"us_per_clip": us, "cpu_us_per_clip": cpu_us, "bytes_per_clip": per_clip,
              "at_target": {"seconds": base.seconds + max(us, 0.0) * TARGET_CLIPS / 1e6,
                            "cpu_seconds": base.cpu_seconds + max(cpu_us, 0.0) * TARGET_CLIPS / 1e6,
                            "rss_mb": (base.driver_kb * 1024 + max(per_clip, 0.0) * TARGET_CLIPS) / MB}}
    at, fitted = {"clips": TARGET_CLIPS, **linear["at_target"], "method": "linear above the import baseline"}, None
    if fit is not None:
        n, small = fit
        s_slope, seconds = _line(small.seconds, run.seconds, n, clips)
        c_slope, cpu_seconds = _line(small.cpu_seconds, run.cpu_seconds, n, clips)
        b_slope, at_bytes = _line(small.driver_kb * 1024, run.driver_kb * 1024, n, clips)
        # never below importing what the stage imports (a short stage's two runs can differ by noise alone)
        at.update(seconds=max(seconds, base.seconds), cpu_seconds=max(cpu_seconds, base.cpu_seconds),
                  rss_mb=max(at_bytes, base.driver_kb * 1024) / MB, method=f"line through {n:,} and {clips:,} clips")
        us, cpu_us, per_clip = s_slope * 1e6, c_slope * 1e6, b_slope
        fitted = {"clips": n, "seconds": small.seconds, "cpu_seconds": small.cpu_seconds,
                  "peak_rss_mb": small.driver_kb * 1024 / MB, "workers_peak_rss_mb": small.workers_kb * 1024 / MB}
    return {"stage": stage.name, "what": stage.what, "measured": True, "argv": argv,
            "seconds": run.seconds, "us_per_clip": us, "cpu_seconds": run.cpu_seconds, "cpu_us_per_clip": cpu_us,
            "peak_rss_mb": run.driver_kb * 1024 / MB, "workers_peak_rss_mb": run.workers_kb * 1024 / MB,
            "baseline": {"modules": len(base.modules), "seconds": base.seconds, "cpu_seconds": base.cpu_seconds,
                         "rss_mb": base.driver_kb * 1024 / MB},
            "bytes_per_clip": per_clip, "fit": fitted, "above_baseline": linear, "at_target": at,
            "goals": _goals(stage, at)}


def _goals(stage: Stage, at: dict) -> dict:
    goals = {}
    if stage.goal.seconds is not None:
        goals["seconds"] = {"limit": stage.goal.seconds, "at_target": at["seconds"],
                            "met": at["seconds"] <= stage.goal.seconds}
    if stage.goal.rss_mb is not None:
        goals["rss_mb"] = {"limit": stage.goal.rss_mb, "at_target": at["rss_mb"],
                           "met": at["rss_mb"] <= stage.goal.rss_mb}
    return goals


def _at_scale(results: list[dict], cfg: ScaleConfig, synth: Synth, notes: list[str]) -> None:
    """Run the catalog-only stages again on a replica of the measured collection at TARGET_CLIPS; their
    figures at the target are then these measurements, not an extrapolation."""
    replica = cfg.work / "replica"
    try:
        clips = replicate(cfg.work / "data", replica, TARGET_CLIPS)
    except (OSError, ValueError) as err:
        notes.append(f"no replica at {TARGET_CLIPS} clips ({err}): catalog-only stages extrapolated")
        return
    logs = replica / "logs"
    logs.mkdir()
    commands = _stage_commands(cfg, synth, replica)
    for r in results:
        stage = next(s for s in STAGES if s.name == r["stage"])
        if not (stage.catalog_only and r["measured"]):
            continue
        log.info("scale bench: %s at %d clips (replicated catalog)", stage.what, clips)
        run, _, why, _ = _run_stage(stage, commands[stage.name], logs, notes)
        if run is None:
            notes.append(f"{stage.name} at {clips} clips: {why}; its figures at the target are extrapolated")
            continue
        r["at_target"] = {"clips": clips, "seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
                          "rss_mb": run.driver_kb * 1024 / MB,
                          "method": f"measured at {clips:,} clips: the {cfg.clips:,}-clip run's catalog parts, "
                                    "repeated (bench.scale_replica)", "extrapolated": r["at_target"]}
        r["goals"] = _goals(stage, r["at_target"])
    shutil.rmtree(replica, ignore_errors=True)


def _not_measured(stage: Stage, why: str, failed: bool = False) -> dict:
    goals = {k: {"limit": v, "at_target": None, "met": False}
             for k, v in (("seconds", stage.goal.seconds), ("rss_mb", stage.goal.rss_mb)) if v is not None}
    return {"stage": stage.name, "what": stage.what, "measured": False, "failed": failed, "why": why, "goals": goals}


def _meminfo_gb() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemTotal:")) * 1024 / 1e9


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor() or platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> dict:
    return {"cores": len(os.sched_getaffinity(0)), "ram_gb": round(_meminfo_gb(), 1), "cpu": _cpu_model(),
            "python": platform.python_version(), "node": platform.node(), "load_avg_at_start": os.getloadavg(),
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted": _git("status", "--porcelain", "--", "ingest", "shards").splitlines()}


def _run_stage(stage: Stage, tries: list[tuple[list[str], str | None]], logs: Path,
               notes: list[str]) -> tuple[Run | None, list[str], str | None, bool]:
    """(run, its argv, why it was not measured, whether it failed): the first of `tries` whose flag the CLI has."""
    run = argv = flag = None
    for argv, flag in tries:
        run = measure(argv, logs, stage.name)
        if flag is None or not _unknown_flag(run, flag):
            break
        notes.append(f"{stage.name}: the CLI has no {flag}")
    if flag is not None and _unknown_flag(run, flag):  # no fallback left
        return None, argv, (f"the CLI has no {flag}: not timed separately (planning is timed only inside the "
                            "full ingest)"), False
    if run.rc != 0:  # recorded, not raised: the stages after it may still run (diets exist after ingest)
        return None, argv, f"exited {run.rc}: {_last_line(run.stderr)} (log: {logs / stage.name}.err)", True
    return run, argv, None, False


def _fit_runs(cfg: ScaleConfig, notes: list[str]) -> dict[str, Run]:
    """Every stage at the smaller size, in its own tree (`work/fit`), whose data root is removed after."""
    n = cfg.fit_size()
    small = replace(cfg, clips=n, work=cfg.work / "fit")
    synth = synthesise(small.work, n, cfg.seed)
    logs = small.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for root in ("data", "data-plan"):
        shutil.rmtree(small.work / root, ignore_errors=True)
    runs = {}
    for stage, tries in zip(STAGES, _stage_commands(small, synth).values()):
        log.info("scale bench: %s (%d clips, for the fit)", stage.what, n)
        run, _, why, _ = _run_stage(stage, tries, logs, [])
        if run is None:
            notes.append(f"{stage.name} at {n} clips: {why}; its extrapolation is linear above the import baseline")
        else:
            runs[stage.name] = run
    for root in ("data", "data-plan"):
        shutil.rmtree(small.work / root, ignore_errors=True)
    return runs


def run_bench(cfg: ScaleConfig) -> dict:
    """Synthesise (or reuse) the clips, run every stage at both sizes, write cfg.out; returns what it wrote."""
    if cfg.clips < 1 or cfg.workers < 0:
        raise ValueError(f"scale bench: clips={cfg.clips}, workers={cfg.workers}; expected clips >= 1, workers >= 0")
    n = cfg.fit_size()
    if n and not len(CORPORA) <= n < cfg.clips:
        raise ValueError(f"scale bench: fit_clips={n}, expected 0 (no fit) or {len(CORPORA)} <= fit_clips < "
                         f"clips={cfg.clips}")
    cfg = replace(cfg, work=cfg.work.resolve(), out=cfg.out.resolve())  # stages run with cwd=REPO
    at_start = machine()
    results, counts, notes = [], {}, []
    fits = _fit_runs(cfg, notes) if n else {}
    t0 = time.perf_counter()
    synth = synthesise(cfg.work, cfg.clips, cfg.seed)
    synth_seconds = time.perf_counter() - t0
    logs = cfg.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for root in ("data", "data-plan"):
        shutil.rmtree(cfg.work / root, ignore_errors=True)
    for stage, tries in zip(STAGES, _stage_commands(cfg, synth).values()):
        log.info("scale bench: %s", stage.what)
        run, argv, why, failed = _run_stage(stage, tries, logs, notes)
        if run is None:
            results.append(_not_measured(stage, why, failed=failed))
            continue
        base = measure_baseline(run, logs, f"baseline-{stage.name}")
        fit = (n, fits[stage.name]) if stage.name in fits else None
        results.append(_result(stage, run, base, cfg.clips, argv, fit))
        if stage.name == "plan":
            shutil.rmtree(cfg.work / "data-plan", ignore_errors=True)
        if stage.name == "ingest":
            counts.update(_ingest_counts(cfg.work / "data"))
        if stage.name == "load_diet":
            counts["load_diet_clips"] = int(run.stdout.split()[-1])
    if cfg.at_scale:
        _at_scale(results, cfg, synth, notes)
    out = {"clips": cfg.clips, "fit_clips": n, "audio_seconds": synth.seconds, "synth_seconds": synth_seconds,
           "workers": cfg.workers, "target_clips": TARGET_CLIPS, "counts": counts, "notes": notes, "machine": at_start,
           "load_avg_at_end": os.getloadavg(), "config": {k: str(v) for k, v in asdict(cfg).items()},
           "stages": results}
    tmp = cfg.out.with_name(f".tmp-{cfg.out.name}")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, cfg.out)
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def table(out: dict):
    """The results as a rich table: measured, per clip, extrapolated, and each goal met or missed."""
    from rich.markup import escape
    from rich.table import Table

    m = out["machine"]
    n = out.get("fit_clips")
    how = f"fitted through {n:,} and {out['clips']:,} clips" if n else "linear above the import baseline"
    t = Table(title=f"scale bench: {out['clips']:,} clips, {out['workers']} workers, extrapolated to "
                    f"{out['target_clips'] / 1e6:.2f} M ({how}) — {m['cores']} cores, {m['ram_gb']} GB, {m['cpu']}, "
                    f"{m['commit'][:10]}{' (+uncommitted)' if m['uncommitted'] else ''}")
    for col in ("stage", "s", "cpu s", "peak MB", "worker MB", "base MB", "small: s, cpu s, MB", "µs/clip",
                "cpu µs/clip", "B/clip", "s @3.85M", "cpu s @3.85M", "MB @3.85M", "goal @3.85M"):
        t.add_column(col, justify="left" if col in ("stage", "goal @3.85M") else "right")
    for r in out["stages"]:
        verdicts = []
        for key, unit in (("seconds", "s"), ("rss_mb", "MB")):
            g = r["goals"].get(key)
            if g:
                mark = "[green]met[/]" if g["met"] else "[red]MISSED[/]"
                verdicts.append(f"≤ {g['limit']:g} {unit} {mark}" if r["measured"] else
                                f"≤ {g['limit']:g} {unit} [red]not measured[/]")
        if not r["measured"]:
            t.add_row(r["stage"], *["—"] * 12, "; ".join([*verdicts, f"({escape(r['why'])})"]))
            continue
        a, f = r["at_target"], r.get("fit")
        small = f"{f['seconds']:.1f}, {f['cpu_seconds']:.1f}, {f['peak_rss_mb']:.0f}" if f else "—"
        t.add_row(r["stage"], f"{r['seconds']:.1f}", _fmt(r.get("cpu_seconds"), ".1f"), f"{r['peak_rss_mb']:.0f}",
                  _fmt(r["workers_peak_rss_mb"] or None, ".0f"), f"{r['baseline']['rss_mb']:.0f}", small,
                  f"{r['us_per_clip']:.1f}", _fmt(r.get("cpu_us_per_clip"), ".1f"), f"{r['bytes_per_clip']:.0f}",
                  f"{a['seconds']:.0f}", _fmt(a.get("cpu_seconds"), ".0f"), f"{a['rss_mb']:.0f}",
                  "; ".join(verdicts) or "(no goal)")
    return t


def main(argv: list[str] | None = None) -> int:
    d = ScaleConfig()
    p = argparse.ArgumentParser(prog="python -m bench.scale_bench", description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=d.clips, help=f"tiny clips to synthesise (default {d.clips})")
    p.add_argument("--work", type=Path, default=d.work, help="corpora (reused for the same clips) and data roots")
    p.add_argument("--out", type=Path, default=d.out, help="results JSON")
    p.add_argument("--workers", type=int, default=d.workers, help=f"pool size for ingest/verify (default {d.workers})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the synthesised audio")
    p.add_argument("--fit-clips", type=int, default=d.fit_clips,
                   help="the second, smaller size the per-clip costs are fitted from (default clips/4; 0: no fit, "
                        "costs above the import baseline taken as linear)")
    p.add_argument("--no-at-scale", dest="at_scale", action="store_false",
                   help="do not run the catalog-only stages (diet, load_diet) at the target size")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rich.console import Console

    try:
        out = run_bench(ScaleConfig(args.clips, args.work, args.out, args.workers, args.seed, args.fit_clips,
                                    args.at_scale))
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Console(width=None if sys.stdout.isatty() else 160).print(table(out))
    for r in out["stages"]:
        if r["measured"]:
            print(f"{r['stage']} at {r['at_target']['clips']:,} clips: {r['at_target']['method']}")
    print(f"counts: {out['counts']}; wrote {args.out}")
    failed = [r["stage"] for r in out["stages"] if r.get("failed")]
    if failed:
        print(f"error: stages failed: {', '.join(failed)} (see the table)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
