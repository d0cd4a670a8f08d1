"""Sizes of the built bundle for docs/PACKAGING.md: the whole, the ten largest parts, what the
spec's exclusions saved, and an estimate of the Windows (CPU torch) bundle from the parts.

    build/package-venv/bin/python packaging/sizes.py [--json FILE]

Why measured from the build: "what dominates the size" and "what an exclusion saved" are claims
about files; this reads them from dist/medkd-desktop and from the build venv they came from.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
BUNDLE = DIST / "medkd-desktop"
MB = 1024 * 1024
#: Parts of the Linux bundle a Windows bundle does not have: torch there is the CPU build.
CUDA_ONLY = ("nvidia/", "torch/lib/libtorch_cuda", "torch/lib/libc10_cuda", "torch/lib/libcaffe2_nvrtc",
             "torch/lib/libtorch_nvshmem", "cuda_bindings/", "cuda/")


def files(root: Path) -> dict[str, int]:
    """Relative path -> bytes, each file once (symlinks not followed)."""
    return {p.relative_to(root).as_posix(): p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def part_of(rel: str) -> str:
    """Group a bundle path into a part worth naming: a library file when large, else its package."""
    parts = rel.split("/")
    if parts[0] == "_internal":
        parts = parts[1:]
    if len(parts) == 1:
        return parts[0]
    if parts[0] == "nvidia":
        return "/".join(parts[:2])  # nvidia/cudnn, nvidia/cu13, ...
    if parts[0] in ("torch", "PySide6") and len(parts) > 2 and parts[1] in ("lib", "Qt"):
        return "/".join(parts[:3]) if parts[1] == "lib" else "PySide6/Qt/" + parts[2]
    if parts[0] == "medkd_desktop":
        return "medkd_desktop/_bundled (models, samples)" if "_bundled" in parts else "medkd_desktop"
    return parts[0]


def venv_site() -> Path:
    venv = REPO / "build" / "package-venv" / "lib"
    return next(venv.glob("python3*/site-packages"))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) if path.exists() else 0


def savings(site: Path) -> list[tuple[str, int]]:
    """What each exclusion of the spec left out, measured in the build venv."""
    cu13 = site / "nvidia" / "cu13" / "lib"
    dropped_cuda = ("libcusolverMg.so", "libnvrtc.alt.so", "libnvrtc-builtins.alt.so", "libnvblas.so", "libcufftw.so",
                    "libnvperf_host.so", "libnvperf_target.so", "libpcsamplingutil.so", "libcheckpoint.so")
    qt_plugins = site / "PySide6" / "Qt" / "plugins"
    out = [
        ("triton (torch.compile's GPU compiler; never imported)", dir_size(site / "triton")),
        ("unused CUDA 13 libraries (multi-GPU solver, alt NVRTC, BLAS/FFTW shims, profiler helpers)",
         sum(p.stat().st_size for p in cu13.glob("lib*") if p.name.startswith(dropped_cuda))),
        ("torch C++ headers and CMake files (torch/include, torch/share)",
         dir_size(site / "torch" / "include") + dir_size(site / "torch" / "share")),
        ("CUDA headers and static libraries (nvidia/*/include, *.a)",
         sum(dir_size(p) for p in (site / "nvidia").glob("*/include")) + sum(p.stat().st_size for p in (site / "nvidia").rglob("*.a"))),
        ("Qt QML/Quick/PDF libraries and plugins (PySide6-Essentials has no WebEngine/3D/Multimedia)",
         sum(p.stat().st_size for p in (site / "PySide6" / "Qt" / "lib").glob("libQt6*") if
             p.name.startswith(("libQt6Qml", "libQt6Quick", "libQt6Pdf", "libQt6VirtualKeyboard")))
         + dir_size(qt_plugins / "qmltooling")),
        ("Qt tools shipped in the wheel (designer, linguist, qmlls, ...: never collected)",
         sum(p.stat().st_size for p in (site / "PySide6").iterdir() if p.is_file() and p.suffix == "" and p.stat().st_size > 100_000)),
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not BUNDLE.is_dir():
        print("error: no dist/medkd-desktop (make package)", file=sys.stderr)
        return 2
    sizes = files(BUNDLE)
    total = sum(sizes.values())
    parts = Counter()
    for rel, n in sizes.items():
        parts[part_of(rel)] += n
    cuda = sum(n for rel, n in sizes.items() if rel.removeprefix("_internal/").startswith(CUDA_ONLY))
    artefacts = {p.name: p.stat().st_size for p in DIST.glob("medkd-desktop*") if p.is_file()}
    saved = savings(venv_site())
    report = {
        "bundle_bytes": total, "files": len(sizes), "artefacts": artefacts,
        "largest": parts.most_common(10), "cuda_only_bytes": cuda,
        "windows_estimate_bytes": total - cuda, "saved": saved,
    }
    print(f"bundle: {total / MB:,.0f} MB in {len(sizes):,} files")
    for name, n in artefacts.items():
        print(f"{name}: {n / MB:,.0f} MB")
    print("\nten largest parts:")
    for name, n in parts.most_common(10):
        print(f"  {n / MB:8,.0f} MB  {100 * n / total:4.1f} %  {name}")
    print(f"\nCUDA-only parts: {cuda / MB:,.0f} MB ({100 * cuda / total:.0f} %); without them (Windows, CPU torch, "
          f"estimate): {(total - cuda) / MB:,.0f} MB")
    print("\nleft out by the spec (measured in the build venv):")
    for what, n in saved:
        print(f"  {n / MB:8,.0f} MB  {what}")
    print(f"  {sum(n for _, n in saved) / MB:8,.0f} MB  in all")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
