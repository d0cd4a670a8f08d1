"""Background work for the review window: opening studies, loading models, running analyses.

Why a worker: decoding a JPEG 2000 chest film takes a second, loading a teacher a few, and a
Score-CAM many; none of that may freeze the window (the GUI thread never runs torch). All jobs
run on ONE dedicated pool thread, in order, so the engine's model cache is never touched by two
threads at once and a new analysis simply queues behind the one being cancelled.

Cancellation is cooperative: each analysis gets its own :class:`CancelFlag`, which the engine
checks between steps. Every job carries an id; a result whose job was cancelled or superseded
is reported as cancelled and never applied, so a late result cannot overwrite a newer view.
"""
from __future__ import annotations

import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..inference.session import AnalysisJob

log = logging.getLogger(__name__)


class CancelFlag(threading.Event):
    """A thread-safe flag the engine polls; callable too, so ``cancel()`` and ``cancel.is_set()`` both work."""

    def __call__(self) -> bool:
        return self.is_set()


def _progress_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, str]:
    """Normalise an engine progress call to (fraction 0..1, step text), whatever order it uses."""
    values = list(args) + list(kwargs.values())
    fraction = next((float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), -1.0)
    text = next((v for v in values if isinstance(v, str)), "")
    if fraction > 1.0:  # a percentage
        fraction /= 100.0
    return fraction, text


class _Bridge(QObject):
    """Signals emitted from the pool thread; Qt queues them to receivers on the GUI thread."""

    ready = Signal(object, object)  # engine, registry
    startup_failed = Signal(str)
    study_loaded = Signal(int, object)  # job id, Study
    study_failed = Signal(int, object)  # job id, exception (StudyLoadError or other)
    models_loaded = Signal(int, str, float, object)  # job id, task, seconds, methods both models support
    models_failed = Signal(int, str)
    progress = Signal(int, float, str)  # job id, fraction (-1 unknown), step
    analysis_done = Signal(int, object, object)  # job id, Analysis, request meta
    analysis_cancelled = Signal(int)
    analysis_failed = Signal(int, str)
    task_done = Signal(int, object)  # job id, return value of a generic task (exports)
    task_failed = Signal(int, object)  # job id, exception


#: Niceness added to the pool thread. When the CPU is shared (another program, a training run),
#: the GUI thread then wins the CPU whenever it has something to do; with a free core per
#: thread it changes little. Measured with the histology pair on 2 cores, 1 torch thread, 5
#: analyses per run: quiet, niceness 5 vs 0 gave longest loop gap 47-62 vs 58-64 ms and
#: study-to-overlays 370-395 vs 323-331 ms; beside a training run, gap 76 vs 142 ms (p99 45 vs
#: 113) at 485 vs 474 ms. A frozen window is worse than a slightly slower heatmap.
WORKER_NICENESS = 5
_local = threading.local()


def lower_thread_priority() -> None:
    """Make the calling (pool) thread yield to the GUI thread; once per thread, best effort."""
    if getattr(_local, "lowered", False):
        return
    _local.lowered = True
    try:  # Linux and macOS: per-thread nice value (Qt's QThread priorities do nothing under SCHED_OTHER)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
        return
    except (AttributeError, OSError):
        pass
    from PySide6.QtCore import QThread

    thread = QThread.currentThread()
    if thread is not None:  # Windows: thread priorities are honoured
        thread.setPriority(QThread.Priority.LowPriority)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__()
        self._fn = fn
        self.setAutoDelete(True)

    def run(self) -> None:  # pool thread
        try:
            lower_thread_priority()
            self._fn()
        except Exception:  # noqa: BLE001 - a worker must never take the process down
            log.exception("background job failed")


class Worker(QObject):
    """Owns the pool thread and the engine; the window talks to it only through methods and signals.

    Signals (all delivered on the GUI thread):
      ``ready(engine, registry)``, ``startup_failed(message)``,
      ``study_loaded(job, study)``, ``study_failed(job, error)``,
      ``models_loaded(job, task, seconds, methods)``, ``models_failed(job, message)``,
      ``progress(job, fraction, step)``, ``analysis_done(job, analysis, meta)``,
      ``analysis_cancelled(job)``, ``analysis_failed(job, message)``, ``task_done(job, result)``,
      ``task_failed(job, error)``, ``busy_changed(bool)``.
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, device: str | None = None,
                 engine_factory: Callable[[str | None], tuple[Any, Any]] | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(-1)  # keep the thread: torch's per-thread state stays warm
        self.bridge = _Bridge(self)
        self.device = device
        self._engine_factory = engine_factory or default_engine_factory
        self.engine: Any = None
        self.registry: Any = None
        self.methods: list[str] = []  # explanation methods the engine offers (filled at start)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._flags: dict[int, CancelFlag] = {}
        self._cancelled: set[int] = set()
        self._latest_analysis = 0
        self._pending = 0
        self.bridge.ready.connect(self._on_ready)
        for sig in (self.bridge.study_loaded, self.bridge.study_failed, self.bridge.models_loaded,
                    self.bridge.models_failed, self.bridge.analysis_done, self.bridge.analysis_failed):
            sig.connect(self._job_finished)
        self.bridge.analysis_cancelled.connect(self._job_finished)
        self.bridge.task_done.connect(self._job_finished)
        self.bridge.task_failed.connect(self._job_finished)
        self.bridge.startup_failed.connect(self._job_finished)

    # -- bookkeeping (GUI thread) ---------------------------------------------------------
    def _submit(self, fn: Callable[[], None]) -> None:
        self._pending += 1
        if self._pending == 1:
            self.busy_changed.emit(True)
        self._pool.start(_Job(fn))

    def _job_finished(self, *args: Any) -> None:
        self._pending = max(0, self._pending - 1)
        if self._pending == 0:
            self.busy_changed.emit(False)

    def _on_ready(self, engine: Any, registry: Any) -> None:
        self.engine, self.registry = engine, registry
        self._job_finished()

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def wait_idle(self, msecs: int = -1) -> bool:
        """Block until the pool is empty (for shutdown and the headless screenshot, never in a slot)."""
        return self._pool.waitForDone(msecs)

    # -- jobs -----------------------------------------------------------------------------
    def start(self) -> None:
        """Import torch, build the engine and scan the model cards off the GUI thread."""
        factory, device = self._engine_factory, self.device

        def job() -> None:
            t0 = time.perf_counter()
            try:
                engine, registry = factory(device)
                registry.cards  # noqa: B018 - scan the card folders here, not on the GUI thread
                from ..inference.engine import known_methods

                self.methods = list(known_methods())  # imports explain (grad-cam) here too
            except Exception as exc:  # noqa: BLE001
                log.warning("engine start failed: %s: %s", type(exc).__name__, exc)
                self.bridge.startup_failed.emit(f"The analysis engine could not start: {exc}")
                return
            log.info("engine ready in %.0f ms", (time.perf_counter() - t0) * 1000)
            self.bridge.ready.emit(engine, registry)

        self._submit(job)

    def open_study(self, path: str | Path) -> int:
        """Open a study in the background; returns the job id echoed by study_loaded/study_failed."""
        job_id = next(self._ids)

        def job() -> None:
            from ..studies import open_study

            try:
                study = open_study(path)
            except Exception as exc:  # noqa: BLE001 - open_study raises StudyLoadError; anything else is reported too
                self.bridge.study_failed.emit(job_id, exc)
                return
            self.bridge.study_loaded.emit(job_id, study)

        self._submit(job)
        return job_id

    def load_models(self, pair: Any) -> int:
        """Load (and cache) both models of *pair* so the first analysis does not pay for it."""
        job_id = next(self._ids)

        def job() -> None:
            t0 = time.perf_counter()
            try:
                both = self.engine.methods_for(pair)
            except Exception as exc:  # noqa: BLE001 - ModelUnavailableError and friends: report, don't crash
                self.bridge.models_failed.emit(job_id, str(exc))
                return
            # The loaded models are long-lived: freezing them out of the cyclic GC keeps later
            # full collections short (one right after a teacher loads took 387 ms, all of it with
            # the GIL held, so the window could not paint).
            gc.freeze()
            self.bridge.models_loaded.emit(job_id, pair.task, time.perf_counter() - t0, both)

        self._submit(job)
        return job_id

    def analyze(self, request: AnalysisJob) -> int:
        """Queue an analysis; any earlier one still running is cancelled (only the newest matters)."""
        job_id = next(self._ids)
        flag = CancelFlag()
        with self._lock:
            self._cancel_locked()
            self._flags[job_id] = flag
            self._latest_analysis = job_id
        engine = self.engine

        on_progress = self._reporter(job_id)

        def job() -> None:
            from ..inference.engine import AnalysisCancelled

            try:
                if flag.is_set():
                    raise AnalysisCancelled()
                self.bridge.progress.emit(job_id, 0.0, "starting")
                analysis = engine.analyze(**request.kwargs(), on_progress=on_progress, cancel=flag)
                if flag.is_set():  # cancelled after the last check inside the engine: drop the result
                    raise AnalysisCancelled()
            except AnalysisCancelled:
                self.bridge.analysis_cancelled.emit(job_id)
                return
            except Exception as exc:  # noqa: BLE001 - shown in the status bar, details in the log
                log.warning("analysis failed: %s: %s", type(exc).__name__, exc)
                self.bridge.analysis_failed.emit(job_id, str(exc) or type(exc).__name__)
                return
            finally:
                with self._lock:
                    self._flags.pop(job_id, None)
            self.bridge.analysis_done.emit(job_id, analysis, {"key": request.key})

        self._submit(job)
        return job_id

    def _reporter(self, job_id: int) -> Callable[..., None]:
        """The engine's ``on_progress`` for one job, as the bridge's progress signal."""
        def on_progress(*args: Any, **kwargs: Any) -> None:
            fraction, text = _progress_args(args, kwargs)
            self.bridge.progress.emit(job_id, fraction, text)

        return on_progress

    def run_task(self, fn: Callable[[], Any]) -> int:
        """Run a plain function (an export) on the pool thread; task_done/task_failed report it."""
        job_id = next(self._ids)

        def job() -> None:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - reported to the window, which shows one sentence
                self.bridge.task_failed.emit(job_id, exc)
                return
            self.bridge.task_done.emit(job_id, result)

        self._submit(job)
        return job_id

    def run_cancellable(self, fn: Callable[[Callable[..., None], CancelFlag], Any]) -> int:
        """Run ``fn(on_progress, cancel)`` (e.g. a faithfulness check on the engine) on the pool thread.

        Like an analysis it reports ``progress(job, fraction, step)`` and stops at the engine's next
        step once cancelled, by :meth:`cancel_job`, by :meth:`cancel` or by a newer analysis (which
        queues behind it). Unlike one it never becomes the current analysis. ``task_done(job,
        result)`` reports its result, ``task_failed(job, error)`` a failure, or ``AnalysisCancelled``
        when it was cancelled (a result that raced past the cancel is dropped).
        """
        job_id = next(self._ids)
        flag = CancelFlag()
        with self._lock:
            self._flags[job_id] = flag

        on_progress = self._reporter(job_id)

        def job() -> None:
            from ..inference.engine import AnalysisCancelled

            try:
                if flag.is_set():
                    raise AnalysisCancelled()
                self.bridge.progress.emit(job_id, 0.0, "starting")
                result = fn(on_progress, flag)
                if flag.is_set():
                    raise AnalysisCancelled()
            except Exception as exc:  # noqa: BLE001 - AnalysisCancelled included: the caller tells them apart
                if not isinstance(exc, AnalysisCancelled):
                    log.warning("background task failed: %s: %s", type(exc).__name__, exc)
                self.bridge.task_failed.emit(job_id, exc)
                return
            finally:
                with self._lock:
                    self._flags.pop(job_id, None)
            self.bridge.task_done.emit(job_id, result)

        self._submit(job)
        return job_id

    def cancel_job(self, job_id: int) -> None:
        """Ask one queued or running job (an analysis or a cancellable task) to stop."""
        with self._lock:
            flag = self._flags.get(job_id)
            if flag is not None:
                flag.set()
                self._cancelled.add(job_id)

    def cancel(self) -> None:
        """Ask every queued or running analysis to stop at its next step."""
        with self._lock:
            self._cancel_locked()

    def _cancel_locked(self) -> None:
        for job_id, flag in self._flags.items():
            flag.set()
            self._cancelled.add(job_id)

    def is_current(self, job_id: int) -> bool:
        """True when *job_id* is the newest analysis and was not cancelled (its result may be applied)."""
        with self._lock:
            return job_id == self._latest_analysis and job_id not in self._cancelled

    def shutdown(self, msecs: int = 5000) -> None:
        self.cancel()
        self._pool.waitForDone(msecs)


def analysis_threads() -> int:
    """Torch threads for the window's analyses: every core but one, which stays free for the GUI.

    Measured on 2 cores (histology pair, `medkd bench gui`-style runs alternated, 3 each): 1 thread
    vs 2 gave study-to-overlays 358-396 vs 433-495 ms and longest loop gap 56-74 vs 71-110 ms. With
    every core busy in torch, the window's own painting (about 20 ms a repaint) has to wait for one.
    """
    return max(1, (os.cpu_count() or 1) - 1)


def default_engine_factory(device: str | None) -> tuple[Any, Any]:
    """Build the real engine and registry (imports torch; runs on the pool thread)."""
    import torch

    from ..inference.engine import Engine
    from ..models.registry import ModelRegistry

    torch.set_num_threads(analysis_threads())

    registry = ModelRegistry()
    engine = Engine(registry=registry, device=None if device in (None, "auto") else device)
    return engine, registry
