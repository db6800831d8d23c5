"""Sample-level fidelity, diversity and novelty on encoded features.

- :class:`PRDCCoverage` - precision, recall, density and coverage (Naeem et al. 2020) from the
  ``prdc`` package; the metric's value is coverage (the share of real rows whose k-NN ball
  holds a synthetic row), the other three are in the breakdown.
- :class:`AlphaPrecision`, :class:`BetaRecall`, :class:`Authenticity` (Alaa et al. 2022), in the
  embedding-free form: alpha-precision compares, for each alpha, the share of synthetic rows
  inside the real alpha-support (the ball around the real mean holding an alpha share of the real
  rows) with alpha itself; beta-recall does the same for real rows and the synthetic
  beta-support (the synthetic rows nearest the synthetic mean, each with its k-NN ball);
  authenticity is the share of
  synthetic rows that are farther from their nearest real row than that real row is from its
  own nearest real neighbour (copies score 0).
"""

from __future__ import annotations

import contextlib
import io
from typing import ClassVar

import numpy as np
from sklearn.neighbors import NearestNeighbors

from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import FeatureEncoder
from dpsynth.metrics.fidelity import _FidelityMetric


def _encoded_pair(real, synth, schema, rng, max_rows):
    """Equal-size samples of both tables (nearest-neighbour radii depend on sample size), and
    every real row (capped at 20 000) as the reference for authenticity."""
    n = min(len(real), len(synth), max_rows)
    enc = FeatureEncoder(schema).fit(real)
    r = enc.transform(real.iloc[rng.choice(len(real), n, replace=False)])
    s = enc.transform(synth.iloc[rng.choice(len(synth), n, replace=False)])
    full = real if len(real) <= 20_000 else real.iloc[rng.choice(len(real), 20_000, replace=False)]
    return r, s, enc.transform(full)


def prdc_scores(real_x: np.ndarray, synth_x: np.ndarray, *, k: int = 5) -> dict:
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample sizes
        out = compute_prdc(real_features=real_x, fake_features=synth_x, nearest_k=k)
    return {key: float(v) for key, v in out.items()}


def alpha_beta_authenticity(real_x: np.ndarray, synth_x: np.ndarray, *, real_reference: np.ndarray | None = None,
                            n_alphas: int = 30, k: int = 5) -> dict:
    """Curves and integrated scores; authenticity uses ``real_reference`` (all real rows) when given,
    so that a copied row is recognised even when the equal-size real sample missed it."""
    alphas = np.linspace(0.0, 1.0, n_alphas)
    center = real_x.mean(axis=0)
    real_radii = np.quantile(np.linalg.norm(real_x - center, axis=1), alphas)
    synth_to_center = np.linalg.norm(synth_x - center, axis=1)
    precision_curve = np.array([(synth_to_center <= r).mean() for r in real_radii])

    real_nn, _ = NearestNeighbors(n_neighbors=2).fit(real_x).kneighbors(real_x)
    real_to_real = real_nn[:, 1]
    # beta-support of the synthetic rows: the beta share nearest the synthetic mean. A real row
    # is recalled at level beta when its nearest synthetic row lies in that support and the real
    # row falls inside that synthetic row's k-NN ball (radius among synthetic rows).
    k = min(k, len(synth_x) - 1)
    synth_radius = NearestNeighbors(n_neighbors=k + 1).fit(synth_x).kneighbors(synth_x)[0][:, k]
    synth_to_own_center = np.linalg.norm(synth_x - synth_x.mean(axis=0), axis=1)
    synth_radii = np.quantile(synth_to_own_center, alphas)
    d_rs, idx_rs = NearestNeighbors(n_neighbors=1).fit(synth_x).kneighbors(real_x)
    nearest = idx_rs[:, 0]
    in_ball = d_rs[:, 0] <= synth_radius[nearest]
    recall_curve = np.array([(in_ball & (synth_to_own_center[nearest] <= r)).mean() for r in synth_radii])

    step = alphas[1] - alphas[0]
    alpha_precision = 1.0 - 2.0 * float(np.abs(precision_curve - alphas).sum() * step)
    beta_recall = 1.0 - 2.0 * float(np.abs(recall_curve - alphas).sum() * step)

    ref = real_x if real_reference is None else real_reference
    ref_to_ref = (real_to_real if real_reference is None
                  else NearestNeighbors(n_neighbors=2).fit(ref).kneighbors(ref)[0][:, 1])
    d_sr, idx_sr = NearestNeighbors(n_neighbors=1).fit(ref).kneighbors(synth_x)
    authentic = d_sr[:, 0] > ref_to_ref[idx_sr[:, 0]]
    return {
        "alpha_precision": float(np.clip(alpha_precision, 0.0, 1.0)),
        "beta_recall": float(np.clip(beta_recall, 0.0, 1.0)),
        "authenticity": float(authentic.mean()),
        "alphas": [round(float(a), 4) for a in alphas],
        "alpha_precision_curve": precision_curve.round(4).tolist(),
        "beta_recall_curve": recall_curve.round(4).tolist(),
    }


class PRDCCoverage(_FidelityMetric):
    name = "prdc_coverage"
    goal = "maximize"

    def __init__(self, *, k: int = 5, max_rows: int = 1500) -> None:
        self.k = k
        self.max_rows = max_rows

    def compare(self, real, synth, schema, *, rng) -> MetricResult:
        r, s, _ = _encoded_pair(real, synth, schema, rng, self.max_rows)
        scores = prdc_scores(r, s, k=self.k)
        return MetricResult(self.name, min(scores["coverage"], 1.0), self.goal, self.range, {**scores, "k": self.k})


class _AlaaMetric(_FidelityMetric):
    goal = "maximize"
    key: ClassVar[str]

    def __init__(self, *, max_rows: int = 1500) -> None:
        self.max_rows = max_rows

    def compare(self, real, synth, schema, *, rng) -> MetricResult:
        r, s, full = _encoded_pair(real, synth, schema, rng, self.max_rows)
        scores = alpha_beta_authenticity(r, s, real_reference=full)
        return MetricResult(self.name, scores[self.key], self.goal, self.range, scores)


class AlphaPrecision(_AlaaMetric):
    name = key = "alpha_precision"


class BetaRecall(_AlaaMetric):
    name = key = "beta_recall"


class Authenticity(_AlaaMetric):
    name = key = "authenticity"
