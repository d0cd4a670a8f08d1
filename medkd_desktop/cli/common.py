"""What every `medkd` subcommand shares: exit codes, the one-line user error, JSON output, the
overlay options, and the checks of --device and --out made before any work starts."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3


class _ColormapNames:
    """argparse ``choices`` that import the overlay renderer (and so torch) only when asked:
    ``medkd info`` must not pay for it."""

    def _names(self) -> list[str]:
        from ..explain.overlay import COLORMAPS

        return list(COLORMAPS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def add_overlay_args(p: argparse.ArgumentParser) -> None:
    """The review window's overlay controls, with its defaults (so files look like the screen)."""
    p.add_argument("--colormap", choices=_ColormapNames(), help="heat colours (default: the window's, inferno)")
    p.add_argument("--opacity", type=float, help="overlay opacity in [0, 1] (default: the window's, 0.45)")
    p.add_argument("--threshold", type=float,
                   help="heat below this is not drawn, in [0, 1) (default 0: the window's fade-in only)")


class UserError(Exception):
    """A problem with what the user asked for (bad path, bad option): exit 2, one line."""


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def measured(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a benchmark and record the CPU steal it ran under (warned about on stderr when high)."""
    from ..bench.timing import STEAL_WARN_PCT, CpuSteal

    with CpuSteal() as steal:
        result = run()
    result["cpu_steal_pct"] = steal.pct
    if steal.pct is not None and steal.pct > STEAL_WARN_PCT:
        print(f"warning: the host took {steal.pct:.0f}% of the CPU during this run (virtual machine steal); "
              "timings are inflated, run again on a quieter machine", file=sys.stderr)
    return result


def analysis_device(requested: str | None) -> str | None:
    """Check a --device value before any model loads (None: CUDA if present, else CPU)."""
    if requested in (None, "auto"):
        return None
    import torch

    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {requested!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA was requested but no usable GPU was found (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {requested!r} (use cpu, cuda or cuda:N)")
    return str(device)


def make_out_dir(path: str) -> Path:
    out_dir = Path(path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out_dir}: {exc.strerror}") from None
    return out_dir
