"""Image metrics: utility, fidelity, privacy attacks, class balance, and an image-grid writer.

All functions see arrays only: images in [-1, 1] (N, C, H, W) and integer labels, given as any
object with ``.images`` and ``.labels`` (:class:`~dpsynth.data.images.ImageData`; use
``SyntheticImages.to_image_data()`` for synthetic output). Splits: ``train`` (the generator's
training images: members), ``holdout`` (real images it never saw: non-members and attack
reference), ``test`` (real images for downstream accuracy and FID).

- **Downstream utility**: a SmallCNN trained on synthetic images, tested on the real test split,
  next to the same CNN (same fixed recipe) trained on the real training split.
- **Domain FID**: the Frechet distance between real-test and synthetic features of the SmallCNN
  trained on the *real training split* (penultimate layer). It is not the Inception FID of the
  literature: it measures distance in a feature space that knows this domain, and its values
  are comparable only within one dataset and one extractor recipe. The Inception FID is computed
  when a local Inception file is given: TorchScript (e.g. NVIDIA's ``inception-2015-12-05.pt``) or a
  ``torch.export`` ``.pt2`` program, called as ``model(uint8 NCHW RGB, return_features=True)`` and
  returning (N, 2048) features; else skipped. (No torchvision here, so no Inception definition.)
- **Subgroups**: when the test images carry sensitive metadata (sex, age, ... declared in the
  image schema), the same two CNNs' accuracy and AUROC per subgroup, and the worst-group gap.
- **PRDC** (Naeem et al. 2020) on the same domain features (the ``prdc`` package).
- **Membership attacks** on the same features: DCR (closer to a synthetic image = member) and
  DOMIAS (density ratio synthetic / reference, Gaussian KDE after PCA); AUROC, TPR at low FPR.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity, NearestNeighbors

from dpsynth.errors import DataError
from dpsynth.metrics.attack_scores import summarize_attack
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.groups import attributes, group_masks
from dpsynth.metrics.manifold import prdc_scores
from dpsynth.metrics.image_cnn import (CNN_MIN_STEPS, SmallCNN, classification_scores, extract_features,
                                       predict_proba, train_cnn)
from dpsynth.metrics.image_verdict import (class_scores, is_ordinal, majority_baseline, mean_scores,
                                           utility_verdict)


# ---- utility --------------------------------------------------------------------------------
def downstream_utility(train, synthetic, test, *, n_classes: int, rng: np.random.Generator, epochs: int = 10,
                       repeats: int = 1, real_model: SmallCNN | None = None, ordinal: bool | None = None,
                       target: float | None = None, min_steps: int = CNN_MIN_STEPS) -> tuple[MetricResult, SmallCNN]:
    """Train-on-synthetic / test-on-real accuracy and AUROC, beside train-on-real.

    ``repeats`` CNNs are trained on each side (fresh initialisations and batch orders from
    ``rng``); the reported scores are their means (per-repeat values and standard deviations in
    the breakdown): one CNN's accuracy moves by several points between seeds. Returns the result
    and the first real-trained CNN (reused as the domain feature extractor)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    real_models = [real_model] if real_model is not None else []
    while len(real_models) < repeats:
        real_models.append(train_cnn(train.images, train.labels, n_classes=n_classes, rng=rng, epochs=epochs,
                                     min_steps=min_steps))
    syn_models = [train_cnn(synthetic.images, synthetic.labels, n_classes=n_classes, rng=rng, epochs=epochs,
                            min_steps=min_steps) for _ in range(repeats)]
    real_probs = [predict_proba(m, test.images) for m in real_models]
    syn_probs = [predict_proba(m, test.images) for m in syn_models]
    real = [classification_scores(p, test.labels) for p in real_probs]
    syn = [classification_scores(p, test.labels) for p in syn_probs]

    def mean(scores, key):
        return float(np.mean([s[key] for s in scores]))

    majority = int(np.bincount(np.asarray(train.labels, dtype=int), minlength=n_classes).argmax())
    test_labels = np.asarray(test.labels)
    breakdown = {
        "synthetic_accuracy": mean(syn, "accuracy"), "synthetic_auroc": mean(syn, "auroc"),
        "real_accuracy": mean(real, "accuracy"), "real_auroc": mean(real, "auroc"),
        "synthetic_balanced_accuracy": mean(syn, "balanced_accuracy"),
        "real_balanced_accuracy": mean(real, "balanced_accuracy"),
        # the baseline every accuracy is read against: always predict the training split's majority class
        "majority_class": majority, "majority_accuracy": float((test_labels == majority).mean()),
        "majority_balanced_accuracy": 1.0 / len(np.unique(test_labels)),
        "epochs": epochs, "min_steps": min_steps, "repeats": repeats, "n_synthetic": len(synthetic.labels),
        "n_test": len(test.labels),
    }
    breakdown["accuracy_ratio"] = (breakdown["synthetic_accuracy"] / breakdown["real_accuracy"]
                                   if breakdown["real_accuracy"] > 0 else math.nan)
    if repeats > 1:
        for side, scores in (("synthetic", syn), ("real", real)):
            for key in ("accuracy", "auroc"):
                values = [s[key] for s in scores]
                breakdown[f"{side}_{key}_repeats"] = values
                breakdown[f"{side}_{key}_std"] = float(np.std(values))
    # honest utility (metrics/image_verdict.py): per-class recall of both CNNs, majority baseline, verdict
    ordinal = is_ordinal(getattr(test, "schema", None)) if ordinal is None else ordinal
    honest = {side: mean_scores([class_scores(p, test_labels, n_classes=n_classes, ordinal=ordinal) for p in probs])
              for side, probs in (("synthetic", syn_probs), ("real", real_probs))}
    honest["majority"] = majority_baseline(train.labels, test_labels, n_classes=n_classes, ordinal=ordinal)
    breakdown["honest"] = {**honest, **utility_verdict(honest["synthetic"], honest["real"], honest["majority"],
                                                       target=target), "ordinal": ordinal}
    per_repeat = [subgroup_scores(test, r, s, majority=majority) for r, s in zip(real_probs, syn_probs)]
    if per_repeat[0] is not None:
        breakdown["subgroups"] = _mean_subgroups(per_repeat)
    return (MetricResult("image_downstream_accuracy", breakdown["synthetic_accuracy"], "maximize", (0.0, 1.0), breakdown),
            real_models[0])


def _mean_subgroups(per_repeat: list[list[dict]]) -> list[dict]:
    """Average the numeric scores of each subgroup row over the CNN repeats."""
    out = []
    for rows in zip(*per_repeat):
        row = dict(rows[0])
        if row["status"] == "ok":
            for key in ("real_accuracy", "synthetic_accuracy", "accuracy_gap", "real_auroc", "synthetic_auroc"):
                row[key] = float(np.mean([r[key] for r in rows]))
        out.append(row)
    return out


def subgroup_scores(test, real_probs: np.ndarray, syn_probs: np.ndarray, *, min_size: int = 30,
                    majority: int | None = None) -> list[dict] | None:
    """Per-subgroup accuracy / AUROC on the real test split of the real-trained and the
    synthetic-trained CNN, for each sensitive metadata attribute of the test images (numeric
    ones binned on their public bounds). None when the test images carry no metadata.
    Groups with fewer than ``min_size`` test images are listed as too small."""
    meta_schema = test.schema.metadata_schema
    if getattr(test, "metadata", None) is None or meta_schema is None or not test.schema.sensitive:
        return None
    attrs = attributes(meta_schema, columns=test.schema.sensitive)
    labels = np.asarray(test.labels)
    out = []
    for name, (_, mask) in group_masks(test.metadata, meta_schema, attrs, intersections=False).items():
        n = int(mask.sum())
        row: dict = {"group": name, "n_test": n}
        if n < min_size:
            out.append({**row, "status": "too small"})
            continue
        r, s = classification_scores(real_probs[mask], labels[mask]), classification_scores(syn_probs[mask], labels[mask])
        out.append({**row, "status": "ok", "real_accuracy": r["accuracy"], "synthetic_accuracy": s["accuracy"],
                    "accuracy_gap": r["accuracy"] - s["accuracy"], "real_auroc": _nan(r["auroc"]),
                    "synthetic_auroc": _nan(s["auroc"]),
                    **({"majority_accuracy": float((labels[mask] == majority).mean())} if majority is not None else {})})
    return out


def worst_group_gap(utility: MetricResult) -> MetricResult | None:
    """The largest (real - synthetic) accuracy gap over subgroups, next to the overall gap."""
    groups = [g for g in utility.breakdown.get("subgroups") or [] if g["status"] == "ok"]
    if not groups:
        return None
    worst = max(groups, key=lambda g: g["accuracy_gap"])
    overall = utility.breakdown["real_accuracy"] - utility.breakdown["synthetic_accuracy"]
    return MetricResult("image_worst_group_accuracy_gap", worst["accuracy_gap"], "minimize", (-1.0, 1.0),
                        {"group": worst["group"], "overall_gap": overall, "n_groups": len(groups)})


# ---- fidelity -------------------------------------------------------------------------------
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    eye = np.eye(len(s1)) * 1e-6  # dead ReLU channels make the covariances singular
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=linalg.LinAlgWarning)
        covmean = np.real(linalg.sqrtm((s1 + eye) @ (s2 + eye)))
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(0.0, value)


def domain_fid(real_features: np.ndarray, synthetic_features: np.ndarray) -> MetricResult:
    value = frechet_distance(real_features, synthetic_features)
    return MetricResult("image_domain_fid", value, "minimize", (0.0, math.inf),
                        {"feature_extractor": "SmallCNN trained on the real training split (penultimate layer)",
                         "n_real": len(real_features), "n_synthetic": len(synthetic_features)})


def inception_fid(real_images: np.ndarray, synthetic_images: np.ndarray, *, weights: str | Path | None,
                  batch_size: int = 64) -> MetricResult | None:
    """Inception FID from a local TorchScript file; None (skipped) when no file is given."""
    if weights is None:
        return None
    import torch

    path = Path(weights)
    if not path.is_file():
        raise DataError(f"Inception weights not found: {path}")
    if path.suffix == ".pt2":  # a torch.export program
        model = torch.export.load(str(path)).module()
    else:  # TorchScript, e.g. NVIDIA's inception-2015-12-05.pt (torch.jit is deprecated, still loads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu").eval()

    def feats(images: np.ndarray) -> np.ndarray:
        x = np.rint((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)
        if x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out.append(model(torch.from_numpy(x[i : i + batch_size]), return_features=True).numpy())
        return np.concatenate(out).astype(np.float64)

    value = frechet_distance(feats(real_images), feats(synthetic_images))
    return MetricResult("image_inception_fid", value, "minimize", (0.0, math.inf), {"weights": path.name})


def image_prdc(real_features: np.ndarray, synthetic_features: np.ndarray, *, nearest_k: int = 5) -> MetricResult:
    """Precision, recall, density, coverage; the value is coverage (the most robust of the four)."""
    k = max(1, min(nearest_k, len(real_features) - 1, len(synthetic_features) - 1))
    scores = prdc_scores(real_features, synthetic_features, k=k)
    return MetricResult("image_prdc_coverage", scores["coverage"], "maximize", (0.0, 1.0), {**scores, "nearest_k": k})


def class_counts(labels: np.ndarray, classes) -> MetricResult:
    """Per-class sample counts and the total-variation distance of the class mix from uniform."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(classes))
    share = counts / max(1, counts.sum())
    return MetricResult("image_class_counts", float(counts.min()), "maximize", (0.0, math.inf),
                        {str(c): int(k) for c, k in zip(classes, counts)} | {"shares": share.round(4).tolist()})


# ---- privacy attacks ------------------------------------------------------------------------
@dataclass
class AttackSet:
    features: np.ndarray  # members then non-members
    labels: np.ndarray
    reference: np.ndarray  # real non-member features that are not candidates


def attack_set(train_features: np.ndarray, holdout_features: np.ndarray, *, rng: np.random.Generator,
               max_per_side: int = 1000) -> AttackSet:
    order = rng.permutation(len(holdout_features))
    half = len(order) // 2
    reference, candidates = holdout_features[order[:half]], holdout_features[order[half:]]
    n = min(len(train_features), len(candidates), max_per_side)
    if n < 5:
        raise DataError(f"membership attacks need >= 5 train and >= 10 holdout images, got {len(train_features)}"
                        f"/{len(holdout_features)}")
    members = train_features[rng.choice(len(train_features), n, replace=False)]
    non_members = candidates[rng.choice(len(candidates), n, replace=False)]
    return AttackSet(np.vstack([members, non_members]), np.r_[np.ones(n, int), np.zeros(n, int)], reference)


def dcr_attack(cand: AttackSet, synthetic_features: np.ndarray) -> MetricResult:
    dist, _ = NearestNeighbors(n_neighbors=1).fit(synthetic_features).kneighbors(cand.features)
    out = summarize_attack(cand.labels, -dist[:, 0], curve=False)
    return MetricResult("image_dcr_attack_auroc", _nan(out["auroc"]), "target", (0.0, 1.0), out, target=0.5)


def domias_attack(cand: AttackSet, synthetic_features: np.ndarray, *, dims: int = 10) -> MetricResult:
    """log p_synth(x) - log p_ref(x), Gaussian KDEs (Scott bandwidth) on standardised PCA features."""
    dims = max(1, min(dims, synthetic_features.shape[1], len(cand.reference) - 1))
    pca = PCA(n_components=dims).fit(np.vstack([synthetic_features, cand.reference]))
    syn, ref, x = (pca.transform(a) for a in (synthetic_features, cand.reference, cand.features))
    scale = np.vstack([syn, ref]).std(axis=0) + 1e-8
    syn, ref, x = syn / scale, ref / scale, x / scale

    def log_density(train: np.ndarray) -> np.ndarray:
        bw = len(train) ** (-1.0 / (dims + 4))
        return KernelDensity(bandwidth=bw).fit(train).score_samples(x)

    out = summarize_attack(cand.labels, log_density(syn) - log_density(ref), curve=False)
    return MetricResult("image_domias_attack_auroc", _nan(out["auroc"]), "target", (0.0, 1.0),
                        out | {"pca_dims": dims}, target=0.5)


def _nan(value) -> float:
    return math.nan if value is None else float(value)


# ---- everything at once -----------------------------------------------------------------------
def evaluate_images(train, holdout, test, synthetic, *, classes, rng: np.random.Generator, cnn_epochs: int = 10,
                    cnn_min_steps: int = CNN_MIN_STEPS, cnn_repeats: int = 1,
                    inception_weights: str | Path | None = None, nearest_k: int = 5,
                    ordinal: bool | None = None, target: float | None = None) -> dict[str, MetricResult]:
    """All image metrics; the first real-trained CNN of the downstream comparison is also the
    domain feature extractor (FID, PRDC, attacks)."""
    n_classes = len(classes)
    results: dict[str, MetricResult] = {}
    utility, extractor = downstream_utility(train, synthetic, test, n_classes=n_classes, rng=rng, epochs=cnn_epochs,
                                            repeats=cnn_repeats, ordinal=ordinal, target=target,
                                            min_steps=cnn_min_steps)
    results[utility.name] = utility
    worst = worst_group_gap(utility)
    if worst is not None:
        results[worst.name] = worst
    f_train, f_hold, f_test, f_syn = (extract_features(extractor, d.images) for d in (train, holdout, test, synthetic))
    results["image_domain_fid"] = domain_fid(f_test, f_syn)
    results["image_prdc_coverage"] = image_prdc(f_test, f_syn, nearest_k=nearest_k)
    fid = inception_fid(test.images, synthetic.images, weights=inception_weights)
    if fid is not None:
        results[fid.name] = fid
    results["image_class_counts"] = class_counts(synthetic.labels, classes)
    cand = attack_set(f_train, f_hold, rng=rng)
    for result in (dcr_attack(cand, f_syn), domias_attack(cand, f_syn)):
        results[result.name] = result
    return results


def save_image_grid(images: np.ndarray, path: str | Path, *, nrow: int = 10, padding: int = 2,
                    labels: np.ndarray | None = None) -> Path:
    """Tile images in [-1, 1] (N, C, H, W) into one PNG; with ``labels``, one row per class."""
    from PIL import Image

    images = np.asarray(images)
    if labels is not None:
        labels = np.asarray(labels)
        rows = [images[labels == c][:nrow] for c in np.unique(labels)]
    else:
        rows = [images[i : i + nrow] for i in range(0, len(images), nrow)]
    _, c, h, w = images.shape
    grid = np.zeros((len(rows) * (h + padding) + padding, nrow * (w + padding) + padding, c), dtype=np.uint8)
    for r, row in enumerate(rows):
        for j, img in enumerate(row):
            tile = np.rint((np.clip(img, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
            y, x = padding + r * (h + padding), padding + j * (w + padding)
            grid[y : y + h, x : x + w] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[:, :, 0] if c == 1 else grid).save(path)
    return path
