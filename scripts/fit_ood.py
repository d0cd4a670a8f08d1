"""Choose, fit and measure the out-of-distribution score of every bundled model (docs/TRUST.md).

Why a script (like calibrate_bundled.py): the cached splits are distill's and the detector is
trust's, and neither layer may import the other.

Protocol, so that no figure is measured on what chose or fitted it:
- statistics (class means, shrunk covariance, kNN bank) are fitted on the task's ``train`` split;
- the threshold is a tolerance limit on the task's own ``val`` scores (at least 95 % pass, with
  90 % confidence: ``trust.ood.pass_threshold``);
- the score family is chosen on ``val``: in-distribution val images against the other tasks'
  *val* images and synthetic inputs (mean AUROC over every model); so is, per model, which layers
  the Mahalanobis score reads: its last 1 to 4 stages, with or without the input's 8 x 8 thumbnail
  (the best val AUROC; on a tie, the fewest layers);
- AUROC is reported on ``test``: the task's test images against the other tasks' *test* images
  (far), synthetic inputs (blank, noise, photos and app screenshots: far), and a near set.

Run: ``.venv/bin/python scripts/fit_ood.py [--task T ...] [--write]`` (``--write`` stores
``<role>.ood.safetensors`` beside the weights, the card's ``ood`` field and docs/trust.json; with ``--task``,
only that task's models are refitted and the other tasks' entries in docs/trust.json are kept).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medkd_desktop.distill.data import CachedSplit, Sample, read_manifest
from medkd_desktop.distill.trainer import default_cache_dir
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.features import stages_from_end, thumbnail
from medkd_desktop.models.preprocess import InputSpec, to_model_range
from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry, load_model
from medkd_desktop.paths import shared_data_dir
from medkd_desktop.retrain.ood_fit import pooled_features
from medkd_desktop.studies import StudyLoadError, open_study
from medkd_desktop.trust.ood import OodDetector, auroc, energy_score, msp_score, pass_threshold

ROOT = Path(__file__).resolve().parents[1]
IMAGE_TASKS = ("cxr-covid", "histo-lc25000", "skin-ham10000", "brain-tumor-mri")
#: The closest other source for each task: same channels and a similar look (near-OOD).
NEAR = {"cxr-covid": "brain-tumor-mri", "brain-tumor-mri": "cxr-covid",
        "histo-lc25000": "skin-ham10000", "skin-ham10000": "histo-lc25000"}
OTHER_VAL_N, OTHER_TEST_N = 150, 300  # other tasks' images per split (every n-th row)
MAX_STAGES = 4  # the Mahalanobis score reads the last 1..4 stages (every model has at least 3 besides its stem)
THUMBNAIL = 8  # side of the input thumbnail the Mahalanobis score may read as one more layer
#: "mahalanobis_k": the last k stages, "_thumb": and the thumbnail; "mahalanobis": per model, the
#: variant with the best val AUROC.
MAHALANOBIS = tuple(f"mahalanobis_{k}{t}" for t in ("", "_thumb") for k in range(1, MAX_STAGES + 1))
CANDIDATES = ("msp", "energy", "knn", *MAHALANOBIS, "mahalanobis")
CACHE = default_cache_dir().parent / "ood-features"


def every_nth(samples: list[Sample], n: int) -> list[Sample]:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def other_split(task: str, split: str, n: int, spec: InputSpec) -> CachedSplit:
    """Another task's images through *spec* (an fMRI spec reads them as plain images: only the
    score is measured, since the app never sends a JPEG to an fMRI model)."""
    data = shared_data_dir() / task
    plain = dataclasses.replace(spec, fmri_map=None)
    samples = every_nth(read_manifest(data / "manifest.csv", plain, split), n)
    return CachedSplit(samples, sorted({s.label for s in samples}), plain, default_cache_dir())


def synthetic(spec: InputSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs no model should trust, in model range: blank, noise, photos, app screenshots."""
    rng = np.random.default_rng(seed)
    s, c = spec.size, spec.channels
    blank = torch.stack([torch.full((c, s, s), v) for v in (0.0, 0.5, 1.0)])
    noise = torch.from_numpy(rng.random((12, c, s, s), dtype=np.float32))
    coarse = torch.nn.functional.interpolate(torch.from_numpy(rng.random((12, c, 8, 8), dtype=np.float32)),
                                             size=(s, s), mode="bilinear", align_corners=False)
    import matplotlib

    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [sample_data / n for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    photos += sorted((ROOT / "docs" / "screenshots").glob("*.png"))
    plain = dataclasses.replace(spec, fmri_map=None)
    loaded = []
    for p in photos:
        img = open_study(p).frame(0, 0).display()
        loaded.append(to_model_range(img, plain))
        h, w = img.shape[:2]  # and two crops of each, as a user's snapshot of part of a screen would be
        loaded.append(to_model_range(img[: h // 2, : w // 2], plain))
        loaded.append(to_model_range(img[h // 2:, w // 2:], plain))
    return {"blank": blank, "noise": torch.cat([noise, coarse]), "photo": torch.stack(loaded)}


def nifti_near(spec: InputSpec) -> tuple[torch.Tensor, list[str]]:
    """fMRI's near set: other NIfTI files the app would render and send to the model (T1, 4-D EPI)."""
    from medkd_desktop.models.preprocess import model_input_image

    xs, names = [], []
    for p in sorted((shared_data_dir() / "nifti").glob("*/*.nii*")):
        try:
            xs.append(to_model_range(model_input_image(open_study(p), spec), spec))
            names.append(p.name)
        except (StudyLoadError, ValueError):
            continue
    return (torch.stack(xs) if xs else torch.empty(0)), names


def features(card: ModelCard, model: torch.nn.Module, x: torch.Tensor, key: str) -> dict[str, np.ndarray]:
    """Logits and the pooled features of the last MAX_STAGES stages (``f0`` = the last) of cached
    [0, 1] images, cached by (weights, images)."""
    digest = hashlib.sha256(card.sha256.encode() + key.encode() + str(tuple(x.shape)).encode()
                            + f"stages{MAX_STAGES}".encode()).hexdigest()[:20]
    path = CACHE / f"{digest}.npz"
    if path.exists():
        out = dict(np.load(path))
    else:
        logits, feats = pooled_features(model, x, card.input, torch.device("cpu"), stages_from_end(model, MAX_STAGES))
        out = {"logits": logits} | {f"f{j}": f for j, f in enumerate(feats)}
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
    return out | {"thumb": thumbnail(x.float(), THUMBNAIL).numpy()}  # needs no model: x is in [0, 1]


def n_stages(feats: dict) -> int:
    return sum(1 for k in feats if k.startswith("f"))


COLOUR_SETS = {"histo-lc25000", "skin-ham10000", "photo"}  # RGB files; cxr and brain MR are grey


def gate(card: ModelCard, name: str) -> bool:
    """Would the study-level gate (inference.pairing.mismatch_warning) flag every image of set *name*?"""
    if name in ("blank", "noise"):
        return False
    kinds = card.task_info.study_kinds
    if kinds and "image" not in kinds:  # e.g. fMRI: NIfTI only; a JPEG never reaches the model
        return True
    colour = card.task_info.colour
    return colour is not None and (name in COLOUR_SETS) != colour


def detector(kind: str, train: dict, y: np.ndarray) -> OodDetector:
    """The feature score *kind* ("knn", "mahalanobis_k" or "mahalanobis_k_thumb") fitted on *train*."""
    parts = kind.split("_")
    count = 1 if kind == "knn" else min(int(parts[1]), n_stages(train))
    thumb = THUMBNAIL if parts[-1] == "thumb" else 0
    return OodDetector.fit(parts[0], [train[f"f{j}"] for j in range(count)] + ([train["thumb"]] if thumb else []), y,
                           [-(j + 1) for j in range(count)], thumbnail=thumb)


def layers(det: OodDetector, feats: dict) -> list[np.ndarray]:
    """What *det* reads, from fit_ood's cached features (in ``logits_and_features``' order)."""
    return [feats[f"f{-s - 1}"] for s in det.stages] + ([feats["thumb"]] if det.thumbnail else [])


def scorer(kind: str, train: dict, y: np.ndarray, temperature: float):
    """A function features -> scores for one candidate, fitted on *train*."""
    if kind == "msp":
        return lambda d: msp_score(torch.softmax(torch.from_numpy(d["logits"]) / temperature, 1).numpy())
    if kind == "energy":
        return lambda d: energy_score(d["logits"])
    det = detector(kind, train, y)
    return lambda d: det.score(layers(det, d))


def measure(task: str, role: str, card: ModelCard) -> dict:
    model = load_model(card, torch.device("cpu")).eval()
    spec = card.input
    manifest = shared_data_dir() / card.training["manifest"]
    split = {s: CachedSplit(read_manifest(manifest, spec, s), card.classes, spec, default_cache_dir())
             for s in ("train", "val", "test")}
    feats = {s: features(card, model, split[s].x, f"{task}/{s}") for s in split}
    y_train = split["train"].y.numpy()
    others = [t for t in IMAGE_TASKS if t != task]
    ood_val = {t: features(card, model, other_split(t, "val", OTHER_VAL_N, spec).x, f"{t}/val{OTHER_VAL_N}")
               for t in others}
    ood_test = {t: features(card, model, other_split(t, "test", OTHER_TEST_N, spec).x, f"{t}/test{OTHER_TEST_N}")
                for t in others}
    synth = {k: features(card, model, v, f"synthetic/{k}") for k, v in synthetic(spec).items()}
    near_names: list[str] = []
    if task in NEAR:
        near = ood_test[NEAR[task]]
    else:
        x, near_names = nifti_near(spec)
        near = features(card, model, x, "nifti-near") if len(x) else None

    result: dict = {"n": {"train": len(y_train), "val": len(split["val"]), "test": len(split["test"])},
                    "candidates": {}}
    for kind in CANDIDATES[:-1]:
        score = scorer(kind, feats["train"], y_train, card.temperature)
        id_val, id_test = score(feats["val"]), score(feats["test"])
        sel = np.concatenate([score(d) for d in [*ood_val.values(), *synth.values()]])
        far = np.concatenate([score(d) for d in [*ood_test.values(), *synth.values()]])
        threshold = pass_threshold(id_val)
        # What the app decides: the study-level gate (a colour image for a grey model, or the reverse) flags
        # a whole set before its score is read; blank and noise are model-range tensors, never gated.
        gated = np.concatenate([np.where(gate(card, t), np.inf, score(d)) for t, d in {**ood_test, **synth}.items()])
        entry = {"val_auroc": auroc(id_val, sel), "far_auroc": auroc(id_test, far),
                 "far_auroc_with_gate": auroc(id_test, gated), "far_flagged_with_gate": float((gated > threshold).mean()),
                 "id_test_flagged": float((id_test > threshold).mean()),
                 "far_flagged": float((far > threshold).mean()),
                 "by_set": {t: auroc(id_test, score(d)) for t, d in {**ood_test, **synth}.items()}}
        if near is not None:
            near_scores = score(near)
            entry["near_auroc"] = auroc(id_test, near_scores)
            entry["near_flagged"] = float((near_scores > threshold).mean())
            if near_names:
                entry["near_items"] = {n: bool(s > threshold) for n, s in zip(near_names, near_scores)}
        result["candidates"][kind] = entry
    n = n_stages(feats["train"])  # a model with fewer stages: its "mahalanobis_4" is its "mahalanobis_3"
    maha = [k for k in MAHALANOBIS if int(k.split("_")[1]) <= n]
    best = max(maha, key=lambda k: (round(result["candidates"][k]["val_auroc"], 3),
                                    -(int(k.split("_")[1]) + k.endswith("_thumb"))))
    result["candidates"]["mahalanobis"] = {**result["candidates"][best], "chosen_on_val": best}
    result["near_set"] = NEAR.get(task, "other NIfTI files (T1, 4-D EPI) as glass brains")
    return result


def adult_only_experiment(role: str, card: ModelCard, kind: str) -> dict:
    """The issue's near-OOD case: statistics fitted on adult rows only, paediatric rows as OOD."""
    model = load_model(card, torch.device("cpu")).eval()
    spec = card.input
    manifest = shared_data_dir() / card.training["manifest"]
    rows = {s: read_manifest(manifest, spec, s) for s in ("train", "val", "test")}
    adult = {s: [r for r in v if "lecuong1502" not in r.source] for s, v in rows.items()}
    child = [r for r in rows["test"] if "lecuong1502" in r.source]
    sets = {f"adult_{s}": CachedSplit(v, card.classes, spec, default_cache_dir()) for s, v in adult.items()}
    sets["child_test"] = CachedSplit(child, card.classes, spec, default_cache_dir())
    f = {k: features(card, model, v.x, f"cxr-covid/{k}") for k, v in sets.items()}
    y = sets["adult_train"].y.numpy()
    score = scorer(kind, f["adult_train"], y, card.temperature)
    id_val, id_test, out = score(f["adult_val"]), score(f["adult_test"]), score(f["child_test"])
    thr = pass_threshold(id_val)
    return {"auroc": auroc(id_test, out), "child_flagged": float((out > thr).mean()),
            "adult_test_flagged": float((id_test > thr).mean()), "n_adult_test": len(id_test), "n_child_test": len(out)}


def deploy(card: ModelCard, kind: str) -> dict:
    """Fit the chosen score (a "mahalanobis_k" or "knn") on train, its threshold on val; write the
    stats file and the card field."""
    model = load_model(card, torch.device("cpu")).eval()
    spec = card.input
    manifest = shared_data_dir() / card.training["manifest"]
    train = CachedSplit(read_manifest(manifest, spec, "train"), card.classes, spec, default_cache_dir())
    val = CachedSplit(read_manifest(manifest, spec, "val"), card.classes, spec, default_cache_dir())
    ft, fv = features(card, model, train.x, f"{card.task}/train"), features(card, model, val.x, f"{card.task}/val")
    det = detector(kind, ft, train.y.numpy())
    det.info = {"fitted_on": "train", "n_train": len(train), "threshold_on": "val", "n_val": len(val),
                "manifest_sha256": card.training.get("manifest_sha256", "")}
    det.fit_threshold(det.score(layers(det, fv)))
    path = card.path.with_name(f"{card.path.stem}.ood.safetensors")
    field = det.card_field(path.name, det.save(path))
    d = json.loads(card.path.read_text())  # in place, like calibrate_bundled.py: keeps every other key
    d["ood"] = field
    card.path.write_text(json.dumps(d, indent=2) + "\n")
    return field


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", action="append", help="task(s); default: every bundled task")
    ap.add_argument("--write", action="store_true", help="write the chosen detector beside each model")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "trust.json")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    registry = ModelRegistry([BUNDLED_DIR])
    report: dict = {"tasks": {}}
    for task in args.task or registry.tasks():
        for role in ("teacher", "student"):
            t0 = time.perf_counter()
            card = registry.card(task, role)
            report["tasks"].setdefault(task, {})[role] = r = measure(task, role, card)
            best = max(r["candidates"], key=lambda k: r["candidates"][k]["val_auroc"])
            print(f"{task:16s} {role:8s} " + "  ".join(f"{k} {v['val_auroc']:.3f}/{v['far_auroc']:.3f}"
                  f"{'/%.3f' % v['near_auroc'] if 'near_auroc' in v else ''}" for k, v in r["candidates"].items())
                  + f"  (val best {best}, {time.perf_counter() - t0:.0f} s)", flush=True)
    refitted = list(report["tasks"])
    if args.task and args.out.exists():
        # Only the named tasks refitted (a retrained model): the other tasks' models and figures are unchanged, and the
        # score family is still chosen over every model's val AUROC, so their entries are kept.
        kept = json.loads(args.out.read_text())
        report["tasks"] = {**kept["tasks"], **report["tasks"]}
        report["adult_only"] = kept.get("adult_only")
    mean_val = {k: float(np.mean([r["candidates"][k]["val_auroc"] for t in report["tasks"].values()
                                  for r in t.values()])) for k in CANDIDATES}
    chosen = max((k for k in CANDIDATES if k not in ("msp", "energy")), key=lambda k: (round(mean_val[k], 3), k == "mahalanobis"))
    report["mean_val_auroc"], report["chosen"] = mean_val, chosen
    print("mean val AUROC:", json.dumps(mean_val), "-> chosen:", chosen)
    if "cxr-covid" in refitted:
        cxr = report["tasks"]["cxr-covid"]
        report["adult_only"] = {role: adult_only_experiment(role, registry.card("cxr-covid", role),
                                                            cxr[role]["candidates"][chosen].get("chosen_on_val", chosen))
                                for role in ("teacher", "student")}
        print("adult-only fit, paediatric rows as near-OOD:", json.dumps(report["adult_only"]))
    if args.write:
        for task in refitted:
            for role in ("teacher", "student"):
                r = report["tasks"][task][role]
                r["deployed"] = deploy(registry.card(task, role), r["candidates"][chosen].get("chosen_on_val", chosen))
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
