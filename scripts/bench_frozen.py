"""Frozen bundle vs source install, side by side in one run: cold start and peak memory.

    .venv/bin/python scripts/bench_frozen.py [--runs 3] [--bundle dist/medkd-desktop] [--json FILE]

For each run, alternating frozen and source so that machine load hits both alike:

* **start to window** and **start to both overlays**: ``medkd-desktop DEMO`` (the demo study, as
  ``make run`` opens it) with ``QT_QPA_PLATFORM=offscreen`` and ``MEDKD_STARTUP_TRACE=1``; the
  app prints a mark when the window is painted and when both overlays are shown; the time is
  from spawning the process to the mark's arrival. The source install is this checkout run by
  the current interpreter (``python -m medkd_desktop.ui.app``), i.e. what ``make run`` starts.
* **peak RSS**: ``medkd analyze DEMO`` (the headless analysis with all exports), the child's
  maximum resident set size from ``wait4``; also the GUI run's peak up to the overlays.

Each process gets a fresh HOME, so no per-user cache (matplotlib's font list, the glass-brain
cache) helps either side. The page cache stays warm after the first run; pass ``--drop-caches``
(root) to drop it before every run, which measures a start right after boot.
Target (issue #16): frozen start to overlays <= 1.2 x source.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "samples" / "chest_xray_cr_pa_nema.dcm"
TIMEOUT_S = 600


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def base_env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}


def commands(flavour: str, bundle: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """(GUI command, console command prefix, extra environment) of one flavour."""
    if flavour == "frozen":
        return [str(bundle / "medkd-desktop")], [str(bundle / "medkd")], {}
    py = sys.executable
    return [py, "-m", "medkd_desktop.ui.app"], [py, "-m", "medkd_desktop.cli"], {"PYTHONPATH": str(REPO)}


def time_gui(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Seconds from spawn to the window mark and to the overlays mark, and the peak RSS (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, str(DEMO)], env={**env, "MEDKD_STARTUP_TRACE": "1"}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("medkd-startup "):
            marks[line.split()[1]] = time.perf_counter() - t0
            if "overlays" in marks:
                break
    proc.terminate()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    if "overlays" not in marks:
        raise RuntimeError(f"{cmd[0]}: no overlays mark (got {marks})")
    return {"window_s": marks["window"], "overlays_s": marks["overlays"], "gui_peak_rss_mb": usage.ru_maxrss / 1024}


def analyze_rss(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "analyze", str(DEMO), "--out", str(cwd / "out"), "--json"], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} analyze exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
    return {"analyze_s": time.perf_counter() - t0, "analyze_peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "medkd-desktop")
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before each run (root)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if not (args.bundle / "medkd-desktop").is_file():
        print(f"error: no bundle at {args.bundle} (make package)", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, float]]] = {"frozen": [], "source": []}
    for i in range(args.runs):
        for flavour in ("frozen", "source") if i % 2 == 0 else ("source", "frozen"):
            gui, cli, extra = commands(flavour, args.bundle)
            with tempfile.TemporaryDirectory(prefix=f"medkd-bench-{flavour}-") as tmp:
                home = Path(tmp)
                env = {**base_env(home), **extra}
                if args.drop_caches:
                    drop_caches()
                result = time_gui(gui, env, home)
                result.update(analyze_rss(cli, env, home))
            runs[flavour].append(result)
            print(f"run {i + 1} {flavour:<6} window {result['window_s']:5.1f} s  overlays {result['overlays_s']:5.1f} s  "
                  f"analyze {result['analyze_s']:5.1f} s  peak RSS analyze {result['analyze_peak_rss_mb']:6.0f} MB, "
                  f"GUI {result['gui_peak_rss_mb']:6.0f} MB", flush=True)
    median = {f: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for f, rs in runs.items()}
    ratio = {k: median["frozen"][k] / median["source"][k] for k in median["frozen"]}
    print(f"\n| median of {args.runs} | frozen | source | frozen / source |\n|---|---|---|---|")
    for key in median["frozen"]:
        unit = "MB" if key.endswith("_mb") else "s"
        print(f"| {key} | {median['frozen'][key]:.1f} {unit} | {median['source'][key]:.1f} {unit} | {ratio[key]:.2f} |")
    verdict = "met" if ratio["overlays_s"] <= 1.2 else "NOT met"
    print(f"\ntarget frozen start-to-overlays <= 1.2 x source: {verdict} ({ratio['overlays_s']:.2f})")
    out = {"runs": runs, "median": median, "ratio": ratio, "drop_caches": args.drop_caches,
           "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
