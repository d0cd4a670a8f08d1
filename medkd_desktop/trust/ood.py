"""Out-of-distribution scores: how unlike a model's training images an input is (higher: less alike).

Why feature-space scores: a softmax is confident on inputs it has never seen the like of (a knee
film, a photo), so the calibrated top probability cannot say "not my kind of image". On published
medical OOD benchmarks, distances in the network's feature space beat scores read from its outputs
(OpenMIBOOD, CVPR 2025, mean near-OOD AUROC: Mahalanobis 78.6, kNN 71.6, MSP 53.2, energy 48.8).
Which one ships was chosen by measurement on ``val`` (``scripts/fit_ood.py``, docs/TRUST.md):

- ``mahalanobis``: Lee et al., NeurIPS 2018, Eq. 2: M(x) = min_k (f(x) - mu_k)^T Sigma^-1 (f(x) - mu_k),
  class means mu_k and one covariance Sigma shared by the classes, on L2-normalised pooled features
  of the model's last stages, and optionally the input's 8 x 8 thumbnail as one more layer (which
  layers: chosen per model on val, stored in the statistics file); Sigma is Ledoit-Wolf shrunk,
  since a few hundred images per class cannot pin down a 1024-dimensional covariance. Each layer's
  distance is standardised by its spread on the training images before the layers are summed (the
  paper's logistic weighting needs OOD data to fit; equal weights need none).
- ``knn``: Sun et al., ICML 2022: the cosine distance to the k-th nearest training feature.
- ``msp`` and ``energy`` (Hendrycks & Gimpel 2017; Liu et al. 2020) are measured as baselines.

Arrays in, arrays out: the features come from ``models.features`` (one forward pass, shared with
the prediction), so the detector is cheap enough to run on every analysis. The fitted statistics
and the threshold are one safetensors file beside the weights, named and hashed in the card.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedKDError

#: The score every model ships with: the best mean val AUROC over the 10 bundled models (docs/TRUST.md).
CHOSEN_SCORE = "mahalanobis"
#: Share of in-distribution images the threshold lets pass (the issue's target: <= 5 % flagged) ...
PASS_RATE = 0.95
#: ... with this confidence, given that val holds only 120-530 images (see ``pass_threshold``).
PASS_CONFIDENCE = 0.9
#: k of the kNN score: Sun et al. use k = 50 for 50 000 training images; ours have 600-2700.
KNN_K = 5


class OodStatsError(MedKDError):
    """The OOD statistics file is missing, altered (sha256) or unreadable."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class GaussianLayer:
    """One layer's class-conditional Gaussians with a shared, shrunk covariance."""

    means: np.ndarray  # (K, D)
    precision: np.ndarray  # (D, D)
    scale: np.ndarray  # (2,): mean and std of the training images' own distances

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray) -> GaussianLayer:
        from sklearn.covariance import LedoitWolf

        f = l2_normalise(features)
        y = np.asarray(labels, dtype=int)
        classes = np.unique(y)
        means = np.stack([f[y == k].mean(axis=0) for k in classes])
        centred = f - means[np.searchsorted(classes, y)]
        lw = LedoitWolf(assume_centered=True).fit(centred)
        layer = cls(means=means, precision=lw.precision_, scale=np.array([0.0, 1.0]))
        d = layer.distance(features)
        layer.scale = np.array([d.mean(), max(d.std(), 1e-12)])
        return layer

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, (N,)."""
        f = l2_normalise(features)
        diff = f[:, None, :] - self.means[None]  # (N, K, D)
        return ((diff @ self.precision) * diff).sum(axis=2).min(axis=1)  # BLAS, not einsum's loops

    def standardised(self, features: np.ndarray) -> np.ndarray:
        return (self.distance(features) - self.scale[0]) / self.scale[1]


@dataclass
class OodDetector:
    """A fitted score and its threshold: ``score(features) > threshold`` means out of distribution."""

    kind: str  # "mahalanobis" | "knn"
    stages: list[int]  # which pooled stages (models.features) the score reads, counted from the end
    thumbnail: int = 0  # mahalanobis: side of the input thumbnail read as one more layer (0: none)
    threshold: float = float("inf")
    layers: list[GaussianLayer] = field(default_factory=list)  # mahalanobis: one per stage
    bank: np.ndarray | None = None  # knn: L2-normalised training features (N, D) of stages[0]
    k: int = KNN_K
    info: dict = field(default_factory=dict)  # what it was fitted on (counts, manifest sha256)

    @classmethod
    def fit(cls, kind: str, features: list[np.ndarray], labels: np.ndarray, stages: list[int],
            info: dict | None = None, thumbnail: int = 0) -> OodDetector:
        """*features*: per stage in *stages*, the (N, D) pooled features of the training images, then
        their thumbnails if *thumbnail* (``models.features.logits_and_features`` returns that order)."""
        if kind == "mahalanobis":
            return cls(kind, list(stages), thumbnail, layers=[GaussianLayer.fit(f, labels) for f in features],
                       info=info or {})
        if kind == "knn":
            return cls(kind, list(stages[:1]), bank=l2_normalise(features[0]).astype(np.float32), info=info or {})
        raise ValueError(f"unknown OOD score {kind!r} (mahalanobis or knn)")

    def score(self, features: list[np.ndarray]) -> np.ndarray:
        """(N,) scores of pooled features, one array per stage of ``self.stages`` and the thumbnail
        (higher: less alike)."""
        if self.kind == "mahalanobis":
            return np.sum([layer.standardised(f) for layer, f in zip(self.layers, features)], axis=0)
        sims = l2_normalise(features[0]) @ self.bank.T.astype(np.float64)  # (N, n_train)
        k = min(self.k, sims.shape[1])
        return 1.0 - np.sort(sims, axis=1)[:, -k]

    def fit_threshold(self, val_scores: np.ndarray) -> float:
        self.threshold = pass_threshold(val_scores)
        return self.threshold

    def card_field(self, file_name: str, sha256: str) -> dict:
        """The card's ``ood`` entry: the statistics file, its hash, and how the threshold was set."""
        return {"file": file_name, "sha256": sha256, "score": self.kind, "stages": self.stages,
                "thumbnail": self.thumbnail, "threshold": self.threshold, "pass_rate": PASS_RATE,
                "pass_confidence": PASS_CONFIDENCE, "fitted_on": "train", "threshold_on": "val"}

    # -- file -----------------------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write the statistics (atomically) and return the file's sha256 for the card."""
        from safetensors.numpy import save_file

        tensors: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            tensors[f"layer{i}.means"] = layer.means.astype(np.float32)
            # symmetric: the upper triangle only, which halves the teachers' files (1024-d stages)
            tensors[f"layer{i}.precision_triu"] = layer.precision[np.triu_indices(len(layer.precision))].astype(np.float32)
            tensors[f"layer{i}.scale"] = layer.scale.astype(np.float64)
        if self.bank is not None:
            tensors["knn.bank"] = self.bank.astype(np.float16)
        meta = {"kind": self.kind, "stages": json.dumps(self.stages), "thumbnail": str(self.thumbnail),
                "threshold": repr(self.threshold),
                "k": str(self.k), "info": json.dumps(self.info, sort_keys=True)}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except Exception as exc:  # safetensors' own error for an I/O failure (a full disk: "os error 28")
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) or "os error" not in str(exc):
                raise
            raise OSError(str(exc)) from exc
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; an installed model is read by every user
        tmp.replace(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: Path, sha256: str | None = None) -> OodDetector:
        """Read a statistics file, refusing one whose sha256 differs from the card's."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OodStatsError(f"The OOD statistics {path.name} could not be read.", detail=str(exc)) from None
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise OodStatsError(f"The OOD statistics {path.name} do not match the model card's sha256.")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
            n_layers = sum(1 for k in tensors if k.endswith(".means"))
            layers = [GaussianLayer(tensors[f"layer{i}.means"].astype(np.float64),
                                    symmetric(tensors[f"layer{i}.precision_triu"], tensors[f"layer{i}.means"].shape[1]),
                                    tensors[f"layer{i}.scale"].astype(np.float64)) for i in range(n_layers)]
            bank = tensors.get("knn.bank")
            return cls(kind=meta["kind"], stages=json.loads(meta["stages"]), thumbnail=int(meta.get("thumbnail", 0)),
                       threshold=float(meta["threshold"]),
                       layers=layers, bank=None if bank is None else bank.astype(np.float32), k=int(meta.get("k", KNN_K)),
                       info=json.loads(meta.get("info", "{}")))
        except (KeyError, ValueError, OSError, SafetensorError) as exc:
            raise OodStatsError(f"The OOD statistics {path.name} are not readable.", detail=str(exc)) from None


def symmetric(triu: np.ndarray, d: int) -> np.ndarray:
    """A (d, d) symmetric matrix from its row-major upper triangle."""
    m = np.zeros((d, d), dtype=np.float64)
    m[np.triu_indices(d)] = triu
    return m + np.triu(m, 1).T


def pass_threshold(val_scores: np.ndarray, pass_rate: float = PASS_RATE, confidence: float = PASS_CONFIDENCE) -> float:
    """A distribution-free tolerance limit: the smallest val order statistic below which at least
    *pass_rate* of all in-distribution images fall, with probability *confidence*.

    Why not the plain 95th percentile of val: with a few hundred val images it lets 95 % pass on
    average only, and on test 7 of the 10 bundled models then flagged 5.4-7.7 % (docs/TRUST.md).
    The share of the population below the r-th smallest of n scores is Beta(r, n - r + 1)
    distributed, so it is >= p with probability P(Binomial(n, p) <= r - 1) (Wilks 1941); r is the
    smallest rank that reaches *confidence*. Too few images for that: the largest val score.
    """
    from scipy.stats import binom

    x = np.sort(np.asarray(val_scores, dtype=np.float64))
    n = x.size
    r = int(binom.ppf(confidence, n, pass_rate)) + 1  # smallest r with cdf(r - 1) >= confidence
    return float(x[min(r, n) - 1])


# -- output-space baselines (measured in docs/TRUST.md, not shipped) --------------------------

def msp_score(probabilities: np.ndarray) -> np.ndarray:
    """1 - the (calibrated) top probability: the "second signal" beside the feature score."""
    return 1.0 - np.asarray(probabilities).max(axis=1)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """-E(x) = T logsumexp(logits / T) is high in distribution; its negation is an OOD score."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    return -(temperature * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1))))


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(score of an OOD input > score of an in-distribution input), ties counted half."""
    from scipy.stats import rankdata

    a, b = np.asarray(in_scores, dtype=np.float64), np.asarray(out_scores, dtype=np.float64)
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[a.size:].sum() - b.size * (b.size + 1) / 2) / (a.size * b.size))
