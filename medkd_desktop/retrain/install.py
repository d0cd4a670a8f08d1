"""Install a new student as a version in the user's model folder: atomically, never over a bundled model.

Why the card is written last, by rename: the registry only sees a model through its card, and
``os.replace`` of a complete, fsynced card file is atomic. So a crash or a full disk at any moment
leaves either no new model or a whole one: the weights are written (temp name, fsync, rename)
before the card exists, and a weights file without a card (a crash between the two) is invisible
and swept at the next install. Bundled folders are never written: versions live in
``<user model folder>/<task>/`` under an id of their own.
"""
from __future__ import annotations

import datetime as dt
import errno
import os
import re
import shutil
from pathlib import Path

import torch

from ..models.card import ModelCard
from ..models.registry import user_models_dir
from ..models.weights import save_weights
from ..paths import BUNDLED_MODELS_DIR
from ..trust.ood import OodDetector
from .errors import RetrainError

#: room needed beyond the weights themselves (card, filesystem slack)
SPARE_BYTES = 4 << 20


def _explain(exc: OSError, folder: Path) -> RetrainError:
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return RetrainError(f"the model folder {folder} is full; free some space and run the same command again "
                            "(the training is kept)", detail=str(exc))
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return RetrainError(f"the model folder {folder} is read-only; make it writable (or set XDG_DATA_HOME) "
                            "and run the same command again", detail=str(exc))
    return RetrainError(f"the model folder {folder} cannot be written ({exc.strerror})", detail=str(exc))


def model_folder(task: str) -> Path:
    folder = user_models_dir() / task
    if folder.resolve().is_relative_to(Path(BUNDLED_MODELS_DIR).resolve()):
        raise RetrainError("the user model folder lies inside the bundled models; refusing to write there")
    return folder


def check_writable(task: str, weights_bytes: int) -> Path:
    """Fail before training, not after an hour of it, when the new model could not be stored."""
    folder = model_folder(task)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise _explain(exc, folder) from None
    free = shutil.disk_usage(folder).free
    if free < weights_bytes + SPARE_BYTES:
        raise RetrainError(f"the model folder {folder} is full ({free // 1024} KB free, "
                           f"{(weights_bytes + SPARE_BYTES) // 1024} KB needed); free some space first")
    return folder


def version_id(task: str, name: str = "", now: dt.datetime | None = None) -> str:
    """``<task>/student-<name or UTC time>``, made unique in the user's folder."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] if name else ""
    base = f"student-{slug or stamp}"
    folder, stem, n = model_folder(task), base, 2
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.safetensors").exists():
        stem, n = f"{base}-{n}", n + 1
    return f"{task}/{stem}"


def _sweep(folder: Path) -> None:
    """Leftovers of an install that died: temp files, and weights no card names."""
    named = set()
    for card in folder.glob("*.json"):
        named |= {card.with_suffix(".safetensors").name, card.with_suffix(".ood.safetensors").name}
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)
        elif p.suffix == ".safetensors" and p.name.startswith("student-") and p.name not in named:
            p.unlink(missing_ok=True)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _save(model: torch.nn.Module, path: Path) -> str:
    """save_weights, with safetensors' own I/O error (its Rust writer's "os error 28") as the
    OSError it is, so a full disk reads as one."""
    try:
        return save_weights(model, path, dtype=torch.float16)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError
        m = re.search(r"os error (\d+)", str(exc))
        if m is None:
            raise
        raise OSError(int(m.group(1)), os.strerror(int(m.group(1)))) from exc


def install(model: torch.nn.Module, card: ModelCard, detector: OodDetector | None = None) -> ModelCard:
    """Write *model* (float16 safetensors), its OOD statistics and *card* (its id ``task/stem``) into
    the user folder; the card, written last, names both files with their sha256."""
    folder = model_folder(card.task)
    stem = card.id.split("/", 1)[1]
    weights, card_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    stats = folder / f"{stem}.ood.safetensors"
    tmp_w, tmp_c = folder / f".{stem}.safetensors.tmp", folder / f".{stem}.json.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep(folder)
        sha = _save(model, tmp_w)
        with open(tmp_w, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_w, weights)
        card.weights_file, card.sha256 = weights.name, sha
        if detector is not None:
            card.ood = detector.card_field(stats.name, detector.save(stats))
        import json

        _fsync_write(tmp_c, (json.dumps(card.to_dict(), indent=2) + "\n").encode())
        os.replace(tmp_c, card_path)  # the commit: from here the registry sees a whole model
    except OSError as exc:
        for p in (tmp_w, tmp_c, weights, stats):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass
        raise _explain(exc, folder) from None
    return ModelCard.load(card_path)
