"""A review session without Qt: the study, the model pair, what to analyse, and the results.

Why a core object (napari's model objects, 3D Slicer's Logic/Widget split): the window used to
decide which pair fits a study, when to re-analyse and which cached result belongs to the shown
frame. ``medkd analyze`` made the same decisions its own way, so the two could disagree. Now the
window only builds widgets and binds them to a :class:`ReviewSession`, and the CLI drives the
same object: open a study, let it propose the pair, ask it for the analysis job, run the job
on the engine, hand the result back.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..models.geometry import Box, input_box, whole
from ..models.registry import ModelPair, ModelRegistry
from ..studies.study import Study
from .analysis import Analysis
from .pairing import Proposal, mismatch_warning, propose
from .view_state import Event, ViewState

#: Analyses kept per session (a radiologist scrolls back and forth over a few slices).
CACHE_SIZE = 12


@dataclass(frozen=True)
class AnalysisJob:
    """What the engine is asked to do for the shown frame (``Engine.analyze``'s arguments)."""

    study: Study
    pair: ModelPair
    methods: list[str]
    target: str | None
    volume: int
    slice_: int | None  # None: the engine's default frame (fMRI models read the whole map)
    key: tuple = field(compare=False)

    def kwargs(self) -> dict[str, Any]:
        return {"study": self.study, "pair": self.pair, "methods": list(self.methods), "target": self.target,
                "volume": self.volume, "slice_": self.slice_}


class ReviewSession(ViewState):
    """The view state plus the pairing rule and the analysis cache.

    Extra events: ``pairs`` (the installed pairs changed) and ``messages`` (the banner's lines:
    the proposal's note, the mismatch warning, the analysis' own warnings).
    """

    def __init__(self, registry: ModelRegistry | None = None, *, forced_task: str | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.events.pairs = Event("pairs")
        self.events.messages = Event("messages")
        self.forced_task = forced_task  # --task: used for every study until the user picks a task
        self.proposal = Proposal(None)
        self.pairs: dict[str, ModelPair] = {}
        self.registry: ModelRegistry | None = None
        self._cache: OrderedDict[tuple, Analysis] = OrderedDict()
        self._cache_size = cache_size
        self.events.study.connect(lambda _s: self._cache.clear())  # ids of closed studies get reused
        for name in ("study", "task", "analysis"):
            getattr(self.events, name).connect(lambda _v: self.events.messages.emit(self.messages))
        if registry is not None:
            self.set_registry(registry)

    # -- models -----------------------------------------------------------------------------
    def set_registry(self, registry: ModelRegistry) -> None:
        """Use *registry*'s installed pairs (the window gets it once the engine has started)."""
        self.registry = registry
        self.refresh_pairs()

    def refresh_pairs(self, rescan: bool = False) -> None:
        """Re-read the installed pairs; *rescan* the model folders first (after a model was added,
        activated or removed)."""
        if self.registry is None:
            return
        if rescan:
            self.registry.refresh()
        self.pairs = {t: self.registry.pair(t) for t in self.registry.paired_tasks()}
        self._cache.clear()
        self.events.pairs.emit(self.pairs)

    @property
    def pair(self) -> ModelPair | None:
        return self.pairs.get(self.task) if self.task else None

    @property
    def reads_whole_map(self) -> bool:
        """fMRI models read the whole summary map as a glass brain: the slice does not change their input."""
        pair = self.pair
        return pair is not None and bool(pair.teacher.input.fmri_map or pair.student.input.fmri_map)

    def propose(self) -> Proposal:
        """Choose the pair for the open study by the one pairing rule, and select it."""
        if self.study is None or self.registry is None:
            return self.proposal
        self.proposal = propose(self.study, self.registry, chosen=self.forced_task, current=self.task)
        if self.proposal.task is not None:
            self.select_task(self.proposal.task)
        self.events.messages.emit(self.messages)
        return self.proposal

    def choose_task(self, task: str) -> None:
        """The user picked *task*: it wins over --task and the proposal from now on."""
        self.forced_task = None
        self.proposal = Proposal(task)
        self.select_task(task)
        self.events.messages.emit(self.messages)

    def select_task(self, task: str | None) -> None:
        if task is not None and task not in self.pairs:
            return
        if task != self.task:
            self._cache.clear()
        self.task = task

    @property
    def messages(self) -> list[str]:
        """What the banner says: why this pair, whether it fits, and the analysis' warnings."""
        lines = [self.proposal.note]
        if self.study is not None and self.task and self.registry is not None:
            lines.append(mismatch_warning(self.study, self.task, self.registry))
        shown_red = set()  # a gate's reason is the red OOD banner's (ui.trust_banner) once an analysis has it
        if self.analysis is not None:
            lines += list(self.analysis.warnings)
            shown_red = {r.ood.gate for r in (self.analysis.teacher, self.analysis.student) if r.ood is not None}
        return [m for m in dict.fromkeys(lines) if m and m not in shown_red]

    def input_region(self) -> Box | None:
        """The box both models see when it is not the whole frame (drawn as an outline), else None."""
        study, pair = self.study, self.pair
        if study is None or pair is None or study.tiles is not None or self.reads_whole_map:
            return None
        shape = study.shape[:2]
        boxes = {input_box(shape, card.input) for card in (pair.teacher, pair.student)}
        box = boxes.pop() if len(boxes) == 1 else None
        return None if box is None or box == whole(shape) else box

    # -- analyses ---------------------------------------------------------------------------
    @property
    def key(self) -> tuple | None:
        """Identifies the analysis of the shown frame (None: nothing to analyse)."""
        if self.study is None or self.pair is None:
            return None
        frame = (0, 0) if self.reads_whole_map else self.frame_index
        return (id(self.study), self.pair.task, frame, self.method, self.target)

    def job(self) -> AnalysisJob | None:
        """The engine call for the shown frame, method and target (the layer strip comes with it)."""
        key = self.key
        if key is None or self.pair is None or self.study is None:
            return None
        whole_map = self.reads_whole_map
        return AnalysisJob(self.study, self.pair, [self.method], self.target, 0 if whole_map else self.volume,
                           None if whole_map else self.slice, key)

    def cached(self) -> Analysis | None:
        """The cached analysis of the shown frame, if any (it becomes the most recent)."""
        key = self.key
        if key is None or key not in self._cache:
            return None
        self._cache.move_to_end(key)
        return self._cache[key]

    def remember(self, key: tuple, analysis: Analysis) -> None:
        self._cache[key] = analysis
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()
