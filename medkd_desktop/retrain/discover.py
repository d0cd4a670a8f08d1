"""What the user pointed at: a folder with one subfolder per class, or a CSV ``path,label[,patient_id][,split]``.

Why class names must be the teacher's: the new student is distilled from the bundled teacher, so
it predicts the teacher's classes in the teacher's order; a folder called ``Pneumonia`` is the
class ``pneumonia`` (case is ignored), a folder called ``viral`` is a mistake to report, listing
the names that would work, before anything is read.

An item is one study: a file (DICOM, PNG/JPEG/TIFF, NIfTI), or a folder of DICOM files (a series).
Inside a class folder, a subfolder whose first file is DICOM is one series; any other subfolder
is searched for files (e.g. ``normal/patient-12/*.png``). Hidden files and folders are ignored.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..studies import FileKind, sniff
from .errors import RetrainError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One labelled study. *patient* and *split* come from the CSV when it has them; the patient
    is held in memory only (it is hashed before anything is written)."""

    path: Path
    label: str  # the teacher's class name
    patient: str = ""
    split: str = ""

    def display(self, root: Path) -> str:
        """The path as the user's own folder names it (relative to what they pointed at)."""
        try:
            return str(self.path.relative_to(root))
        except ValueError:
            return str(self.path)


def _hidden(p: Path) -> bool:
    return p.name.startswith(".") or p.name.startswith("__")


def _is_dicom_folder(folder: Path) -> bool:
    first = next((f for f in sorted(folder.iterdir()) if f.is_file() and not _hidden(f)), None)
    if first is None:
        return False
    try:
        return sniff(first) is FileKind.DICOM
    except Exception:  # noqa: BLE001 - an unreadable first file: not a series; its files are tried one by one
        return False


def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(folder.iterdir()):
        if _hidden(p):
            continue
        if p.is_dir():
            out.extend([p] if _is_dicom_folder(p) else _walk(p))
        elif p.is_file():
            out.append(p)
    return out


def match_label(name: str, classes: list[str], where: str) -> str:
    by_lower = {c.lower(): c for c in classes}
    key = name.strip().lower()
    if key not in by_lower:
        raise RetrainError(f"{where} {name!r} is not one of this task's classes; expected: {', '.join(classes)}")
    return by_lower[key]


def from_folder(root: Path, classes: list[str]) -> list[Item]:
    subfolders = [p for p in sorted(root.iterdir()) if p.is_dir() and not _hidden(p)]
    if not subfolders:
        raise RetrainError(f"{root.name} has no class subfolders; make one subfolder per class "
                           f"({', '.join(classes)}) with the images inside")
    items: list[Item] = []
    for folder in subfolders:
        label = match_label(folder.name, classes, "class folder")
        items.extend(Item(p, label) for p in _walk(folder))
    return items


def from_csv(path: Path, classes: list[str]) -> list[Item]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in columns or "label" not in columns:
            raise RetrainError(f"{path.name} needs the columns path,label[,patient_id][,split]; "
                               f"it has: {', '.join(columns) or 'none'}")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    items: list[Item] = []
    for n, r in enumerate(rows, start=2):
        if not r.get("path"):
            continue
        split = r.get("split", "").lower()
        if split and split not in SPLITS:
            raise RetrainError(f"{path.name} line {n}: split {r['split']!r} must be one of {', '.join(SPLITS)} (or empty)")
        p = Path(r["path"])
        items.append(Item(p if p.is_absolute() else path.parent / p,
                          match_label(r.get("label", ""), classes, f"{path.name} line {n}: label"),
                          r.get("patient_id", ""), split))
    return items


def discover(data: Path, classes: list[str]) -> list[Item]:
    """Items of a class-folder tree or a CSV, with labels matched to *classes*. Raises
    RetrainError for a missing or empty input and for labels the teacher does not know."""
    data = Path(data)
    if not data.exists():
        raise RetrainError(f"{data} does not exist")
    items = from_folder(data, classes) if data.is_dir() else from_csv(data, classes)
    if not items:
        raise RetrainError(f"no images found in {data.name}")
    found = sorted({i.label for i in items})
    if len(found) < 2:
        raise RetrainError(f"only one class ({found[0]}) has images; a classifier needs images of at least two "
                           f"of: {', '.join(classes)}")
    return items
