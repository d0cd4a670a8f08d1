"""Run one network exchange with cancel, a total time limit and progress, none of which block.

Why a helper thread: pynetdicom's calls (associate, C-GET, C-MOVE) and an HTTP read block until
the server answers or their idle time-out passes, so a cancel button or an overall time limit
checked between messages could wait for minutes. The exchange runs in a daemon thread; the
thread that made the call stays here, polls ``cancel()`` and the deadline every 50 ms, and
relays progress. So ``progress`` and ``cancel`` are only ever called in the caller's thread
(a Qt worker's).

Each received instance is handed over with :meth:`Supervisor.report`, which waits until the
caller's thread has shown it and asked ``cancel()``: after ``cancel()`` returns True at most the
instance in flight is still written.

Stopping is graceful first: a C-CANCEL (the standard's way; Orthanc and DCMTK servers answer
it at once), and only if the exchange is still running ``GRACE_S`` later an A-ABORT or a closed
HTTP session. Aborting straight away is not safe with pynetdicom: an abort that lands while a
C-STORE sub-operation is being answered kills its association thread, which then hangs until
its idle time-out. The caller does not wait for any of that: it returns as soon as no file is
being written (writes are bracketed by :meth:`begin_write` / :meth:`end_write` and refused once
stopped), so after a cancel or a time-out nothing more appears in the cache.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import PacsCancelledError, PacsTimeoutError
from .records import Cancel, Progress

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_S = 0.05
#: After a stop, how long the graceful way (C-CANCEL) has before the hard one (abort).
GRACE_S = 1.0
#: How long the caller waits, after a stop, for a file write in progress to finish.
UNWIND_S = 3.0
_DONE = object()


class Supervisor:
    def __init__(self, *, cancel: Cancel | None, progress: Progress | None, total_timeout: float | None,
                 idle_timeout: float) -> None:
        self._cancel = cancel
        self._progress = progress
        self._total = total_timeout
        self._idle = idle_timeout
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._stoppers: list[tuple[Callable[[], None], float]] = []  # (stopper, seconds after the stop)
        self._stopped_at: float | None = None
        self._returned = False
        self._writers = 0
        self._finished = threading.Event()
        self.stopped = threading.Event()
        self.stop_reason: str | None = None  # "cancel", "total" or "error"
        self._error: BaseException | None = None
        self.started = time.monotonic()

    # ---- from the exchange's threads

    def on_stop(self, stopper: Callable[[], None], *, after: float = 0.0) -> None:
        """Register how to stop the exchange: at once (*after* 0: a C-CANCEL) or only if it is still
        running *after* seconds past the stop (an abort). Registered late (an association that came
        up after the deadline), it runs at once."""
        with self._lock:
            if not self.stopped.is_set():
                self._stoppers.append((stopper, after))
                return
            late = after == 0 or self._returned
            if not late:
                self._stoppers.append((stopper, after))
        if late:
            _quietly(stopper)

    def report(self, done: int, total: int | None) -> bool:
        """Hand progress to the caller's thread and wait until it has been handled; False: stop now."""
        if self.stopped.is_set():
            return False
        ack = threading.Event()
        self._events.put((done, total, ack))
        ack.wait(self._idle)
        return not self.stopped.is_set()

    def begin_write(self) -> bool:
        """Before writing a received file: False (write nothing) once stopped."""
        with self._lock:
            if self.stopped.is_set():
                return False
            self._writers += 1
            return True

    def end_write(self) -> None:
        with self._lock:
            self._writers -= 1

    def fail(self, error: BaseException) -> None:
        """Stop the exchange because of *error* (e.g. the cache disk is full); :meth:`run` raises it."""
        self._stop("error", error)
        self._run_stoppers()

    def remaining(self) -> float | None:
        """Seconds left before the total time-out (None: no limit)."""
        if self._total is None:
            return None
        return max(0.0, self._total - (time.monotonic() - self.started))

    def total_timeout_error(self) -> PacsTimeoutError:
        return PacsTimeoutError(
            f"The PACS transfer took longer than the {self._total or 0:g} s allowed; try again, retrieve one series "
            "at a time, or raise the time limit in the settings.", which="total", seconds=float(self._total or 0))

    # ---- in the caller's thread

    def run(self, work: Callable[[], T]) -> T:
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                self._finished.set()
                self._events.put(_DONE)

        thread = threading.Thread(target=target, name="medkd-pacs", daemon=True)
        thread.start()
        try:
            self._watch()
        finally:
            with self._lock:
                self._returned = True
                later, self._stoppers = self._stoppers, []
            for stopper, after in later:  # the hard way, if the exchange has not ended by then
                timer = threading.Timer(max(0.0, (self._stopped_at or 0) + after - time.monotonic()),
                                        lambda s=stopper: None if self._finished.is_set() else _quietly(s))
                timer.daemon = True
                timer.start()
        if self.stop_reason == "error" and self._error is not None:
            raise self._error
        if self.stop_reason == "cancel":
            raise PacsCancelledError()
        if self.stop_reason == "total":
            raise self.total_timeout_error()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    def _watch(self) -> None:
        while True:
            try:
                item = self._events.get(timeout=POLL_S)
            except queue.Empty:
                item = None
            except KeyboardInterrupt:  # Ctrl-C in the CLI: stop the exchange, then stop as asked
                self._stop("cancel")
                self._run_stoppers(hard=True)
                raise
            if item is _DONE:
                return
            try:
                if item is not None and not self.stopped.is_set() and self._progress is not None:
                    self._progress(item[0], item[1])
                self._check()
            except BaseException as exc:  # a callback failed: stop the exchange, then raise it here
                self._stop("error", exc)
            finally:
                if item is not None:
                    item[2].set()  # the exchange's thread goes on and sees the stop flag
            self._run_stoppers()
            if self.stopped.is_set():
                with self._lock:
                    writing = self._writers > 0
                if not writing:
                    return  # nothing more can reach the cache; the exchange unwinds on its own
                if time.monotonic() - (self._stopped_at or 0) > UNWIND_S:
                    log.info("a PACS file write still running %.0f s after the stop", UNWIND_S)
                    return

    def _check(self) -> None:
        if self.stopped.is_set():
            return
        if self._cancel is not None and self._cancel():
            self._stop("cancel")
        elif self._total is not None and time.monotonic() - self.started > self._total:
            self._stop("total")

    def _stop(self, reason: str, error: BaseException | None = None) -> None:
        with self._lock:
            if self.stopped.is_set():
                return
            self.stop_reason, self._error = reason, error
            self._stopped_at = time.monotonic()
            self.stopped.set()

    def _run_stoppers(self, hard: bool = False) -> None:
        """The stoppers that are due: the graceful ones at once, the others after their delay."""
        with self._lock:
            if self._stopped_at is None:
                return
            elapsed = time.monotonic() - self._stopped_at
            due = [s for s, after in self._stoppers if hard or after <= elapsed]
            self._stoppers = [(s, after) for s, after in self._stoppers if not (hard or after <= elapsed)]
        for stopper in due:
            _quietly(stopper)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # stopping must not fail the stop
        log.debug("stopping a PACS exchange: %s", type(exc).__name__)
