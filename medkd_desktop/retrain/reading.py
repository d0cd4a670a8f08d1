"""Read every item through ``open_study`` and the card's preprocessing: the pixels the model learns
from are the pixels the window will show it.

Why each file is tried on its own: a hospital export always holds a few files that are not what
they seem (a report PDF, a truncated DICOM, a scout image in an unsupported syntax). Those are
skipped and listed with the reader's own sentence; the run goes on with the rest and fails only
when too few remain (``summary``).

The result (images in [0, 1] as float16, the hashed patient groups, the perceptual hashes, the
skipped list) is cached in the run folder, keyed by the files' names, sizes and times and the
input spec: re-running the command to resume a run does not read a thousand files again.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.preprocess import InputSpec, model_input_image, to_model_range
from ..studies import StudyLoadError, open_study
from ..trust.audit import identifier_hash
from .discover import Item
from .phash import phash

#: fMRI maps are rendered as glass brains (~1.5 s each): a process pool pays off from this many.
PARALLEL_MIN = 16


@dataclass(frozen=True)
class Skipped:
    path: str  # as the user's folder names it
    reason: str


@dataclass
class ReadData:
    """The readable items, in discovery order, with what training and the summary need."""

    items: list[Item]
    x: torch.Tensor  # (N, C, S, S) float16 in [0, 1]
    groups: list[str]  # hashed patient (CSV patient_id, else DICOM PatientID, else one per file)
    hashes: np.ndarray  # (N,) uint64 perceptual hashes
    skipped: list[Skipped]


def _read_one(path: Path, spec: InputSpec) -> tuple[np.ndarray | None, str, str | None]:
    """(image float16 (C, S, S), the study's PatientID (in memory only), None) or (None, "", reason)."""
    try:
        study = open_study(path)
        image = to_model_range(model_input_image(study, spec), spec)
    except StudyLoadError as exc:
        return None, "", str(exc)
    except ValueError as exc:  # e.g. an fMRI card's map missing from this NIfTI
        return None, "", str(exc)
    return image.to(torch.float16).numpy(), study.identifiers.patient_id or "", None


def _init_worker() -> None:
    torch.set_num_threads(1)


def _read_all(paths: list[Path], spec: InputSpec, workers: int):
    if workers <= 1:
        yield from (_read_one(p, spec) for p in paths)
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process whose torch threads run
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        yield from pool.map(_read_one, paths, [spec] * len(paths), chunksize=4)


def _cache_key(items: list[Item], spec: InputSpec) -> str:
    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for it in items:
        try:
            st = it.path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{it.path}|{it.label}|{it.patient}|{it.split}|{stamp}\n".encode())
    return h.hexdigest()[:24]


def read_items(items: list[Item], spec: InputSpec, root: Path, cache_dir: Path | None = None,
               on_progress: Callable[[int, int], None] | None = None, workers: int | None = None) -> ReadData:
    key = _cache_key(items, spec)
    cached = _load_cache(cache_dir, key, items) if cache_dir else None
    if cached is not None:
        return cached
    n = len(items)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if spec.fmri_map and n >= PARALLEL_MIN else 1
    ok: list[int] = []
    arrays: list[np.ndarray] = []
    groups: list[str] = []
    skipped: list[Skipped] = []
    for i, (arr, patient, error) in enumerate(_read_all([it.path for it in items], spec, workers)):
        it = items[i]
        if error is not None:
            skipped.append(Skipped(it.display(root), error))
        else:
            ok.append(i)
            arrays.append(arr)
            # the CSV's patient first, else the DICOM's, else the file is its own group
            raw = it.patient or patient
            groups.append(identifier_hash(f"patient:{raw}" if raw else f"file:{it.path}")[:16])
        if on_progress and (i % 20 == 0 or i == n - 1):
            on_progress(i + 1, n)
    x = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty((0, spec.channels, spec.size, spec.size),
                                                                      dtype=torch.float16)
    hashes = np.array([phash(x[j]) for j in range(len(arrays))], dtype=np.uint64)
    data = ReadData([items[i] for i in ok], x, groups, hashes, skipped)
    if cache_dir:
        _save_cache(cache_dir, key, data, ok)
    return data


def _save_cache(folder: Path, key: str, data: ReadData, ok: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tmp.npz"
    np.savez(tmp, x=data.x.numpy(), hashes=data.hashes, ok=np.array(ok, dtype=np.int64))
    meta = {"groups": data.groups, "skipped": [[s.path, s.reason] for s in data.skipped]}
    (folder / f"{key}.json").write_text(json.dumps(meta))
    tmp.replace(folder / f"{key}.npz")


def _load_cache(folder: Path, key: str, items: list[Item]) -> ReadData | None:
    npz, meta_path = folder / f"{key}.npz", folder / f"{key}.json"
    if not (npz.is_file() and meta_path.is_file()):
        return None
    try:
        with np.load(npz, allow_pickle=False) as z:
            x, hashes, ok = torch.from_numpy(z["x"]), z["hashes"], z["ok"].tolist()
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, KeyError):
        return None
    return ReadData([items[i] for i in ok], x, list(meta["groups"]), hashes,
                    [Skipped(p, r) for p, r in meta["skipped"]])
