"""Membership-inference attacks on a released synthetic table.

Members are (a sample of) the training rows, non-members the holdout rows; each attack
scores every candidate record, higher meaning "member". Three attacks:

- :class:`DCRAttack` - distance to the closest synthetic record (closer means member);
- :class:`DOMIASAttack` - density ratio p_synth(x) / p_ref(x) (van Breugel et al. 2023), the
  densities estimated with a Gaussian KDE (or a Gaussian mixture) on encoded features, the
  reference density on real rows that are neither candidates nor training rows;
- :class:`ShadowModelAttack` - shadow generators trained through a ``fit_sample`` callable on
  the attacker's reference data teach a classifier what "member" looks like; the classifier
  then scores the candidates against the released synthetic table.

Each reports AUROC and TPR at FPR 1% / 0.1%, the same on the top-k outlier candidates (the
vulnerable records), and an empirical epsilon lower bound (:mod:`.epsilon_audit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity, NearestNeighbors

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.attack_scores import summarize_attack
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import FeatureEncoder, coerce_frame
from dpsynth.metrics.epsilon_audit import empirical_epsilon

FitSample = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def per_unit_max(row_scores: np.ndarray, groups: np.ndarray, n_units: int) -> np.ndarray:
    """The maximum row score of each unit (``groups``: unit index 0..n_units-1 of each row)."""
    out = np.full(n_units, -np.inf)
    np.maximum.at(out, groups, np.nan_to_num(np.asarray(row_scores, dtype=float), nan=-np.inf))
    return out


@dataclass
class Candidates:
    """The attacked records: members (label 1) then non-members (label 0), encoded."""

    features: np.ndarray
    labels: np.ndarray
    outlier_score: np.ndarray
    reference: np.ndarray  # encoded real rows that are neither members nor candidates
    encoder: FeatureEncoder
    # per-patient attacks (:mod:`.unit_attacks`): candidate (patient) index of each feature row, and
    # the patient code of each reference row; labels and outlier scores are then per patient
    groups: np.ndarray | None = None
    reference_groups: np.ndarray | None = None

    def per_candidate(self, row_scores: np.ndarray) -> np.ndarray:
        """Row scores -> one score per candidate (a patient's is the max over their rows)."""
        if self.groups is None:
            return row_scores
        return per_unit_max(row_scores, self.groups, len(self.labels))


def build_candidates(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Schema,
    *,
    rng: np.random.Generator,
    reference: pd.DataFrame | None = None,
    max_per_side: int | None = None,
    outlier_k: int = 5,
) -> Candidates:
    """Balance members and non-members, encode them, score how outlying each one is.

    Without a separate ``reference`` frame, half of the holdout becomes the reference and the
    other half the non-member candidates.
    """
    if reference is None:
        order = rng.permutation(len(holdout))
        half = len(holdout) // 2
        reference, holdout = holdout.iloc[order[:half]], holdout.iloc[order[half:]]
    n = min(len(train), len(holdout))
    if max_per_side is not None:
        n = min(n, int(max_per_side))
    if n < 5:
        raise DataError(f"membership attacks need at least 5 train and 5 holdout rows, got {len(train)}/{len(holdout)}")
    members = train.iloc[rng.choice(len(train), n, replace=False)]
    non_members = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    encoder = FeatureEncoder(schema).fit(train)
    feats = np.vstack([encoder.transform(members), encoder.transform(non_members)])
    ref = encoder.transform(reference)
    labels = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
    return Candidates(feats, labels, outlier_scores(feats, ref, k=outlier_k), ref, encoder)


def outlier_scores(features: np.ndarray, reference: np.ndarray, *, k: int = 5) -> np.ndarray:
    """Mean distance to the k nearest reference rows: large for rare (vulnerable) records."""
    k = max(1, min(k, len(reference)))
    dist, _ = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(features)
    return dist.mean(axis=1)


def attack_report(cand: Candidates, scores: np.ndarray, *, top_k: int, rng: np.random.Generator,
                  delta: float = 0.0, confidence: float = 0.95) -> dict:
    """AUROC / TPR@FPR on all candidates and on the top-k outliers, plus the epsilon bound."""
    out = summarize_attack(cand.labels, scores)
    top = np.argsort(-cand.outlier_score)[: min(top_k, len(scores))]
    out["outliers"] = {"k": int(len(top)), **summarize_attack(cand.labels[top], scores[top], curve=False)}
    out["epsilon"] = empirical_epsilon(cand.labels, scores, delta=delta, confidence=confidence, rng=rng)
    return out


def _result(name: str, report: dict) -> MetricResult:
    value = report["auroc"] if report["auroc"] is not None else float("nan")
    return MetricResult(name=name, value=value, goal="target", range=(0.0, 1.0), breakdown=report, target=0.5)


class _Attack:
    name: ClassVar[str]
    goal: ClassVar[str] = "target"
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(self, *, top_k: int = 50, delta: float = 0.0, confidence: float = 0.95,
                 max_per_side: int | None = None) -> None:
        self.top_k = top_k
        self.delta = delta
        self.confidence = confidence
        self.max_per_side = max_per_side

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        rng = rng if rng is not None else np.random.default_rng(0)
        train = coerce_frame(train, schema, role="train")
        holdout = coerce_frame(holdout, schema, role="holdout")
        synthetic = coerce_frame(synthetic, schema, role="synthetic")
        ref = coerce_frame(test, schema, role="test") if test is not None else None
        cand = build_candidates(train, holdout, schema, rng=rng, reference=ref, max_per_side=self.max_per_side)
        return _result(self.name, self.run(cand, synthetic, rng=rng))

    def run(self, cand: Candidates, synthetic: pd.DataFrame, *, rng: np.random.Generator) -> dict:
        scores = cand.per_candidate(self.score(cand, cand.encoder.transform(synthetic), rng=rng))
        return attack_report(cand, scores, top_k=self.top_k, rng=rng, delta=self.delta, confidence=self.confidence)

    def score(self, cand: Candidates, synth: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class DCRAttack(_Attack):
    """Distance to the closest synthetic record; the score is its negative."""

    name = "dcr_attack_auroc"

    def score(self, cand, synth, *, rng):
        dist, _ = NearestNeighbors(n_neighbors=1).fit(synth).kneighbors(cand.features)
        return -dist[:, 0]


class DOMIASAttack(_Attack):
    """log p_synth(x) - log p_ref(x), densities by Gaussian KDE or a Gaussian mixture.

    Features are projected on the reference rows' first ``n_components`` principal
    components (fitted on reference rows only) and whitened, so one bandwidth suits all axes.
    ``bandwidth=None`` uses Scott's rule for each density separately.
    """

    name = "domias_attack_auroc"

    def __init__(self, *, density: str = "kde", n_components: int | None = 10, bandwidth: float | None = None,
                 gmm_components: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if density not in ("kde", "gmm"):
            raise DataError(f"DOMIAS density must be 'kde' or 'gmm', got {density!r}")
        self.density = density
        self.n_components = n_components
        self.bandwidth = bandwidth
        self.gmm_components = gmm_components

    def score(self, cand, synth, *, rng):
        ref = cand.reference
        if len(ref) < 10:
            raise DataError(f"DOMIAS needs at least 10 reference rows, got {len(ref)}")
        k = min(self.n_components or ref.shape[1], ref.shape[1], len(ref) - 1)
        pca = PCA(n_components=k, whiten=True, random_state=int(rng.integers(2**31))).fit(ref)
        x, s, r = pca.transform(cand.features), pca.transform(synth), pca.transform(ref)
        return self._log_density(s, x, rng) - self._log_density(r, x, rng)

    def _log_density(self, fit_on: np.ndarray, x: np.ndarray, rng) -> np.ndarray:
        if self.density == "gmm":
            gm = GaussianMixture(n_components=min(self.gmm_components, len(fit_on)), covariance_type="full",
                                 reg_covar=1e-3, random_state=int(rng.integers(2**31))).fit(fit_on)
            return gm.score_samples(x)
        n, d = fit_on.shape
        h = self.bandwidth or float(fit_on.std(axis=0).mean() * n ** (-1.0 / (d + 4)))
        return KernelDensity(bandwidth=max(h, 1e-6)).fit(fit_on).score_samples(x)


def _record_features(x: np.ndarray, synth: np.ndarray, *, k: int = 5) -> np.ndarray:
    """What a shadow classifier sees of a record against a synthetic table."""
    k = min(k, len(synth))
    dist, _ = NearestNeighbors(n_neighbors=k).fit(synth).kneighbors(x)
    d1 = dist[:, 0]
    return np.column_stack([np.log1p(d1), np.log1p(dist.mean(axis=1)), np.log1p(d1) - np.log1p(dist[:, -1]),
                            (d1 < 1e-9).astype(float)])


class ShadowModelAttack(_Attack):
    """Shadow generators teach a classifier what a member looks like against a synthetic table.

    ``fit_sample(train_frame, rng) -> synthetic_frame`` trains the generator under test on a
    frame and samples from it (the caller decides the sample size). The attacker's data are the
    reference rows: each of ``n_shadow`` runs trains on a random half of them, and every
    reference row becomes a labelled example (in / out of that run). The fitted classifier then
    scores the real candidates against the released synthetic table. Cost: ``n_shadow`` calls
    of ``fit_sample``.
    """

    name = "shadow_attack_auroc"

    def __init__(self, *, fit_sample: FitSample, reference_frame: pd.DataFrame | None = None, n_shadow: int = 4,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not callable(fit_sample):
            raise DataError("ShadowModelAttack needs a callable fit_sample(train_frame, rng) -> synthetic_frame")
        if n_shadow < 1:
            raise DataError(f"ShadowModelAttack: n_shadow must be >= 1, got {n_shadow}")
        self.fit_sample = fit_sample
        self.reference_frame = reference_frame
        self.n_shadow = n_shadow

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        if test is None:
            raise DataError("ShadowModelAttack needs the attacker's reference data: pass test=")
        self.reference_frame = coerce_frame(test, schema, role="test")
        return super().evaluate(train, holdout, synthetic, schema, test=test, rng=rng)

    def score(self, cand, synth, *, rng):
        if self.reference_frame is None:
            raise DataError("ShadowModelAttack.run needs reference_frame (the attacker's real rows)")
        ref_frame = self.reference_frame.reset_index(drop=True)
        ref_x = cand.encoder.transform(ref_frame)
        xs, ys = [], []
        units = cand.reference_groups  # per patient: the shadow sets are halves of the reference patients
        for _ in range(self.n_shadow):
            if units is None:
                inside = np.zeros(len(ref_frame), dtype=bool)
                inside[rng.choice(len(ref_frame), len(ref_frame) // 2, replace=False)] = True
                shadow = self.fit_sample(ref_frame[inside].reset_index(drop=True), rng)
            else:
                n_units = int(units.max()) + 1
                inside = np.isin(units, rng.choice(n_units, n_units // 2, replace=False))
                shadow = self.fit_sample(ref_frame[inside].reset_index(drop=True), rng, units=units[inside])
            shadow = coerce_frame(shadow, cand.encoder.schema, role="shadow synthetic")
            xs.append(_record_features(ref_x, cand.encoder.transform(shadow)))
            ys.append(inside.astype(int))
        x, y = np.vstack(xs), np.concatenate(ys)
        if len(np.unique(y)) < 2:
            raise DataError("ShadowModelAttack: shadow runs produced a single label; use more reference rows")
        clf = LogisticRegression(max_iter=1000).fit(x, y)
        return clf.decision_function(_record_features(cand.features, synth))
