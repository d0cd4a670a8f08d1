"""One retraining run, from a folder or CSV to an installed (not yet active) student version.

Steps, each reported as a JSON event: read the data (``reading``), the data summary with its
warnings (``summary``), the model folder checked before any training, distillation from the
bundled teacher (``progress``, ``epoch``; ``resume`` when a checkpoint of the same settings is
found), temperature fitted on the user's val split, the comparison on the user's test split,
the install, an audit entry, and ``done`` with the model and the comparison. A stop (stop file,
SIGTERM/SIGINT) ends with ``stopped`` and keeps the checkpoint: the same command resumes, and
``finish`` uses the best epoch so far.

The run folder (one per task, ``<user cache>/retrain/<task>``) holds ``run.json`` (what was asked
and how far it got: the panel offers an unfinished run at start-up), ``events.jsonl``, the splits
(``splits.csv``), the checkpoint, the data cache and ``comparison.json``. Nothing there holds a
PatientID: groups are keyed hashes (``trust.audit.identifier_hash``).
"""
from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..distill.config import TrainConfig
from ..distill.data import CachedSplit, Sample
from ..distill.evaluate import evaluate_split, predict_logits
from ..distill.losses import list_losses
from ..distill.trainer import FitResult, Trainer, TrainingCancelled, _user_cache
from ..models.card import ModelCard
from ..models.registry import BUNDLED_DIR, ModelRegistry, load_model
from ..models.weights import ModelLoadError
from ..trust import audit
from .calibrate import calibration_record
from .compare import Contender, compare, display_paths, without_paths
from .discover import discover
from .errors import RetrainError
from .install import check_writable, install, version_id
from .ood_fit import fit_detector
from .lock import TaskLock
from .reading import read_items
from .splits import make_splits, manifest_csv
from .summary import DataSummary, check_usable, summarise

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], None]

STOP_FILE = "STOP"
#: fine-tuning from the bundled student: its config's peak learning rate times this, no warm-up
FINE_TUNE_LR_SCALE = 0.1


@dataclass(frozen=True)
class RetrainRequest:
    task: str
    data: Path
    epochs: int = 10
    loss: str | None = None  # None: the task's paper loss (the bundled student's)
    init: str = "bundled"  # bundled | scratch
    name: str = ""
    device: str | None = None
    seed: int = 0
    lr: float | None = None
    batch_size: int | None = None
    threads: int = 0
    run_dir: Path | None = None
    command: tuple[str, ...] = ()
    finish: bool = False  # train no more: compare and install the checkpoint's best epoch
    dry_run: bool = False  # the data summary only


def runs_root() -> Path:
    return _user_cache() / "retrain"


def run_dir_for(task: str) -> Path:
    return runs_root() / task


def stop_file(run_dir: Path) -> Path:
    return run_dir / STOP_FILE


def read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def unfinished_runs() -> list[dict[str, Any]]:
    """Runs that were stopped or killed before ``done`` (``run.json`` with their command), for the
    panel to offer at start-up."""
    out = []
    root = runs_root()
    for state_file in sorted(root.glob("*/run.json")) if root.exists() else []:
        state = read_state(state_file.parent)
        if state.get("state") in ("running", "stopped") and (state_file.parent / "checkpoint.pt").exists():
            out.append({**state, "run_dir": str(state_file.parent)})
    return out


@dataclass
class RetrainOutcome:
    state: str  # summary | done | stopped
    summary: DataSummary
    model: ModelCard | None = None
    comparison: dict[str, Any] = field(default_factory=dict)


class _Run:
    def __init__(self, req: RetrainRequest, emit: Emit, should_stop: Callable[[], bool]) -> None:
        self.req, self._emit, self._should_stop = req, emit, should_stop
        self.run_dir = req.run_dir or run_dir_for(req.task)
        self.events_file: Path | None = None
        self.rank0 = True
        try:
            import torch.distributed as tdist

            self.rank0 = not (tdist.is_available() and tdist.is_initialized()) or tdist.get_rank() == 0
        except ImportError:
            pass

    def emit(self, event: dict[str, Any]) -> None:
        if not self.rank0:
            return
        if self.events_file is not None:
            try:
                with open(self.events_file, "a") as fh:
                    fh.write(json.dumps(event) + "\n")
            except OSError:
                pass  # the run goes on; stdout still has the events
        self._emit(event)

    def should_stop(self) -> bool:
        return self._should_stop() or stop_file(self.run_dir).exists()

    def save_state(self, **fields: Any) -> None:
        if not self.rank0:
            return
        state = {**read_state(self.run_dir), **fields}
        tmp = self.run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.run_dir / "run.json")

    # ------------------------------------------------------------------------------
    def cards(self) -> tuple[ModelCard, ModelCard]:
        bundled = ModelRegistry([BUNDLED_DIR])
        tasks = bundled.paired_tasks()
        if self.req.task not in tasks:
            raise RetrainError(f"no bundled models for task {self.req.task!r}; tasks: {', '.join(tasks)}")
        pair = bundled.pair(self.req.task)
        return pair.teacher, pair.student

    def config(self, teacher: ModelCard, student: ModelCard, manifest: Path, n_train: int) -> TrainConfig:
        req = self.req
        d = dict(student.training.get("config") or {})
        if not d:
            raise RetrainError(f"the bundled student of {req.task} has no training config to start from")
        loss = req.loss or d.get("loss", "kd_kl")
        if loss not in list_losses():
            raise RetrainError(f"unknown loss {loss!r}; registered: {', '.join(list_losses())}")
        if req.init not in ("bundled", "scratch"):
            raise RetrainError(f"--init must be bundled or scratch, not {req.init!r}")
        if req.epochs < 1:
            raise RetrainError("--epochs must be at least 1")
        fine_tune = req.init == "bundled"
        d.update(manifest=str(manifest), epochs=req.epochs, limit=0, out_dir="", file_stem="student-retrain",
                 subsets={}, teacher=str(teacher.path), seed=req.seed, swa_epochs=0,
                 init_weights=str(student.path) if fine_tune else "", name=student.name)
        if loss != d.get("loss"):
            d.update(loss=loss, loss_params={})
        if fine_tune:
            d.update(lr=float(d.get("lr", 1e-3)) * FINE_TUNE_LR_SCALE, warmup_epochs=0)
        else:
            d["warmup_epochs"] = min(int(d.get("warmup_epochs", 0)), req.epochs - 1)
        if req.lr is not None:
            d["lr"] = req.lr
        if req.batch_size is not None:
            d["batch_size"] = req.batch_size
        d["batch_size"] = max(2, min(int(d.get("batch_size", 32)), n_train))
        try:
            return TrainConfig.from_dict(d)
        except (ValueError, TypeError) as exc:
            raise RetrainError(f"these settings do not make a valid run: {exc}") from None

    # ------------------------------------------------------------------------------
    def run(self) -> RetrainOutcome:
        req = self.req
        teacher, student = self.cards()
        if teacher.input.to_dict() != student.input.to_dict():
            raise RetrainError(f"the bundled teacher and student of {req.task} read different inputs")
        spec, classes = student.input, list(teacher.classes)
        items = discover(req.data, classes)
        root = req.data if req.data.is_dir() else req.data.parent
        if not req.dry_run:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            stop_file(self.run_dir).unlink(missing_ok=True)
            self.events_file = self.run_dir / "events.jsonl"
        self.emit({"event": "start", "task": req.task, "data": str(req.data), "run_dir": str(self.run_dir),
                   "n_found": len(items), "dry_run": req.dry_run})
        cache = None if req.dry_run or not self.rank0 else self.run_dir / "data-cache"  # one writer
        data = read_items(items, spec, root, cache_dir=cache,
                          on_progress=lambda i, n: self.emit({"event": "reading", "done": i, "total": n}))
        plan = make_splits(data.items, data.groups, seed=req.seed)
        summary = summarise(req.task, classes, items, data, plan, root)
        self.emit(summary.to_event())
        check_usable(summary)
        if req.dry_run:
            return RetrainOutcome("summary", summary)

        check_writable(req.task, student.weights_path.stat().st_size * 2)
        manifest = self.run_dir / "splits.csv"
        text = manifest_csv(data.items, data.groups, plan)
        if self.rank0 and (not manifest.exists() or manifest.read_text() != text):
            manifest.write_text(text)
        paths = display_paths(data.items, root)
        splits = {}
        for name in ("train", "val", "test"):
            idx = plan.indices(name)
            samples = [Sample(data.items[i].path, data.items[i].label, data.groups[i], name, "") for i in idx]
            splits[name] = CachedSplit.from_arrays(samples, classes, data.x[idx])
        test_paths = [paths[i] for i in plan.indices("test")]
        cfg = self.config(teacher, student, manifest, len(splits["train"]))
        self.save_state(state="running", task=req.task, data=str(req.data), argv=list(req.command),
                        epochs=req.epochs, started=time.strftime("%Y-%m-%dT%H:%M:%S"))

        trainer = Trainer(cfg, device=req.device, run_dir=self.run_dir, emit=self.emit, should_stop=self.should_stop,
                          command=list(req.command), threads=req.threads, cache_dir=self.run_dir / "data-cache")
        try:
            fit = trainer.fit(splits, finish_now=req.finish)
        except TrainingCancelled:
            ck = self._checkpoint_facts()
            self.save_state(state="stopped", **ck)
            self.emit({"event": "stopped", **ck,
                       "resume": "run the same command again to resume, or add --finish to use the best epoch so far"})
            audit.record_retrain(req.task, {"teacher": audit.card_ref(teacher)}, result="stopped",
                                 outcome={"images": summary.n_images, "epochs_done": ck.get("epoch", 0)})
            stop_file(self.run_dir).unlink(missing_ok=True)
            return RetrainOutcome("stopped", summary)
        except ValueError as exc:  # e.g. --finish before the first epoch ended
            raise RetrainError(str(exc)) from None
        if fit is None:  # a distributed run's other ranks: rank 0 compares and installs
            return RetrainOutcome("done", summary)
        return self._finish(fit, cfg, teacher, student, summary, splits, test_paths, manifest, trainer.device)

    def _checkpoint_facts(self) -> dict[str, Any]:
        ck = self.run_dir / "checkpoint.pt"
        if not ck.exists():
            return {"epoch": 0}
        state = torch.load(ck, map_location="cpu", weights_only=True)
        history = state.get("history", [])
        best = max(history, key=lambda h: h[3]) if history else None
        return {"epoch": int(state["epoch"]), "best_epoch": best[0] if best else None,
                "best_val_macro_f1": round(best[3], 4) if best else None}

    def _finish(self, fit: FitResult, cfg: TrainConfig, teacher: ModelCard, student: ModelCard, summary: DataSummary,
                splits: dict[str, CachedSplit], test_paths: list[str], manifest: Path, device: torch.device) -> RetrainOutcome:
        req = self.req
        spec = student.input
        model = fit.model.to(device)
        from ..distill.data import manifest_sha256

        data_sha = manifest_sha256(manifest)
        val = splits["val"]
        calibration = calibration_record(predict_logits(model, val.x, spec, device), val.y.numpy(), fitted_on="val",
                                         manifest_sha256=data_sha)
        self.emit({"event": "calibrated", "temperature": calibration["temperature"],
                   "ece_before": calibration["ece_before"], "ece_after": calibration["ece_after"]})
        contenders = [Contender("new", "(new)", model, calibration["temperature"]),
                      Contender("bundled", student.id, load_model(student, device), student.temperature),
                      Contender("teacher", teacher.id, load_model(teacher, device), teacher.temperature)]
        comparison = compare(contenders, splits["test"], spec, device, test_paths)
        test_m = evaluate_split(model, splits["test"], spec, device, temperature=calibration["temperature"])

        vid = version_id(req.task, req.name)
        comparison["models"]["new"]["card"] = vid
        stopped_early = fit.epochs_done < cfg.epochs
        name = f"{student.name} — retrained on local data" + (f" ({req.name})" if req.name else "")
        card = ModelCard(
            id=vid, task=req.task, role="student", architecture=cfg.arch, arch_kwargs=cfg.arch_kwargs,
            classes=list(cfg.classes), input=spec, weights_file="", sha256="", name=name,
            parameters=student.parameters, flops=student.flops, cpu_latency_ms=student.cpu_latency_ms,
            training={
                "method": cfg.loss, "loss_params": cfg.loss_params, "teacher": teacher.id, "epochs": cfg.epochs,
                "epochs_done": fit.epochs_done, "seed": cfg.seed, "manifest": "splits.csv (the run folder)",
                "manifest_sha256": data_sha, "device": str(device), "torch": torch.__version__,
                "weights_dtype": "float16", "wall_time_s": round(fit.seconds), "command": shlex.join(req.command),
                "config": {k: v for k, v in cfg.to_dict().items() if k not in ("manifest", "teacher", "init_weights")},
                "history": fit.history,
                "retrain": {
                    "based_on": student.id, "init": f"bundled:{student.id}" if cfg.init_weights else "scratch",
                    "data_manifest_sha256": data_sha, "counts": summary.counts, "patients": summary.patients,
                    "images": summary.n_images, "skipped": len(summary.skipped), "warnings": summary.warnings,
                    "splits": "patient-grouped, stratified by class, seed %d (val %.0f%%, test %.0f%%)" % (cfg.seed, 15, 15),
                    "stopped_early": stopped_early, "comparison": without_paths(comparison),
                },
            },
            metrics=test_m, calibration=calibration,
            provenance=(f"Distilled from the bundled teacher {teacher.id} on {summary.n_images} local images "
                        f"({'fine-tuned from ' + student.id if cfg.init_weights else 'trained from scratch'}); "
                        "the metrics are on this site's held-out test patients."),
            caveats=[f"Trained and tested on one site's images: {sum(summary.counts['test'].values())} test images of "
                     f"{summary.patients['test']} patients. Figures from another site may differ.",
                     *summary.warnings, *student.caveats],
            license="Local model trained on this site's images; research use only.",
            target_layers=dict(student.target_layers), task_info=teacher.task_info,
        )
        detector = fit_detector(model, splits["train"], val, spec, device, {"manifest_sha256": data_sha}, student.ood)
        self.emit({"event": "ood_fitted", "score": detector.kind, "threshold": detector.threshold})
        installed = install(model.cpu(), card, detector)
        (self.run_dir / "comparison.json").write_text(json.dumps(comparison, indent=1))
        self.save_state(state="done", model=installed.id)
        new, old = comparison["models"]["new"], comparison["models"]["bundled"]
        audit.record_retrain(req.task, {"teacher": audit.card_ref(teacher), "student": audit.card_ref(installed)},
                             outcome={"images": summary.n_images, "epochs_done": fit.epochs_done,
                                      "accuracy_new": round(new["accuracy"], 4), "accuracy_bundled": round(old["accuracy"], 4)})
        self.emit({"event": "done", "model": {"id": installed.id, "card": str(installed.path)}, "comparison": comparison})
        return RetrainOutcome("done", summary, installed, comparison)


def run_retrain(req: RetrainRequest, emit: Emit, should_stop: Callable[[], bool] = lambda: False) -> RetrainOutcome:
    """The whole command. Raises RetrainError (or StudyLoadError) for bad input; a second run of
    the same task waits for nobody: it is refused while the first holds the task's lock."""
    r = _Run(req, emit, should_stop)
    if req.dry_run:
        return r.run()
    try:
        with TaskLock(runs_root() / f"{req.task}.lock", req.task) if r.rank0 else _NoLock():
            return r.run()
    except ModelLoadError as exc:
        raise RetrainError(str(exc)) from None


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def request_dict(req: RetrainRequest) -> dict[str, Any]:
    d = asdict(req)
    d["data"] = str(req.data)
    d["run_dir"] = str(req.run_dir) if req.run_dir else None
    return d
