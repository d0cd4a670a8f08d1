"""The trainer: one loop for teachers, plain baseline students and distilled students.

Why one loop: a baseline and a distilled student must differ ONLY in the loss, so that the
card's "what distillation bought" is a fair comparison (same data, augmentation, budget,
seed). The loop checkpoints every epoch (a killed run resumes), reports progress as JSON
lines for the GUI, and writes safetensors + a model card at the end.

The levers for small-data training (issue #20: ``augment``/``trivial``, ``mixing``,
``averaging``, ``teachers``, ``attention``) each live in their own module and are off unless
the config names them; with none named, a run draws the same random numbers and writes the
same weights as before they existed, so existing configs and cards keep their meaning.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.card import ModelCard, TaskInfo
from ..models.preprocess import normalize
from ..models.registry import ModelRegistry, user_models_dir
from ..models.weights import ModelLoadError, save_weights
from ..paths import BUNDLED_MODELS_DIR, CONFIGS_DIR, IN_CHECKOUT, REPO_DIR, shared_data_dir
from .attention import at_loss, forward_with_map
from .augment import augment_batch
from .averaging import weight_average
from .config import TrainConfig
from .data import CachedSplit, manifest_sha256, read_manifest
from .evaluate import autocast, evaluate_split
from .losses import create_loss
from .mixing import mix_batch, mixed_loss
from .teachers import load_teacher

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], None]


class TrainingCancelled(Exception):
    pass


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` hands on: the best epoch's model (rounded to the float16 it is
    stored in, eval mode), the per-epoch history ``[epoch, train loss, val acc, val macro-F1]``,
    the training wall time, the splits and the manifest they came from."""

    model: torch.nn.Module
    history: list
    seconds: float
    splits: dict[str, CachedSplit]
    manifest: Path
    epochs_done: int
    best: float


class _TrainForward(torch.nn.Module):
    """The student's training forward as a module, so DistributedDataParallel can wrap it (DDP
    wraps ``forward``; the students train through ``forward_train``). The loss rides along so the
    gradients of a loss with parameters (the hdkd adapter) are averaged too."""

    def __init__(self, model: torch.nn.Module, loss_fn: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x: torch.Tensor, stage: int | None):
        return forward_with_map(self.model, x, stage)


class _Distributed:
    """The torchrun side of a run, a no-op in a single process (rank 0 of 1)."""

    def __init__(self) -> None:
        import torch.distributed as tdist

        self.on = tdist.is_available() and tdist.is_initialized()
        self.tdist = tdist
        self.rank = tdist.get_rank() if self.on else 0
        self.world = tdist.get_world_size() if self.on else 1
        self.main = self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.on or not any(p.requires_grad for p in module.parameters()):
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module)

    def shard(self, batch):
        """This rank's rows of a mixed batch (``MixedBatch``): rank, rank + world, ..."""
        if not self.on:
            return batch
        from dataclasses import replace

        rows = slice(self.rank, None, self.world)
        return replace(batch, x=batch.x[rows], y_a=batch.y_a[rows], y_b=batch.y_b[rows])

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop file seen by one rank stops all)."""
        if not self.on:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0])
        self.tdist.all_reduce(t, op=self.tdist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, value: float) -> float:
        if not self.on:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        self.tdist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self) -> None:
        if self.on:
            self.tdist.barrier()


def _user_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medkd-desktop", appauthor=False))


def default_cache_dir() -> Path:
    return _user_cache() / "datasets"


def default_run_dir(cfg: TrainConfig) -> Path:
    """Checkpoints live outside the checkout, so a fresh clone (or `git clean`) resumes a long run."""
    return _user_cache() / "runs" / f"{cfg.task}-{cfg.file_stem or cfg.role}"


def resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def resolve_bundled(path: str) -> Path:
    """A config's path in the repository's terms (``trained_models/fmri-asd/teacher.json``) in this
    installation, where the bundled folders may live inside the package (see ``paths``)."""
    p = Path(path)
    if p.is_absolute():
        return p
    for name, folder in (("trained_models", BUNDLED_MODELS_DIR), ("configs", CONFIGS_DIR)):
        if p.parts[:1] == (name,):
            return folder.joinpath(*p.parts[1:])
    return REPO_DIR / p


def default_out_dir(task: str) -> Path:
    """A checkout's new models join its trained_models/ (they are the ones the app will bundle).
    An installed copy's bundled folder belongs to pip, which replaces it on upgrade, so there
    they go to the user's model folder, which the registry scans as well."""
    return BUNDLED_MODELS_DIR / task if IN_CHECKOUT else user_models_dir() / task


def _sampling_weights(y: torch.Tensor, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = torch.bincount(y).float()
    w = 1.0 / counts[y]
    return w.sqrt() if mode == "sqrt" else w


def _model_stats(model: torch.nn.Module, channels: int, size: int) -> tuple[int, int, float]:
    """Parameters, FLOPs for one input, and CPU latency (batch 1, median of 20, all cores)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).cpu().eval()
    x = torch.randn(1, channels, size, size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            model(x)
        for _ in range(3):
            model(x)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1000)
    return sum(p.numel() for p in model.parameters()), int(fc.get_total_flops()), round(statistics.median(times), 2)


class Trainer:
    def __init__(self, cfg: TrainConfig, *, device: str | None = None, run_dir: Path | None = None,
                 data_root: Path | None = None, cache_dir: Path | None = None, emit: Emit | None = None,
                 should_stop: Callable[[], bool] | None = None, command: list[str] | None = None, threads: int = 0) -> None:
        self.cfg = cfg
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.data_root = data_root or shared_data_dir()
        self.run_dir = run_dir or default_run_dir(cfg)
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.emit = emit or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.command = command or sys.argv
        if self.device.type == "cpu":
            # Two one-thread runs side by side beat one two-thread run on a VM whose host steals
            # CPU time: a descheduled thread stalls its partner at every OpenMP barrier.
            torch.set_num_threads(threads or os.cpu_count() or 1)

    # -- data ---------------------------------------------------------------------------
    def _split(self, manifest: Path, name: str) -> CachedSplit:
        samples = read_manifest(manifest, self.cfg.input, name)
        if self.cfg.limit:
            rng = np.random.default_rng(self.cfg.seed)  # a fixed, class-mixed subset
            samples = [samples[i] for i in sorted(rng.permutation(len(samples))[: self.cfg.limit])]
        self.emit({"event": "data", "split": name, "n": len(samples)})
        return CachedSplit(samples, self.cfg.classes, self.cfg.input, self.cache_dir,
                           on_progress=lambda i, n: self.emit({"event": "cache", "split": name, "done": i, "total": n}))

    # -- run ----------------------------------------------------------------------------
    def run(self) -> ModelCard | None:
        """Train, test on the manifest's test split, write weights + card (rank 0 of a
        distributed run; the other ranks return None)."""
        result = self.fit()
        if result is None:
            return None
        model, test = result.model, result.splits["test"]
        test_m = evaluate_split(model, test, self.cfg.input, self.device, self.cfg.subsets)
        card = self._write_card(model, result.manifest, test_m, result.history, result.seconds)
        self.emit({"event": "done", "card": str(card.path), "test": {"accuracy": test_m["accuracy"], "macro_f1": test_m["macro_f1"],
                                                                      "auc": test_m["auc"]}})
        return card

    def fit(self, splits: dict[str, CachedSplit] | None = None, *, finish_now: bool = False) -> FitResult | None:
        """Train (or resume) to the last epoch and return the best epoch's model.

        *splits*: ``train``/``val``/``test`` already loaded (``medkd retrain`` reads a user's folder
        itself); by default they come from the config's manifest. *finish_now*: train no further
        than the checkpoint and return its best epoch (a run the user stopped and wants to use).

        Under ``torchrun`` (``torch.distributed`` initialised, gloo or nccl) each process takes its
        share of every batch and the gradients are averaged by DistributedDataParallel, so a step
        sees the same batch as a single-process run; only rank 0 validates, emits events and
        writes the checkpoint, and only rank 0 gets a result.
        """
        from ..models.architectures import create_arch

        cfg, dev = self.cfg, self.device
        dist = _Distributed()
        emit = self.emit if dist.main else (lambda event: None)
        torch.manual_seed(cfg.seed)
        manifest = resolve(cfg.manifest, self.data_root)
        if splits is None:
            splits = {s: self._split(manifest, s) for s in ("train", "val", "test")}
        train, val = splits["train"], splits["val"]

        model = create_arch(cfg.arch, num_classes=len(cfg.classes), in_chans=cfg.input.channels, **cfg.arch_kwargs).to(dev)
        if cfg.init_weights:
            self._load_init(model)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = create_loss(cfg.loss, **cfg.loss_params)
        at_stage = cfg.at_stage if cfg.at_weight else None  # attention transfer (distill.attention)
        teacher = None
        if loss_fn.needs_teacher or at_stage is not None:
            if not cfg.teacher:
                why = f"loss {cfg.loss}" if loss_fn.needs_teacher else "attention transfer (at_weight > 0)"
                raise ValueError(f"{why} needs a teacher: set `teacher` to its card")
            teacher = load_teacher(cfg.teacher, cfg.teacher_ensemble, cfg.teacher_tta, dev, classes=cfg.classes,
                                   channels_last=cfg.channels_last, student_input=cfg.input,
                                   feature_loss=loss_fn.needs_features, resolve=resolve_bundled)
        elif cfg.teacher_ensemble or cfg.teacher_tta != "none":
            raise ValueError(f"teacher_ensemble / teacher_tta refine soft targets, but loss {cfg.loss} reads none "
                             "(and at_weight is 0)")
        average = weight_average(model, cfg.ema_decay, cfg.swa_epochs, cfg.epochs)

        steps_per_epoch = max(1, len(train) // cfg.batch_size)
        total_steps = cfg.epochs * steps_per_epoch
        loss_fn = loss_fn.to(dev)  # a loss with an adapter (hdkd conv1x1) trains with the student
        opt = torch.optim.AdamW([*model.parameters(), *loss_fn.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
        warm = cfg.warmup_epochs * steps_per_epoch
        step_fn = dist.wrap(_TrainForward(model, loss_fn))

        def lr_at(step: int) -> float:  # linear warm-up, then cosine to 1% of the peak
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, total_steps - warm)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        gen = torch.Generator().manual_seed(cfg.seed)
        start_epoch, best, best_state, history, elapsed = 0, -1.0, None, [], 0.0
        ckpt_path = self.run_dir / "checkpoint.pt"
        if ckpt_path.exists():
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if ck.get("digest") == cfg.digest():
                model.load_state_dict(ck["model"])
                opt.load_state_dict(ck["opt"])
                sched.load_state_dict(ck["sched"])
                gen.set_state(ck["gen"])
                if "torch_rng" in ck:  # dropout etc. continue as if never stopped
                    torch.set_rng_state(ck["torch_rng"])
                if average is not None:
                    average.load_state_dict(ck["average"])
                start_epoch, best, best_state = int(ck["epoch"]), float(ck["best"]), ck["best_state"]
                history, elapsed = list(ck["history"]), float(ck["elapsed_s"])
                emit({"event": "resume", "epoch": start_epoch})
            else:
                emit({"event": "checkpoint_ignored", "reason": "config changed"})
        if finish_now and best_state is None:
            raise ValueError("no finished epoch to keep yet: the run was stopped before its first epoch ended")

        weights = _sampling_weights(train.y, cfg.balance)
        t_start = time.time()
        for epoch in range(start_epoch, cfg.epochs if not finish_now else start_epoch):
            model.train()
            t_epoch = time.time()
            if weights is None:
                order = torch.randperm(len(train), generator=gen)
            else:
                order = torch.multinomial(weights, len(train), replacement=True, generator=gen)
            running = 0.0
            for step in range(steps_per_epoch):
                if dist.any(self.should_stop()):
                    raise TrainingCancelled()
                idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                # Every rank augments the whole batch (the generator stays in step everywhere) and
                # trains on its share: together they see exactly the single-process batch.
                mixed = dist.shard(mix_batch(augment_batch(train.x[idx].float(), cfg.augment, gen), train.y[idx],
                                             cfg.augment, gen))
                xb = normalize(mixed.x, cfg.input).to(dev)
                mixed = mixed.to(dev)
                if cfg.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with autocast(dev, cfg.precision):
                    s_out, s_map = step_fn(xb, at_stage)
                    t_out, t_map = None, None
                    if teacher is not None:
                        with torch.no_grad():
                            t_out, t_map = teacher(xb, at_stage)  # sees the same mixed images
                    loss, parts = mixed_loss(loss_fn, s_out, t_out, mixed)
                    if s_map is not None and t_map is not None:
                        at = at_loss(s_map, t_map)
                        loss = loss + cfg.at_weight * at
                        parts = {**parts, "at": float(at.detach())}
                opt.zero_grad(set_to_none=True)
                loss.float().backward()
                opt.step()
                sched.step()
                if average is not None:
                    average.after_step(model)
                step_loss = dist.mean(float(loss.detach()))
                running += step_loss
                if step % 10 == 0 or step == steps_per_epoch - 1:
                    done = (epoch - start_epoch) * steps_per_epoch + step + 1
                    left = (cfg.epochs - start_epoch) * steps_per_epoch - done
                    rate = (time.time() - t_start) / done
                    emit({"event": "progress", "epoch": epoch + 1, "epochs": cfg.epochs, "step": step + 1,
                          "steps": steps_per_epoch, "loss": round(step_loss, 5),
                          "parts": {k: round(float(v), 5) for k, v in parts.items()},
                          "lr": opt.param_groups[0]["lr"], "eta_s": round(rate * left)})
            judged = model
            if average is not None:  # with weight averaging on, the average is the model that counts
                average.after_epoch(model, epoch)
                judged = average.judged(model)
            if dist.main:
                val_m = evaluate_split(judged, val, cfg.input, dev, n_boot=0)  # CIs only for the final test
                score = val_m[cfg.select]
                if score > best:
                    best = score
                    best_state = {k: v.detach().cpu().clone() for k, v in judged.state_dict().items()}
                history.append([epoch + 1, running / steps_per_epoch, val_m["accuracy"], val_m["macro_f1"]])
                done = (epoch + 1 - start_epoch) * steps_per_epoch
                left = (cfg.epochs - epoch - 1) * steps_per_epoch
                self.run_dir.mkdir(parents=True, exist_ok=True)
                tmp = ckpt_path.with_suffix(".tmp")
                torch.save({"digest": cfg.digest(), "epoch": epoch + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                            "sched": sched.state_dict(), "gen": gen.get_state(), "torch_rng": torch.get_rng_state(), "best": best, "best_state": best_state,
                            "history": history, "elapsed_s": elapsed + time.time() - t_start,
                            **({"average": average.state_dict()} if average is not None else {})}, tmp)
                tmp.replace(ckpt_path)
                # after the checkpoint: an "epoch" event means that epoch survives a kill
                emit({"event": "epoch", "epoch": epoch + 1, "epochs": cfg.epochs, "train_loss": round(running / steps_per_epoch, 5),
                      "val": {"accuracy": round(val_m["accuracy"], 4), "macro_f1": round(val_m["macro_f1"], 4)},
                      "best": round(best, 4), "epoch_s": round(time.time() - t_epoch, 1),
                      "eta_s": round((time.time() - t_start) / done * left)})
            dist.barrier()  # a rank killed now finds the checkpoint of this epoch when it resumes

        if not dist.main:
            return None
        model.load_state_dict(best_state)
        # Round to the stored precision first, so the test metrics are those of the file.
        model = model.to(memory_format=torch.contiguous_format).half().float().eval()
        return FitResult(model=model, history=history, seconds=elapsed + time.time() - t_start, splits=splits,
                         manifest=manifest, epochs_done=len(history), best=best)

    def _load_init(self, model: torch.nn.Module) -> None:
        """Start from a card's verified weights (fine-tuning); the card must describe this model."""
        from ..models.weights import load_verified_state

        card = ModelCard.load(resolve_bundled(self.cfg.init_weights))
        if card.architecture != self.cfg.arch or list(card.classes) != list(self.cfg.classes):
            raise ValueError(f"init_weights card {card.id} is a {card.architecture} over {card.classes}; "
                             f"this run trains a {self.cfg.arch} over {self.cfg.classes}")
        state = load_verified_state(card.weights_path, card.sha256, card.id)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})

    def _task_info(self) -> TaskInfo:
        """The config's task fields, else those of the installed teacher of the same task."""
        if self.cfg.task_info:
            return TaskInfo.from_dict(self.cfg.task_info)
        try:
            return ModelRegistry().card(self.cfg.task, "teacher").task_info
        except ModelLoadError:
            return TaskInfo()

    def _write_card(self, model: torch.nn.Module, manifest: Path, test_m: dict, history: list, seconds: float) -> ModelCard:
        cfg = self.cfg
        out_dir = resolve_bundled(cfg.out_dir) if cfg.out_dir else default_out_dir(cfg.task)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = cfg.file_stem or cfg.role
        weights = out_dir / f"{stem}.safetensors"
        sha = save_weights(model, weights, dtype=torch.float16)
        params, flops, latency = _model_stats(model, cfg.input.channels, cfg.input.size)
        try:
            manifest_rel = str(manifest.relative_to(self.data_root))
        except ValueError:
            manifest_rel = str(manifest)
        card = ModelCard(
            id=f"{cfg.task}/{stem}", task=cfg.task, role=cfg.role, architecture=cfg.arch, arch_kwargs=cfg.arch_kwargs,
            classes=list(cfg.classes), input=cfg.input, weights_file=weights.name, sha256=sha, name=cfg.name,
            parameters=params, flops=flops, cpu_latency_ms=latency,
            training={
                "method": cfg.loss, "loss_params": cfg.loss_params, "teacher": cfg.teacher, "epochs": cfg.epochs,
                "seed": cfg.seed, "manifest": manifest_rel, "manifest_sha256": manifest_sha256(manifest),
                "device": str(self.device), "torch": torch.__version__, "weights_dtype": "float16", "wall_time_s": round(seconds),
                "command": shlex.join(self.command), "config": cfg.to_dict(), "history": history,
            },
            metrics=test_m, provenance=cfg.provenance, caveats=list(cfg.caveats), license=cfg.license,
            target_layers={"stages": list(getattr(model, "stage_names", []))}, task_info=self._task_info(),
        )
        card.save(out_dir / f"{stem}.json")
        return card
