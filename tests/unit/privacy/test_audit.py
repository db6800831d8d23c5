"""The one-run privacy audit (Steinke, Nasr and Jagielski 2023): its statistics, its power
(leaky generators and the non-private reference get a high lower bound) and its soundness
(DP mechanisms stay below their epsilon)."""

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pytest
import torch

from dpsynth.data.table import SyntheticData, TableData
from dpsynth.generators.base import Generator
from dpsynth.generators.tabular.gan.dp_gan import DPGAN
from dpsynth.privacy.audit import audit_from_scores, audit_generator, epsilon_lower_bound, p_value
from dpsynth.privacy.budget import Budget


# ---- statistics ------------------------------------------------------------------------------------
def test_all_correct_matches_the_closed_form():
    # delta = 0 and v = r: P[Bin(r, p) >= r] = p^r, so the bound is logit(0.05^(1/r))
    for r in (20, 100, 400):
        p = 0.05 ** (1 / r)
        assert epsilon_lower_bound(m=1000, r=r, v=r, confidence=0.95) == pytest.approx(math.log(p / (1 - p)), rel=1e-6)


def test_bound_behaves():
    assert epsilon_lower_bound(m=1000, r=100, v=50) == 0.0  # chance level proves nothing
    assert epsilon_lower_bound(m=1000, r=100, v=90) > epsilon_lower_bound(m=1000, r=100, v=80) > 0
    # delta only weakens the bound; a larger epsilon makes many correct guesses likelier
    assert epsilon_lower_bound(m=1000, r=100, v=90, delta=1e-3) < epsilon_lower_bound(m=1000, r=100, v=90)
    assert p_value(m=100, r=50, v=40, epsilon=0.5) < p_value(m=100, r=50, v=40, epsilon=2.0)


def test_randomized_response_is_never_caught_above_its_epsilon():
    """An epsilon-DP mechanism (randomized response on each canary's membership bit): the
    bound must stay below epsilon (checked over independent repetitions)."""
    eps = 1.0
    keep = math.exp(eps) / (1 + math.exp(eps))
    bounds = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        included = rng.random(2000) < 0.5
        reported = np.where(rng.random(2000) < keep, included, ~included)
        scores = reported + 1e-3 * rng.random(2000)
        bounds.append(audit_from_scores(included, scores, delta=0.0)["epsilon_lower_bound"])
    assert max(bounds) <= eps
    assert np.mean(bounds) > 0.3  # and the audit has power against it


# ---- generators for power and soundness ------------------------------------------------------------
class CopyingGenerator(Generator):
    """Deliberately leaky: 'samples' by replaying its training rows, while claiming epsilon=1."""

    name = "copy-test"

    def fit(self, data, *, budget, rng, ledger=None, progress=None):
        self.ledger_ = self._make_ledger(budget, len(data), ledger)
        self.ledger_.record_gaussian(purpose="a false claim", noise_multiplier=50.0)
        self.rows_, self.schema_ = data.frame.reset_index(drop=True), data.schema
        return self

    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng):
        return SyntheticData(self.rows_.iloc[np.arange(n) % len(self.rows_)].reset_index(drop=True), self.schema_,
                             self.name)

    def state_dict(self):
        return {}

    def load_state_dict(self, state, *, schema):
        return self


class PublicBoundsGenerator(CopyingGenerator):
    """Trivially private: samples every column uniformly from its public schema domain."""

    name = "public-bounds-test"

    def fit(self, data, *, budget, rng, ledger=None, progress=None):
        self.ledger_ = self._make_ledger(budget, len(data), ledger)  # touches no data: nothing to charge
        self.schema_ = data.schema
        return self

    def sample(self, n: int, *, conditions=None, rng):
        cols = {}
        for col in self.schema_.columns:
            if col.is_numeric:
                values = rng.uniform(col.low, col.high, n)
                cols[col.name] = np.round(values) if col.kind == "integer" else values
            else:
                cols[col.name] = np.array(col.categories, dtype=object)[rng.integers(len(col.categories), size=n)]
        return SyntheticData(self.schema_.prepare(pd.DataFrame(cols)), self.schema_, self.name)


@pytest.fixture(scope="module")
def small(actg_splits):
    schema, splits = actg_splits
    return TableData(splits.train.iloc[:400].reset_index(drop=True), schema)


def test_leaky_generator_is_caught(small):
    result = audit_generator(CopyingGenerator(), small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0),
                             canaries=400)
    assert result["method"] == "black-box"
    assert result["correct"] == result["guesses"] >= 100  # every guess right
    assert result["epsilon_lower_bound"] > 2.5
    assert result["epsilon_lower_bound"] > result["claimed_epsilon"]
    assert result["verdict"].startswith("VIOLATION")


def test_trivially_private_generator_gets_a_low_bound(small):
    result = audit_generator(PublicBoundsGenerator(), small, budget=Budget(epsilon=1.0),
                             rng=np.random.default_rng(0), canaries=400)
    assert result["epsilon_lower_bound"] < 0.5
    assert result["verdict"] == "consistent with the claim"


TINY = {"epochs": 4, "batch_size": 64, "generator_hidden": [16], "discriminator_hidden": [16]}


def test_white_box_non_private_control_is_large_and_dp_stays_below_claim(small):
    control = audit_generator(DPGAN(**TINY), small, budget=Budget.non_private_reference(),
                              rng=np.random.default_rng(0), canaries=500)
    assert control["method"] == "white-box" and control["non_private"]
    assert control["epsilon_lower_bound"] > 2.0
    for eps in (1.0, 4.0):
        result = audit_generator(DPGAN(**TINY), small, budget=Budget(epsilon=eps), rng=np.random.default_rng(0),
                                 canaries=500)
        assert result["epsilon_lower_bound"] < eps
        assert result["verdict"] == "consistent with the claim"


def test_white_box_audit_of_dp_diffusion(small):
    """The same Dirac canaries inside the tabular denoiser's DP-SGD: the non-private control is
    caught, DP runs stay below their claim, and the audited model samples like a plain one."""
    from dpsynth.generators.tabular.diffusion.dp_diffusion import DPDiffusion

    tiny = {"epochs": 4, "batch_size": 64, "width": 32, "depth": 1}
    control = audit_generator(DPDiffusion(**tiny), small, budget=Budget.non_private_reference(),
                              rng=np.random.default_rng(0), canaries=500)
    assert control["method"] == "white-box" and control["generator"] == "dp-diffusion"
    assert control["epsilon_lower_bound"] > 2.0
    gen = DPDiffusion(**tiny)
    result = audit_generator(gen, small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0), canaries=500)
    assert result["epsilon_lower_bound"] < 1.0 and result["verdict"] == "consistent with the claim"
    assert 0.99 < result["claimed_epsilon"] <= 1.0
    assert gen._audit_hook is None and len(gen.sample(20, rng=np.random.default_rng(1)).frame) == 20


def test_white_box_canaries_change_no_privacy_accounting(small):
    """The audit hook adds an inert layer and canary examples; the ledger of the audited run is
    the plain run's ledger, and the inert layer adds exactly 0 to the discriminator."""
    from dpsynth.privacy.canaries import DiracCanaries

    plain = DPGAN(**TINY).fit(small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(3))
    audited = DPGAN(**TINY)
    hook = DiracCanaries(included=np.ones(50, dtype=bool), seed=0)
    audited._audit_hook = hook
    audited.fit(small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(3))
    assert audited.ledger_.to_dict() == plain.ledger_.to_dict()
    assert hook.inserted > 0 and np.abs(hook.scores()).sum() > 0
    assert "_audit_hook" not in audited.get_params()
    x = torch.randn(5, hook.module.inner.net[0].in_features)
    with torch.no_grad():
        assert torch.equal(hook.module(x), hook.module.inner(x))
