"""`medkd info`: what a study is, without its patient identifiers."""
from __future__ import annotations

import argparse
from typing import Any

from .common import print_json


def _cmd_info(args: argparse.Namespace) -> None:
    from ..studies import open_study

    study = open_study(args.path, series_uid=args.series)
    summary = study.summary()
    if args.json:
        print_json(summary)
        return
    window = summary["window"]
    lines = [
        ("kind", summary["kind"]),
        ("modality", summary["modality"]),
        ("frames", f"{summary['n_frames']} ({summary['n_volumes']} volume(s) x {summary['n_slices']} slice(s))"),
        ("shape", " x ".join(map(str, summary["shape"]))),
        ("photometric", summary["photometric"] or "-"),
        ("orientation", summary["orientation"]),
        ("window", f"center {window['center']:g}, width {window['width']:g}" if window else "- (colour)"),
        ("pixel spacing", " x ".join(f"{s:g}" for s in summary["pixel_spacing"]) + " mm" if summary["pixel_spacing"] else "-"),
    ]
    meta = summary["metadata"]
    for key in ("body_part", "view_position", "series_description", "manufacturer"):
        if meta.get(key):
            lines.append((key.replace("_", " "), meta[key]))
    if summary["tiles"]:
        t = summary["tiles"]
        lines.append(("tiles", f"{t['rows']} x {t['cols']} of {t['tile_size']} px"))
    if summary["maps"]:
        lines.append(("summary maps", ", ".join(summary["maps"])))
    if summary["series"]:
        lines.append(("series in folder", str(len(summary["series"]))))
    for key, value in lines:
        print(f"{key:>16}: {value}")
    for w in summary["warnings"]:
        print(f"{'warning':>16}: {w}")


def add_parsers(sub: Any) -> None:
    info = sub.add_parser("info", help="describe a study (no patient identifiers)")
    info.add_argument("path", help="DICOM file or series folder, NIfTI, PNG/JPEG/TIFF")
    info.add_argument("--series", help="SeriesInstanceUID to open when a folder holds several")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)
