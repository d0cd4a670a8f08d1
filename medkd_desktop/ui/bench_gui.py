"""`medkd bench gui`: is the review window quick to appear, quick to show overlays, never frozen?

Three figures, measured on the real window with ``QT_QPA_PLATFORM=offscreen``:

* ``launch_to_window_ms``: from starting a fresh Python process to the main window shown and
  painted (median of runs). A subprocess, because import time is most of it and an already
  warm interpreter would hide it.
* ``study_to_overlays_ms``: from File > Open of a 2-D study to both Grad-CAM overlays painted,
  with the models already loaded (one warm-up open first); median of runs. This includes
  decoding the file and the analysis in the worker, i.e. what a user waits for.
* ``max_event_loop_gap_ms``: while those analyses run, a QTimer ticking every 5 ms records the
  longest gap between ticks: the longest the window could not react to a click. The same meter
  run for two seconds with nothing to do (``idle_*``) shows what the machine's load alone costs.

When the task's trained models are not installed, random-init models of the architectures in
``configs/<task>-{teacher,student}.toml`` (the ones training produces) are written to a
temporary folder, so timings reflect the real network sizes; the JSON says which were used.
The machine's load matters (a training job on the same cores slows everything): the JSON
records the CPU count and the load average.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from ..paths import CONFIGS_DIR, REPO_DIR, SAMPLES_DIR

TICK_MS = 5
DEFAULT_STUDY = SAMPLES_DIR / "histology_lung_adenocarcinoma_lc25000.jpg"
TIMEOUT_S = 300
IDLE_S = 2.0  # baseline: the loop's gaps with no analysis running, on the same machine and load

_PROBE = """
import sys, time
t_import = time.perf_counter()
from medkd_desktop.ui.app import make_app
from medkd_desktop.ui.main_window import MainWindow
from medkd_desktop.ui.settings import Settings
app = make_app()
w = MainWindow(settings=Settings(__import__('pathlib').Path(sys.argv[1])))
w.show()
app.processEvents()
w.repaint()
print('shown', flush=True)
w.worker.shutdown(0)
"""


def measure_launch(runs: int = 3) -> list[float]:
    """Wall time (ms) from spawning `python` to the window shown, for each run."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    times = []
    with tempfile.TemporaryDirectory(prefix="medkd-bench-") as tmp:
        for i in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(Path(tmp) / f"s{i}.ini")], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_DIR)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            elapsed = (time.perf_counter() - t0) * 1000.0
            proc.kill()  # the window is shown; the engine's background start is not part of launch
            proc.wait()
            if line.strip() != "shown":
                raise RuntimeError("the window did not start (run medkd-desktop to see why)")
            times.append(elapsed)
    return times


def write_random_pair(root: Path, task: str) -> dict[str, str]:
    """Random-init teacher and student of the architectures in the task's configs (no training)."""
    from ..models.architectures import create_arch
    from ..models.card import ModelCard
    from ..models.preprocess import InputSpec
    from ..models.weights import save_weights

    used = {}
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    for role in ("teacher", "student"):
        cfg_path = CONFIGS_DIR / f"{task}-{role}.toml"
        with open(cfg_path, "rb") as fh:
            cfg = tomllib.load(fh)
        spec = InputSpec.from_dict(cfg.get("input", {}))
        model = create_arch(cfg["arch"], num_classes=len(cfg["classes"]), in_chans=spec.channels,
                            **cfg.get("arch_kwargs", {})).eval()
        sha = save_weights(model, folder / f"{role}.safetensors")
        card = ModelCard(id=f"{task}/{role}", task=task, role=role, architecture=cfg["arch"],
                         arch_kwargs=cfg.get("arch_kwargs", {}), classes=list(cfg["classes"]), input=spec,
                         weights_file=f"{role}.safetensors", sha256=sha, name=f"{cfg.get('name', role)} (random init)")
        card.save(folder / f"{role}.json")
        used[role] = cfg["arch"]
    return used


class _GapMeter:
    """Longest interval between ticks of a 5 ms QTimer while armed."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self.last) * 1000.0)
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self.gaps.append((time.perf_counter() - self.last) * 1000.0)


def _wait(app, predicate, timeout_s: float = TIMEOUT_S) -> None:
    """Run the event loop until *predicate* holds, sleeping between events as ``app.exec()`` does.

    Why not a ``processEvents`` loop: it spins one core at 100 %, and on a 2-core machine that
    starves the worker's OpenMP threads (measured: DenseNet-121 forward 64 ms -> 4.1 s), so the
    benchmark would time its own busy-wait instead of what a user waits for.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    if predicate():
        return
    end = time.perf_counter() + timeout_s
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(10)
    poll.timeout.connect(lambda: (predicate() or time.perf_counter() > end) and loop.quit())
    poll.start()
    loop.exec()
    poll.stop()
    if not predicate():
        raise TimeoutError("the window did not finish in time")


def measure_study_to_overlays(path: Path, task: str | None, repeat: int, models_dir: Path | None) -> dict[str, Any]:
    """Open *path* ``repeat`` times after a warm-up; time to both overlays painted and loop gaps."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from ..ui.app import make_app
    from ..ui.main_window import MainWindow
    from ..ui.settings import Settings

    app = make_app()
    with tempfile.TemporaryDirectory(prefix="medkd-bench-") as tmp:
        if models_dir is not None:
            os.environ["MEDKD_MODEL_DIRS"] = os.pathsep.join(
                [p for p in (os.environ.get("MEDKD_MODEL_DIRS", ""), str(models_dir)) if p])
        window = MainWindow(settings=Settings(Path(tmp) / "settings.ini"), device="cpu", forced_task=task)
        events: dict[str, Any] = {}
        window.engine_ready.connect(lambda: events.__setitem__("ready", True))
        window.analysis_applied.connect(lambda a: events.__setitem__("analysis", a))
        window.analysis_failed.connect(lambda m: events.__setitem__("error", m))
        window.open_failed.connect(lambda m: events.__setitem__("error", m))
        window.error_sink = lambda _t, m: events.__setitem__("error", m)
        window.show()
        _wait(app, lambda: "ready" in events or "error" in events)

        def open_once() -> float:
            events.pop("analysis", None)
            window.state.clear_cache()  # a fresh analysis every time, as for a new study
            t0 = time.perf_counter()
            window.open_path(path)
            _wait(app, lambda: "analysis" in events or "error" in events)
            if "error" in events:
                raise RuntimeError(events["error"])
            window.repaint()  # both overlays painted
            return (time.perf_counter() - t0) * 1000.0

        open_once()  # warm-up: loads the models, first-call overheads
        # The same meter with nothing running: what the machine's load alone costs the loop.
        idle = _GapMeter()
        _wait(app, lambda: not window.worker.busy)
        idle.start()
        end = time.perf_counter() + IDLE_S
        _wait(app, lambda: time.perf_counter() > end)
        idle.stop()
        meter = _GapMeter()
        times = []
        for _ in range(repeat):
            _wait(app, lambda: not window.worker.busy)
            meter.start()
            times.append(open_once())
            meter.stop()
        analysis = events["analysis"]
        result = {
            "study_to_overlays_ms": round(statistics.median(times), 1),
            "study_to_overlays_runs_ms": [round(t, 1) for t in times],
            "max_event_loop_gap_ms": round(max(meter.gaps), 1),
            "p99_event_loop_gap_ms": round(sorted(meter.gaps)[int(0.99 * (len(meter.gaps) - 1))], 1),
            "ticks": len(meter.gaps),
            "idle_max_event_loop_gap_ms": round(max(idle.gaps), 1),
            "idle_p99_event_loop_gap_ms": round(sorted(idle.gaps)[int(0.99 * (len(idle.gaps) - 1))], 1),
            "task": analysis.task,
            "device": analysis.device,
            "analysis_total_ms": round(analysis.timings_ms.get("total", float("nan")), 1),
            "teacher": window.state.pair.teacher.name,
            "student": window.state.pair.student.name,
        }
        window.close()
        return result


def bench_gui(path: Path | None = None, task: str | None = None, repeat: int = 5, launch_runs: int = 3) -> dict[str, Any]:
    """All three figures as a JSON-ready dict (see the module docstring)."""
    path = Path(path) if path else DEFAULT_STUDY
    launch = measure_launch(launch_runs)
    models_note = "installed models"
    with tempfile.TemporaryDirectory(prefix="medkd-bench-models-") as tmp:
        models_dir = None
        from ..models.registry import ModelRegistry
        from ..studies import open_study

        wanted = task
        if wanted is None:
            from ..inference.pairing import propose

            wanted = propose(open_study(path), ModelRegistry()).task
        if wanted and wanted not in ModelRegistry().paired_tasks():
            archs = write_random_pair(Path(tmp), wanted)
            models_dir = Path(tmp)
            models_note = f"random-init {archs['teacher']} / {archs['student']} (no trained {wanted} models installed)"
        overlays = measure_study_to_overlays(path, wanted, repeat, models_dir)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "launch_to_window_ms": round(statistics.median(launch), 1),
        "launch_runs_ms": [round(t, 1) for t in launch],
        **overlays,
        "study": path.name,
        "method": "gradcam",
        "models": models_note,
        "platform": os.environ.get("QT_QPA_PLATFORM", ""),
        "cpu_count": os.cpu_count(),
        "torch_threads": _torch_threads(),
        "load_average": load,
        "targets": {"launch_to_window_ms": 3000, "study_to_overlays_ms": 1000, "max_event_loop_gap_ms": 50},
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except Exception:  # noqa: BLE001
        return None
