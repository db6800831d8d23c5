"""Membership attacks at the privacy unit: a member is a PATIENT with all of their rows.

With many rows per patient (``privacy_unit: patient_nbr``) the DP guarantee is about patients,
so the attacks ask "was this patient in the training split?", not "was this row?":

- candidates are whole patients: ``n`` training patients (members) and ``n`` holdout patients
  (non-members), each with every one of their rows;
- each attack scores every candidate row as before (distance to the closest synthetic record,
  DOMIAS density ratio, shadow classifier) and a patient's score is the MAXIMUM over their rows
  (the attacker's best evidence that some of the patient's rows were trained on);
- the outlier score of a patient (for the top-k vulnerable candidates) is the maximum over rows;
- the shadow-model attack draws its shadow training sets as random halves of the reference
  PATIENTS, so its labels are per patient too.

AUROC, TPR at low FPR and the empirical epsilon lower bound are then computed over patients,
which is what a patient-level epsilon claims to bound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.encoding import FeatureEncoder
from dpsynth.metrics.privacy_attacks import Candidates, outlier_scores, per_unit_max  # noqa: F401 (re-exported)
from dpsynth.privacy.contribution import unit_index


def sample_units(frame: pd.DataFrame, units: np.ndarray, n: int, *, rng: np.random.Generator
                 ) -> tuple[pd.DataFrame, np.ndarray]:
    """All rows of ``n`` units drawn without replacement, and each row's unit index 0..n-1."""
    codes = unit_index(units)
    chosen = rng.choice(int(codes.max()) + 1, n, replace=False)
    rank = np.full(int(codes.max()) + 1, -1)
    rank[chosen] = np.arange(n)
    keep = rank[codes] >= 0
    return frame[keep].reset_index(drop=True), rank[codes][keep]


def build_unit_candidates(train: pd.DataFrame, holdout: pd.DataFrame, schema: Schema, *, train_units: np.ndarray,
                          holdout_units: np.ndarray, rng: np.random.Generator, reference: pd.DataFrame | None = None,
                          reference_units: np.ndarray | None = None, max_per_side: int | None = None,
                          outlier_k: int = 5):
    """Candidates (see :class:`dpsynth.metrics.privacy_attacks.Candidates`) whose labels,
    outlier scores and ``groups`` are per patient: ``n`` member and ``n`` non-member patients."""
    for what, frame, units in (("train", train, train_units), ("holdout", holdout, holdout_units)):
        if units is None or len(units) != len(frame):
            raise DataError(f"per-patient attacks need one privacy-unit id per {what} row")
    holdout_units = np.asarray(holdout_units)
    if reference is None:  # half of the holdout patients become the attacker's reference
        codes = unit_index(holdout_units)
        ref_side = rng.permutation(int(codes.max()) + 1)[: (int(codes.max()) + 1) // 2]
        is_ref = np.isin(codes, ref_side)
        reference, reference_units = holdout[is_ref].reset_index(drop=True), holdout_units[is_ref]
        holdout, holdout_units = holdout[~is_ref].reset_index(drop=True), holdout_units[~is_ref]
    n_train, n_hold = len(np.unique(train_units)), len(np.unique(holdout_units))
    n = min(n_train, n_hold) if max_per_side is None else min(n_train, n_hold, int(max_per_side))
    if n < 5:
        raise DataError(f"membership attacks need at least 5 train and 5 holdout patients, got {n_train}/{n_hold}")
    members, g_in = sample_units(train, train_units, n, rng=rng)
    non_members, g_out = sample_units(holdout, holdout_units, n, rng=rng)
    encoder = FeatureEncoder(schema).fit(train)
    feats = np.vstack([encoder.transform(members), encoder.transform(non_members)])
    groups = np.r_[g_in, g_out + n]
    ref = encoder.transform(reference)
    labels = np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)]
    outlying = per_unit_max(outlier_scores(feats, ref, k=outlier_k), groups, 2 * n)
    return Candidates(feats, labels, outlying, ref, encoder, groups=groups,
                      reference_groups=None if reference_units is None else unit_index(reference_units))
