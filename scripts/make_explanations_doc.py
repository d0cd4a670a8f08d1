#!/usr/bin/env python
"""Generate docs/EXPLANATIONS.md: teacher and student heatmaps side by side, with the numbers.

Why a generator and not a hand-written page: every figure in the document must come from the
trained models and real test images (house rule: the app only shows measured figures), and it
must be regenerated whenever a model is retrained. For each task with a trained teacher/student
pair in the registry it takes one real ``test``-split image, runs every explanation method on
both models through the engine (the window's analysis, behind ``medkd explain`` too), and
writes one figure per task into docs/img/ plus a table of explanation time, teacher-student
agreement and faithfulness, followed by what the numbers mean for a clinician.

Usage: ``.venv/bin/python scripts/make_explanations_doc.py [--tasks cxr-covid,...] [--threads N]``
(models from trained_models/, the user folder and $MEDKD_MODEL_DIRS; data from ../shared/data).
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medkd_desktop.bench.explain import jsonable, manifest_for, pick_rows  # noqa: E402
from medkd_desktop.bench.timing import CpuSteal  # noqa: E402
from medkd_desktop.explain import list_methods, method_label  # noqa: E402
from medkd_desktop.explain.overlay import OverlayStyle, blend  # noqa: E402
from medkd_desktop.inference.engine import Engine  # noqa: E402
from medkd_desktop.report.explain_files import explain_files  # noqa: E402
from medkd_desktop.models.registry import ModelRegistry  # noqa: E402
from medkd_desktop.models.weights import ModelLoadError  # noqa: E402
from medkd_desktop.paths import shared_data_dir  # noqa: E402
from medkd_desktop.studies import open_study  # noqa: E402

METHOD_NOTES = {
    "gradcam": "where the evidence for the class is, at the deepest layer (coarse)",
    "gradcam++": "like Grad-CAM, better when the finding appears in several places",
    "scorecam": "(001) each pattern the model sees, scored by how much it alone supports the class; slow (one forward "
                "pass per channel, so every model scores only its 64 most varied channels: Faster Score-CAM, "
                "Pearson r 0.80-0.99 with the exact map on real test images of the 5-layer CNN, DenseNet-121 and ResNet-10-T)",
    "layercam": "like Grad-CAM with per-position weights: finer, often patchier",
    "eigencam": "the dominant pattern of the deepest layer, whatever the class",
    "feature_maps": "(002) what each layer responds to, shallow to deep (the last layer is shown)",
    "dfs_ex": "(003) regions above threshold in an early (texture) and a late (shape) layer: 1 = both, 0.5 = one",
    "attention": "(003 Eq. 3) what the transformer part attends to (hybrid student only)",
    "hdkd_stage": "(004) mean activation at 1/8 resolution (HDKD's stage 3), the layer HDKD distils",
}


def fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def task_figure(task: str, summary: dict, analysis, path: Path) -> None:
    """Rows = methods; columns = the analysed image, teacher overlay, student overlay."""
    methods = list(summary["methods"])
    fig = Figure(figsize=(7.2, 2.4 * len(methods)), dpi=90)
    FigureCanvasAgg(fig)
    image = analysis.image
    for r, method in enumerate(methods):
        entry = summary["methods"][method]
        panels = [("input", image, None)]
        for role in ("teacher", "student"):
            panels.append((role, image, analysis.result(role).heatmaps.get(method)))
        for c, (label, img, heat) in enumerate(panels):
            ax = fig.add_subplot(len(methods), 3, r * 3 + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if heat is None and label != "input":
                ax.text(0.5, 0.5, "does not apply", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                ax.set_title(label, fontsize=8)
                continue
            shown = blend(img, heat, OverlayStyle()) if heat is not None else (np.clip(img, 0, 1) * 255).astype(np.uint8)
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
            if label == "input":
                ax.set_ylabel(method_label(method), fontsize=8)
                ax.set_title("analysed image", fontsize=8)
            else:
                e = entry[label]
                ax.set_title(f"{label}: {e['target']} · {e['ms']:.0f} ms", fontsize=8)
        a = entry.get("agreement")
        if a:
            fig.text(0.99, 1 - (r + 0.5) / len(methods), f"r {fmt(a['pearson'])}\nSSIM {fmt(a['ssim'])}\n"
                     f"IoU {fmt(a['iou_top20'])}", fontsize=7, ha="right", va="center")
    fig.suptitle(f"{task}: teacher vs student explanations", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def strip_figure(task: str, analysis, path: Path) -> bool:
    """The layer-by-layer strip of average feature maps (002) for both models."""
    fm = {role: analysis.result(role).stages.get("feature_maps") for role in ("teacher", "student")}
    fm = {role: stages for role, stages in fm.items() if stages}
    if not fm:
        return False
    n = max(len(stages) for stages in fm.values())
    fig = Figure(figsize=(1.6 * n, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    for r, role in enumerate(("teacher", "student")):
        stages = fm.get(role) or []
        for i in range(n):
            ax = fig.add_subplot(2, n, r * n + i + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= len(stages):
                ax.axis("off")
                continue
            name, placed = stages[i]
            ax.imshow(blend(analysis.image, placed, OverlayStyle(opacity=0.6)))
            ax.set_title(name.replace("model.", ""), fontsize=6)
            if i == 0:
                ax.set_ylabel(role, fontsize=8)
    fig.suptitle(f"{task}: average feature maps, shallow to deep", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return True


def reading_for_clinicians(task: str, summary: dict) -> list[str]:
    """Plain-language reading of this task's numbers (no number is invented: all are quoted)."""
    lines = []
    models = summary["models"]
    t_pred, s_pred = models["teacher"]["predicted"], models["student"]["predicted"]
    if t_pred == s_pred:
        lines.append(f"- Both models predict **{t_pred}** for this image, so their maps explain the same class.")
    else:
        lines.append(f"- The teacher predicts **{t_pred}**, the student **{s_pred}**: the maps explain different "
                     "classes and should not be expected to agree; the disagreement itself is the warning.")
    agree = {m: e["agreement"] for m, e in summary["methods"].items() if e.get("agreement")}
    if agree:
        best = max(agree, key=lambda m: agree[m]["pearson"] if agree[m]["pearson"] is not None else -2)
        worst = min(agree, key=lambda m: agree[m]["pearson"] if agree[m]["pearson"] is not None else 2)
        lines.append(f"- Closest teacher-student agreement: {method_label(best)} "
                     f"(r {fmt(agree[best]['pearson'])}, top-20 % IoU {fmt(agree[best]['iou_top20'])}); "
                     f"weakest: {method_label(worst)} (r {fmt(agree[worst]['pearson'])}).")
    faithful = []
    for m, e in summary["methods"].items():
        for role in ("teacher", "student"):
            r = e.get(role) or {}
            if r.get("deletion_auc") is not None and r.get("insertion_auc") is not None:
                faithful.append((r["insertion_auc"] - r["deletion_auc"], m, role))
    if faithful:
        gap, m, role = max(faithful)
        if gap > 0.05:
            lines.append(f"- Most faithful map on this image: the {role}'s {method_label(m)} (insertion minus "
                         f"deletion AUC {gap:.2f}): the pixels it marks are the ones that model's prediction depends on.")
        else:
            lines.append("- No map is clearly faithful on this image (insertion minus deletion AUC at most "
                         f"{gap:.2f} for every method and model): treat all of them as pictures, not evidence.")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "EXPLANATIONS.md"))
    ap.add_argument("--img-dir", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--tasks", default=None, help="comma-separated tasks (default: all with models)")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    data_root = Path(args.data) if args.data else shared_data_dir()
    out, img_dir = Path(args.out), Path(args.img_dir)
    registry = ModelRegistry()
    engine = Engine(registry, "cpu")
    methods = list_methods() if args.methods == "all" else args.methods.split(",")
    tasks = args.tasks.split(",") if args.tasks else registry.tasks()

    md = [
        "# Explanations: teacher vs student, side by side",
        "",
        f"_Generated by `scripts/make_explanations_doc.py` on {dt.date.today().isoformat()} from the models in the "
        "registry and one real `test`-split image per task. Research use only; not for diagnosis._",
        "",
        "A heatmap shows **where in the image a model's output came from**, not where disease is. MedKD shows the "
        "teacher's and the distilled student's maps side by side so that you can check that the fast student "
        "relies on the same image regions as the slower teacher it was trained to imitate.",
        "",
        "## Methods",
        "",
        "| method | name in the app | what it shows |",
        "|---|---|---|",
        *[f"| {method_label(m)} | `{m}` | {METHOD_NOTES.get(m, '')} |" for m in list_methods()],
        "",
        "## How to read the numbers",
        "",
        "- **Agreement (teacher vs student)** — *Pearson r*: do the two maps rise and fall together (1 = same pattern, "
        "0 = unrelated, negative = opposite). *SSIM*: do they share local structure (1 = identical). *Top-20 % IoU*: "
        "overlap of the hottest fifth of each map (1 = same region, 0 = different regions). Low agreement means the "
        "student reached its answer from different evidence: check the image yourself before trusting the student.",
        "- **Faithfulness (each map vs its own model)** — *Deletion AUC*: the class probability as the map's hottest "
        "pixels are removed first (lower = the map found what the model relies on). *Insertion AUC*: the probability "
        "as they are added first to a blurred image (higher = better). A pretty map with poor faithfulness is a "
        "picture, not an explanation.",
        "- **Time**: explanation time on the CPU for this image (batch 1). `medkd bench explain` gives medians over "
        "20 test images per task, with each target's verdict: see [BENCHMARKS.md](BENCHMARKS.md).",
        "- Heat on text labels, arrows, image borders or outside the body is a **shortcut** warning: the model may "
        "be using something other than anatomy (see each model card's caveats).",
        "",
    ]
    with CpuSteal() as steal:
        for task in tasks:
            md += [f"## {task}", ""]
            try:
                pair = registry.pair(task)
            except ModelLoadError as exc:
                md += [f"_Not available yet: {exc}_", ""]
                continue
            rows = pick_rows(manifest_for(pair.student, data_root), pair.student, 1)
            if not rows:
                md += ["_No test image found._", ""]
                continue
            row = rows[0]
            print(f"{task}: {row.path.name}", file=sys.stderr)
            study = open_study(row.path)
            analysis = engine.analyze(study, pair, [m for m in methods if m in list_methods()], strip=False,
                                      skip_inapplicable=True, faithfulness=True)
            summary = jsonable(explain_files(analysis, study, ("teacher", "student"), None, OverlayStyle()))
            fig_path = img_dir / f"explanations_{task}.png"
            task_figure(task, summary, analysis, fig_path)
            strip_path = img_dir / f"feature_maps_{task}.png"
            has_strip = strip_figure(task, analysis, strip_path)
            rel = lambda p: Path(p).resolve().relative_to(out.parent.resolve()).as_posix()  # noqa: E731
            t, s = pair.teacher, pair.student
            md += [
                f"Image: `{row.path.parent.name}/{row.path.name}` (true label **{row.label}**, test split). "
                f"Teacher `{t.id}` ({t.name or t.architecture}), student `{s.id}` ({s.name or s.architecture}).",
                "",
                "| model | prediction | probability |",
                "|---|---|---|",
                *[f"| {role} | {m['predicted']} | {m['probabilities'][m['predicted']]:.1%} |"
                  for role, m in summary["models"].items()],
                "",
                f"![{task} explanations]({rel(fig_path)})",
                "",
            ]
            if has_strip:
                md += [f"![{task} average feature maps]({rel(strip_path)})", ""]
            md += [
                "| method | teacher ms | student ms | r | SSIM | top-20 % IoU | deletion T / S | insertion T / S |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for method, e in summary["methods"].items():
                te, se, a = e.get("teacher") or {}, e.get("student") or {}, e.get("agreement") or {}
                md.append(
                    f"| {method_label(method)} | {fmt(te.get('ms'), 0)} | {fmt(se.get('ms'), 0)} | "
                    f"{fmt(a.get('pearson'))} | {fmt(a.get('ssim'))} | {fmt(a.get('iou_top20'))} | "
                    f"{fmt(te.get('deletion_auc'))} / {fmt(se.get('deletion_auc'))} | "
                    f"{fmt(te.get('insertion_auc'))} / {fmt(se.get('insertion_auc'))} |"
                )
            md += ["", "**What this means for a clinician**", "", *reading_for_clinicians(task, summary)]
            caveats = list(dict.fromkeys([*t.caveats, *s.caveats]))
            if caveats:
                md += ["", "Known caveats of these models (from their model cards):", "", *[f"- {c}" for c in caveats]]
            md.append("")
    md += [f"_Timings: {torch.get_num_threads()} CPU threads; the virtual machine's host took "
           f"{fmt(steal.pct, 0)}% of the CPU meanwhile (steal), which inflates times by about 1 / (1 - steal)._", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
