"""One training per task at a time: an exclusive lock file held for the whole run.

Why a lock and not a check of running processes: two panels (or a panel and a terminal) on one
computer must not write the same task's checkpoint and model at once, and an OS lock is released
by the kernel when its process dies, so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from .errors import RetrainError


class TaskLock:
    def __init__(self, path: Path, task: str) -> None:
        self.path, self.task = path, task
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path), timeout=0)

    def __enter__(self) -> TaskLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise RetrainError(f"another retraining of task {self.task} is running on this computer; "
                               "wait for it to finish or stop it first") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
