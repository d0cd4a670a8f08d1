"""The installed app's self-test: ``medkd-desktop --selftest [--json]`` and ``medkd selftest``.

Why: a PyInstaller bundle fails in ways a source install never does. A decoder plugin found
through package metadata is silently missing, a data file (nilearn's brain outlines,
highdicom's colour profile) was not collected, a module is picked up from a stray
site-packages instead of the bundle, a multiprocessing child re-runs the GUI. None of that
shows until a clinician opens the wrong kind of file. Each known trap is therefore checked here
by doing the real thing with the app's own functions (``open_study``, the registry, the
engine, the report exporters), not by looking for files.

The checks are Qt-free; the window adds its own (platform plugins, a window drawn) through
``extra`` (see ``medkd_desktop.ui.selftest_qt``). The same code runs from a source install, so
the tests exercise it without a build (``tests/packaging``).
"""
from __future__ import annotations

import json
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import MedKDError
from .runtime import bundle_dir, is_frozen

__all__ = ["CheckResult", "SelfTestReport", "SelfTestContext", "Check", "run_selftest", "default_checks"]


class CheckFailed(Exception):
    """A check's clear "no", with one sentence saying what is wrong (no patient data)."""


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, how long it took and one line of detail."""

    name: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class SelfTestContext:
    """What checks hand on to later ones (the analyses reused by the report check)."""

    analyses: dict[str, Any] = field(default_factory=dict)  # task -> (analysis, study, pair)
    facts: dict[str, Any] = field(default_factory=dict)


#: A check returns its one-line detail, or raises CheckFailed (or anything else: a failure too).
Check = tuple[str, Callable[[SelfTestContext], str]]


@dataclass(frozen=True)
class SelfTestReport:
    """Everything ``--json`` prints; ``ok`` only when every check passed."""

    version: str
    frozen: bool
    bundle: str | None
    python: str
    platform: str
    checks: list[CheckResult]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        lines = [f"MedKD Desktop {self.version} self-test ({'frozen bundle ' + str(self.bundle) if self.frozen else 'source install'})"]
        for c in self.checks:
            lines.append(f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<16} {c.seconds:6.1f} s  {c.detail}")
        failed = [c.name for c in self.checks if not c.ok]
        lines.append("all checks passed" if self.ok else f"FAILED: {', '.join(failed)}")
        return "\n".join(lines)


def app_version() -> str:
    """The installed distribution's version (the bundle carries its metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medkd-desktop")
    except PackageNotFoundError:
        return "unknown"


def default_checks() -> list[Check]:
    """The Qt-free checks, in the order they run (``modules`` last: it inspects what the others imported)."""
    from . import checks

    return [
        ("user_folders", checks.check_user_folders),
        ("no_console", checks.check_no_console),
        ("codecs", checks.check_codecs),
        ("samples", checks.check_samples),
        ("glass_brain", checks.check_glass_brain),
        ("models", checks.check_models),
        ("report", checks.check_report),
        ("cuda", checks.check_cuda),
        ("multiprocessing", checks.check_multiprocessing),
    ]


def run_selftest(extra: Sequence[Check] = (), only: Sequence[str] | None = None,
                 progress: Callable[[CheckResult], None] | None = None) -> SelfTestReport:
    """Run the default checks, then *extra* (the window's), then the module-origin check.

    *only*: names of checks to run (tests run a subset); *progress* is called after each check.
    A check that raises fails with the exception's first line; the traceback goes to the log,
    never to the detail (it could quote a path with a patient's name in it).
    """
    from . import checks

    ctx = SelfTestContext()
    todo = [*default_checks(), *extra, ("modules", checks.check_modules)]
    results: list[CheckResult] = []
    for name, fn in todo:
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            detail, ok = fn(ctx), True
        except CheckFailed as exc:
            detail, ok = str(exc), False
        except MedKDError as exc:  # the app's own typed error: its sentence, and the library's text
            detail, ok = f"{type(exc).__name__}: {exc}" + (f" ({exc.detail})" if exc.detail else ""), False
        except Exception as exc:  # noqa: BLE001 - any failure is this check's failure, reported as such
            import logging

            logging.getLogger(__name__).debug("self-test %s failed:\n%s", name, traceback.format_exc())
            detail, ok = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip(), False
        result = CheckResult(name, ok, round(time.perf_counter() - t0, 2), detail)
        results.append(result)
        if progress is not None:
            progress(result)
    bundle = bundle_dir()
    return SelfTestReport(version=app_version(), frozen=is_frozen(), bundle=str(bundle) if bundle else None,
                          python=platform.python_version(), platform=f"{sys.platform}-{platform.machine()}",
                          checks=results)
