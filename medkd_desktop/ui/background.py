"""One call of core code on a pool thread, with progress and cancel, reported back by signals.

Why not the analysis worker: its single thread keeps the engine's model cache to one thread, and
a retrieval of a large series from the PACS must neither wait behind an analysis nor make one
wait. Network calls (``pacs``) run here, on Qt's global pool; the GUI thread only receives the
signals. ``fn(progress, cancel)`` is the core's convention: ``progress(done, total)`` and
``cancel() -> bool`` are called in the pool thread.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Signals(QObject):
    progress = Signal(int, object)  # done, total (None: unknown)
    done = Signal(object)  # the call's result
    failed = Signal(object)  # the exception


class BackgroundCall(QRunnable):
    """Run ``fn(progress, cancel)`` on ``QThreadPool.globalInstance()``; connect to ``signals``
    before :meth:`start`. :meth:`cancel` sets the flag the core polls."""

    def __init__(self, fn: Callable[[Callable[[int, Any], None], Callable[[], bool]], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = _Signals()
        self._cancel = threading.Event()
        self.setAutoDelete(False)  # the dialog keeps it until its signals have been delivered

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def start(self) -> BackgroundCall:
        QThreadPool.globalInstance().start(self)
        return self

    def run(self) -> None:  # pool thread
        try:
            result = self.fn(lambda done, total=None: self.signals.progress.emit(int(done), total), self._cancel.is_set)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the dialog as one message
            log.info("background call failed: %s", type(exc).__name__)
            self.signals.failed.emit(exc)
            return
        self.signals.done.emit(result)
