"""Measured figures for docs/RETRAINING.md: what `medkd retrain` buys a new site, what an epoch costs,
and whether the window stays responsive while the panel trains.

    python scripts/bench_retrain.py site [--epochs 10]   # cxr-covid, adult-only rows (docs/bench/retrain_site.json)
    python scripts/bench_retrain.py epochs               # seconds per step, per task (docs/bench/retrain_epochs.json)
    python scripts/bench_retrain.py gui                  # the panel's longest event-loop gap (docs/bench/retrain_gui.json)

Each runs the real command (`medkd retrain`, one torch thread: this machine's two cores are shared)
in its own user folders (a temporary XDG home), so nothing is installed for the user.

*site*: the new-site scenario of issue #17. The "site" is the adult-only rows of
``../shared/data/cxr-covid`` (``source`` without ``lecuong1502``), with the dataset's own
patient-grouped splits kept (a CSV with a ``split`` column), so "before" is the bundled student
on exactly the adult-only test rows and the comparison is paired on the same images.

*epochs*: for each task, 64 train / 16 val / 16 test images of its manifest, two epochs; the
second epoch's time per optimiser step (batch 32, teacher forward included) is scaled to the
task's full train split. Reading and preprocessing the images is not in it (cached once).

*gui*: the real panel, offscreen, training cxr-covid in its QProcess for ``--seconds``, with
bench_gui's 5 ms timer measuring the longest gap of the window's event loop (and two seconds idle
before, as the baseline).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench"
sys.path.insert(0, str(ROOT))

from medkd_desktop.paths import shared_data_dir  # noqa: E402

MEDKD = [sys.executable, "-m", "medkd_desktop.cli"]
TASKS = ["brain-tumor-mri", "cxr-covid", "histo-lc25000", "skin-ham10000", "fmri-asd"]


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"),
                MEDKD_AUDIT_DIR=str(home / "audit"), OMP_NUM_THREADS="1")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(args: list[str], env: dict[str, str]) -> tuple[list[dict], float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([*MEDKD, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"medkd {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")], wall, r.stderr


def _csv(rows: list[dict], base: Path, dst: Path, column: str = "path") -> Path:
    with open(dst, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "patient_id", "split"])
        for r in rows:
            w.writerow([str(base / r[column]), r["label"], r.get("patient_id") or r.get("subject_id", ""), r["split"]])
    return dst


def site(epochs: int) -> dict:
    base = shared_data_dir() / "cxr-covid"
    rows = [r for r in csv.DictReader(open(base / "manifest.csv")) if "lecuong1502" not in r["source"]]
    with tempfile.TemporaryDirectory(prefix="medkd-site-") as tmp:
        home = Path(tmp)
        data = _csv(rows, base, home / "adult.csv")
        events, wall, _ = _run(["retrain", "--task", "cxr-covid", "--data", str(data), "--epochs", str(epochs),
                                "--threads", "1", "--json", "--name", "adult-site"], _env(home))
    summary = next(e for e in events if e["event"] == "summary")
    done = events[-1]
    c = done["comparison"]
    strip = lambda row: {k: row[k] for k in ("accuracy", "macro_f1", "ci", "recall")}  # noqa: E731
    return {
        "scenario": "cxr-covid, adult-only rows (source without lecuong1502), the dataset's own splits",
        "epochs": epochs, "init": "bundled", "loss": "fbce_mse (the task's paper loss)", "threads": 1,
        "counts": summary["counts"], "n_test": c["n"],
        "before": strip(c["models"]["bundled"]), "after": strip(c["models"]["new"]),
        "teacher": strip(c["models"]["teacher"]), "new_minus_bundled": c["new_minus_bundled"],
        "history": [[e["epoch"], e["train_loss"], e["val"]["accuracy"], e["val"]["macro_f1"], e["epoch_s"]]
                    for e in events if e["event"] == "epoch"],
        "wall_s": round(wall), "cpu_count": os.cpu_count(), "load_after": _load(),
    }


def epochs_per_task() -> dict:
    out = {}
    for task in TASKS:
        base = shared_data_dir() / task
        rows = list(csv.DictReader(open(base / "manifest.csv")))
        column = "path"
        if task == "fmri-asd":
            from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry

            column = f"{ModelRegistry([BUNDLED_DIR]).card(task, 'student').input.fmri_map}_map"
        n_train = sum(1 for r in rows if r["split"] == "train")
        pick: list[dict] = []
        for split, n in (("train", 64), ("val", 16), ("test", 16)):
            pool = [r for r in rows if r["split"] == split]
            step = max(1, len(pool) // n)
            pick += pool[::step][:n]
        with tempfile.TemporaryDirectory(prefix="medkd-epoch-") as tmp:
            home = Path(tmp)
            data = _csv(pick, base, home / "data.csv", column)
            events, wall, _ = _run(["retrain", "--task", task, "--data", str(data), "--epochs", "2", "--threads", "1",
                                    "--json", "--batch-size", "32"], _env(home))
        ep = [e for e in events if e["event"] == "epoch"]
        steps = next(e for e in events if e["event"] == "progress")["steps"]
        s_per_step = ep[-1]["epoch_s"] / steps
        full = s_per_step * (n_train // 32)
        out[task] = {"s_per_step_batch32": round(s_per_step, 2), "train_images": n_train,
                     "min_per_epoch_full_train": round(full / 60, 1), "min_per_epoch_per_1000_images": round(s_per_step * 1000 / 32 / 60, 2),
                     "wall_s_96_images_2_epochs": round(wall), "load_after": _load()}
        print(task, out[task], flush=True)
    return out


def gui(seconds: float) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="medkd-gui-") as tmp:
        home = Path(tmp)
        os.environ.update(_env(home))
        base = shared_data_dir() / "cxr-covid"
        rows = [r for r in csv.DictReader(open(base / "manifest.csv")) if "lecuong1502" not in r["source"]][::3]
        data = _csv(rows, base, home / "site.csv")
        from medkd_desktop.ui.app import make_app
        from medkd_desktop.ui.bench_gui import _GapMeter
        from medkd_desktop.ui.retrain_panel import RetrainPanel

        app = make_app()
        panel = RetrainPanel(["cxr-covid"], task="cxr-covid")
        panel.show()
        panel.set_data(data)
        idle = _GapMeter()
        idle.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 2.0:
            app.processEvents()
            time.sleep(0.001)
        idle.stop()
        panel.epochs_spin.setValue(50)
        panel.last_summary = {"bench": True}
        handler_ms: list[float] = []
        original = panel.handle_event

        def timed(event: dict) -> None:  # how long the panel itself holds the loop per event
            t = time.perf_counter()
            original(event)
            handler_ms.append((time.perf_counter() - t) * 1000)

        panel.handle_event = timed
        panel.start()
        meter = _GapMeter()
        seen = {"epochs": 0, "progress": 0}
        panel.epoch_done.connect(lambda _e: seen.__setitem__("epochs", seen["epochs"] + 1))
        panel.failed.connect(lambda m: seen.__setitem__("failed", m))
        meter.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            app.processEvents()
            time.sleep(0.001)
        meter.stop()
        status = panel.status.text()
        panel.stop_and_wait(120_000)
        gaps = sorted(meter.gaps)
        return {"last_status": status, "failed": seen.get("failed"),
                "p99_gap_ms": round(gaps[int(0.99 * (len(gaps) - 1))], 1),
                "gaps_over_100ms": sum(1 for g in gaps if g > 100), "ticks": len(gaps),
                "max_event_handler_ms": round(max(handler_ms, default=0.0), 1), "events": len(handler_ms),"training_s": seconds, "max_event_loop_gap_ms": round(max(meter.gaps), 1),
                "idle_max_gap_ms": round(max(idle.gaps), 1), "epochs_seen": seen["epochs"],
                "history_points": len(panel.history), "threads_for_training": __import__(
                    "medkd_desktop.ui.retrain_panel", fromlist=["x"]).training_threads(),
                "cpu_count": os.cpu_count(), "load_after": _load()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("site", "epochs", "gui"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=120.0)
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"site": lambda: site(a.epochs), "epochs": epochs_per_task, "gui": lambda: gui(a.seconds)}[a.what]()
    (OUT / f"retrain_{a.what}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
