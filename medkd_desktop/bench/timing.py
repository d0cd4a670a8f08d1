"""Median-of-runs timing shared by every benchmark."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def time_call(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Run *fn* ``warmup`` times untimed, then ``repeat`` times; report median and min in ms."""
    return time_interleaved({"fn": fn}, repeat=repeat, warmup=warmup)["fn"]


def time_interleaved(fns: dict[str, Callable[[], Any]], repeat: int = 5, warmup: int = 1) -> dict[str, dict[str, float]]:
    """Time several callables in turn, one call of each per round; report each as ``time_call`` does.

    Why: a ratio of two timings (teacher vs student) is only fair when both saw the same machine.
    Timed one after the other, 30 runs each, a shared host that slows down for a few seconds
    inflates one side only (seen here: one task's speed-up read 2.8x and 3.9x in two runs a minute
    apart); alternating the calls spreads such a slowdown over both.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1000.0)
    return {
        name: {"median_ms": round(statistics.median(ts), 2), "min_ms": round(min(ts), 2), "runs": len(ts)}
        for name, ts in times.items()
    }


#: Above this share of stolen CPU a benchmark says its timings are inflated.
STEAL_WARN_PCT = 10.0


def _cpu_times() -> list[int] | None:
    """user, nice, system, idle, iowait, irq, softirq, steal (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    return [int(v) for v in fields[1:9]] if fields and fields[0] == "cpu" and len(fields) >= 9 else None


class CpuSteal:
    """CPU time the virtual machine's host took back while a block ran, in percent.

    Why: on a shared virtual machine the host can take most of the CPU (seen on the 2-core
    development machine: 60-96 % for minutes at a time), which inflates every timing by the
    same factor; a benchmark figure is only comparable with the steal it was taken under.
    """

    def __init__(self) -> None:
        self.pct: float | None = None
        self._before: list[int] | None = None

    def __enter__(self) -> CpuSteal:
        self._before = _cpu_times()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _cpu_times()
        if self._before and after:
            total = sum(after) - sum(self._before)
            self.pct = round(100.0 * (after[7] - self._before[7]) / total, 1) if total > 0 else None
