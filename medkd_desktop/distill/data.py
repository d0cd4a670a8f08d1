"""Datasets from manifests: every image goes through `open_study` and the card's preprocessing.

Why through `open_study`: the model must be trained on exactly the pixels the app will show
it. The deterministic half of preprocessing (`to_model_range`) is cached per (manifest,
split, input spec) as float16, so that epochs cost only augmentation + the model.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
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

log = logging.getLogger(__name__)

#: Columns of the image manifests in ../shared/data, and of the fMRI manifest.
IMAGE_COLUMNS = ("path", "label")
FMRI_COLUMNS = ("degree_map", "amplitude_map", "label")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    group: str  # patient / lesion / subject: the unit splits are grouped by
    split: str
    source: str


def _map_column(spec: InputSpec) -> str:
    return f"{spec.fmri_map}_map" if spec.fmri_map else "path"


def read_manifest(manifest: Path, spec: InputSpec, split: str | None = None) -> list[Sample]:
    """Rows of *manifest* (optionally one split). Paths resolve against the manifest's folder.

    Image manifests have ``path,label,patient_id,split,source``; the fMRI manifest has
    ``degree_map,amplitude_map,subject_id,site,label,split`` and the card's ``fmri_map``
    picks the column.
    """
    manifest = Path(manifest)
    column = _map_column(spec)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and column not in rows[0]:
        raise ValueError(f"{manifest.name} has no column {column!r} (columns: {', '.join(rows[0])})")
    samples = []
    for r in rows:
        if split is not None and r.get("split", "") != split:
            continue
        samples.append(Sample(
            path=manifest.parent / r[column],
            label=r["label"],
            group=r.get("patient_id") or r.get("subject_id") or "",
            split=r.get("split", ""),
            source=(r.get("source") or r.get("site") or "").split("@")[0],
        ))
    return samples


def manifest_sha256(manifest: Path) -> str:
    return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()


def load_model_range(path: Path, spec: InputSpec) -> torch.Tensor:
    """One file -> (C, size, size) in [0, 1], through open_study exactly as the app does."""
    return to_model_range(model_input_image(open_study(path), spec), spec)


#: fMRI splits at least this large are rendered by a process pool: one glass brain takes ~1.5 s
#: of one core (894 maps: 22 min serial). JPEGs decode in ~20 ms, less than a worker's start-up
#: (measured: 306 histology tiles 7.0 s serial, 10.5 s with 2 spawned workers), so they stay serial.
PARALLEL_MIN_MAPS = 16


def _load_one(path: Path, spec: InputSpec) -> tuple[np.ndarray | None, str | None]:
    """Worker: one file as float16 (C, S, S), or the error message (exceptions stay in the worker)."""
    try:
        return load_model_range(path, spec).to(torch.float16).numpy(), None
    except StudyLoadError as exc:
        return None, str(exc)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _load_all(paths: list[Path], spec: InputSpec, workers: int):
    """Yield ``_load_one`` results in order, from a spawn-started pool when *workers* > 1.

    Spawn, not fork: a forked child of a process whose torch/OpenMP threads are running can hang.
    """
    if workers <= 1:
        yield from (_load_one(p, spec) for p in paths)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        yield from pool.map(_load_one, paths, [spec] * len(paths), chunksize=8)


class CachedSplit:
    """All images of one split, preprocessed once: ``x`` (N, C, S, S) float16 in [0, 1], ``y`` (N,)."""

    def __init__(self, samples: list[Sample], classes: list[str], spec: InputSpec, cache_dir: Path | None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.samples = samples
        self.classes = classes
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({s.label for s in samples} - index.keys())
        if unknown:
            raise ValueError(f"labels not among the classes {classes}: {unknown}")
        self.y = torch.tensor([index[s.label] for s in samples], dtype=torch.long)
        self.x = self._load(spec, cache_dir, on_progress)

    @classmethod
    def from_arrays(cls, samples: list[Sample], classes: list[str], x: torch.Tensor) -> CachedSplit:
        """A split whose images were already read and preprocessed (``medkd retrain`` reads a
        user's folder itself, skipping unreadable files): ``x`` (N, C, S, S) float16 in [0, 1]."""
        if x.shape[0] != len(samples):
            raise ValueError(f"{x.shape[0]} images for {len(samples)} samples")
        split = cls.__new__(cls)
        split.samples, split.classes = samples, classes
        index = {c: i for i, c in enumerate(classes)}
        split.y = torch.tensor([index[s.label] for s in samples], dtype=torch.long)
        split.x = x
        return split

    def __len__(self) -> int:
        return len(self.samples)

    def _key(self, spec: InputSpec) -> str:
        blob = json.dumps({"spec": spec.to_dict(), "files": [str(s.path) for s in self.samples]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _load(self, spec: InputSpec, cache_dir: Path | None, on_progress) -> torch.Tensor:
        cache = cache_dir / f"{self._key(spec)}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            arr = np.load(cache, allow_pickle=False)
            if arr.shape[0] == len(self.samples):
                return torch.from_numpy(arr)
        out = torch.empty((len(self.samples), spec.channels, spec.size, spec.size), dtype=torch.float16)
        paths = [s.path for s in self.samples]
        workers = min(os.cpu_count() or 1, 8) if spec.fmri_map and len(paths) >= PARALLEL_MIN_MAPS else 1
        for i, (arr, error) in enumerate(_load_all(paths, spec, workers)):
            if error is not None:
                raise StudyLoadError(f"Training image {paths[i].name} could not be opened: {error}")
            out[i] = torch.from_numpy(arr)
            if on_progress and (i % 100 == 0 or i == len(paths) - 1):
                on_progress(i + 1, len(paths))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, out.numpy(), allow_pickle=False)
            tmp.replace(cache)
        return out
