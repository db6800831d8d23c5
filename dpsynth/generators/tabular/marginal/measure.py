"""The only code that reads the private table: marginal measurements and selections, each
charged to the ledger before anything is released.

- ``measure``: Gaussian noise on a batch of k marginals. One row changes each marginal by 1
  in one cell, so the batch has L2 sensitivity sqrt(k); every cell gets noise with std
  ``sigma = sqrt(k / (2 rho))`` and the ledger records a Gaussian release with
  noise_multiplier ``sigma / sqrt(k)`` (rho-zCDP with rho = 1 / (2 noise_multiplier^2)).
- ``select``: the exponential mechanism with scores of sensitivity ``sensitivity``:
  P(i) ~ exp(epsilon * score_i / (2 sensitivity)), drawn with the Gumbel-max trick. It is
  epsilon-DP and (bounded range) epsilon^2/8-zCDP, which the ledger records.
- ``available_rho``: the largest zCDP rho that, composed with what the ledger already holds,
  stays below its target epsilon under the ledger's own accountant. AIM and MST plan their
  spending in rho (it adds up), so the run stops at the target and never crosses it.

Secure mode (``Budget.secure_mode``) draws the Gaussian noise with opacus' secure generator;
the exponential mechanism's Gumbel draws always come from the run's numpy Generator.

The non-private reference (``Budget.non_private_reference()``) measures exactly, selects the
best-scoring candidate, and records one ``non-private`` ledger entry (epsilon = inf).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from dpsynth.errors import PrivacyError
from dpsynth.generators.tabular.marginal.estimate import Measurement
from dpsynth.generators.tabular.marginal.junction import Clique
from dpsynth.privacy.accountants import compose
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import gaussian_noise

# plan a hair below the target so that float rounding can never cross it
PLAN_MARGIN = 1e-7


def available_rho(ledger: Ledger, target_epsilon: float) -> float:
    """Largest extra rho-zCDP spend that keeps ``ledger`` at or below ``target_epsilon``."""
    if ledger.accountant != "rdp":
        raise PrivacyError(
            f"the marginal generators select with the exponential mechanism (zCDP), which the"
            f" '{ledger.accountant}' accountant cannot compose; use accountant 'rdp'"
        )
    history, base = ledger.gaussian_history(), ledger.rho()
    goal = target_epsilon * (1 - PLAN_MARGIN)

    def eps(extra: float) -> float:
        return compose(history, zcdp_rho=base + extra, delta=ledger.accountant_delta(), accountant="rdp")

    if eps(0.0) >= goal:
        raise PrivacyError(f"the ledger already spent epsilon={eps(0.0):.4g} of the target {target_epsilon:g}")
    low, high = 0.0, 1.0
    while eps(high) <= goal:
        low, high = high, 2 * high
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if eps(mid) <= goal else (low, mid)
        if high - low <= 1e-12 * high:
            break
    return low


class Measurer:
    """Holds the private integer codes; releases only noisy marginals and selections."""

    def __init__(
        self,
        codes: np.ndarray,
        sizes: Sequence[int],
        *,
        ledger: Ledger,
        rng: np.random.Generator,
        secure: bool = False,
        non_private: bool = False,
        names: Sequence[str] | None = None,
        counter=None,
        contribution: int = 1,
    ) -> None:
        """``codes``: the (n, d) private codes in memory; or ``codes=None`` and ``counter``: an
        exact-count engine (:mod:`dpsynth.scale.counts`) over a table that stays on disk.
        ``contribution``: the public bound k on rows per privacy unit (patient); one unit then
        moves each marginal by up to k (L2 and L1), so noise and selection sensitivity scale by k."""
        self._codes = codes
        self._counter = counter
        self.contribution = int(contribution)
        self.sizes = tuple(sizes)
        self.ledger = ledger
        self.rng = rng
        self.secure = secure
        self.non_private = non_private
        self.names = list(names) if names is not None else [str(i) for i in range(len(sizes))]
        self._recorded_non_private = False

    def recoded(self, maps: Sequence[np.ndarray]) -> "Measurer":
        """The same private table and ledger, on model codes (``maps[j]``: code -> model code)."""
        if self._counter is not None:
            from dpsynth.scale.counts import RecodedCounts

            counter = RecodedCounts(self._counter, maps)
            other = Measurer(None, counter.sizes, ledger=self.ledger, rng=self.rng, secure=self.secure,
                             non_private=self.non_private, names=self.names, counter=counter,
                             contribution=self.contribution)
            other._recorded_non_private = self._recorded_non_private
            return other
        codes = np.stack([m[self._codes[:, j]] for j, m in enumerate(maps)], axis=1)
        other = Measurer(codes, [int(m.max()) + 1 for m in maps], ledger=self.ledger, rng=self.rng, secure=self.secure,
                         non_private=self.non_private, names=self.names, contribution=self.contribution)
        other._recorded_non_private = self._recorded_non_private
        return other

    def label(self, clique: Clique) -> str:
        return "x".join(self.names[a] for a in clique)

    def answer(self, clique: Clique) -> np.ndarray:
        """Exact counts of a marginal (flattened). PRIVATE: use only inside a charged mechanism."""
        if self._counter is not None:
            return self._counter.counts([tuple(clique)])[0]
        shape = tuple(self.sizes[a] for a in clique)
        index = np.ravel_multi_index(tuple(self._codes[:, a] for a in clique), shape) if clique else 0
        return np.bincount(np.atleast_1d(index), minlength=int(np.prod(shape))).astype(float)

    def prefetch(self, cliques: Sequence[Clique]) -> None:
        """Let a counting engine count these marginals together (fewer passes over the table);
        nothing is released. A no-op for codes in memory."""
        if self._counter is not None and hasattr(self._counter, "prefetch"):
            self._counter.prefetch([tuple(c) for c in cliques])

    def _charge_non_private(self, purpose: str) -> None:
        if not self._recorded_non_private:
            self.ledger.record_non_private(purpose=purpose)
            self._recorded_non_private = True

    def measure(self, cliques: list[Clique], *, rho: float, purpose: str) -> list[Measurement]:
        """Noisy marginals of ``cliques`` released together for ``rho``-zCDP (exact when non-private)."""
        if self.non_private:
            self._charge_non_private("exact marginals and selections (non-private reference)")
            return [Measurement(c, self.answer(c), 1.0) for c in cliques]
        k = len(cliques)
        noise_multiplier = math.sqrt(1.0 / (2.0 * rho))
        self.ledger.record_gaussian(
            purpose=purpose,
            noise_multiplier=noise_multiplier,
            params={"marginals": [self.label(c) for c in cliques], "l2_sensitivity": math.sqrt(k) * self.contribution,
                    **({"rows_per_unit": self.contribution} if self.contribution > 1 else {})},
        )
        sigma = noise_multiplier * math.sqrt(k) * self.contribution
        out = []
        for c in cliques:
            exact = self.answer(c)
            noise = gaussian_noise(exact.shape, std=sigma, rng=self.rng, secure=self.secure)
            out.append(Measurement(c, exact + noise, sigma))
        return out

    def select(self, scores: np.ndarray, *, epsilon: float, sensitivity: float, purpose: str) -> int:
        """Exponential mechanism over ``scores`` (computed from the private data); argmax when non-private."""
        scores = np.asarray(scores, dtype=float)
        if self.non_private:
            self._charge_non_private("exact marginals and selections (non-private reference)")
            return int(np.argmax(scores))
        sensitivity = sensitivity * self.contribution  # one unit moves up to k rows of every score
        self.ledger.record_zcdp(
            purpose=purpose, rho=epsilon**2 / 8.0,
            params={"mechanism": "exponential", "epsilon": epsilon, "sensitivity": sensitivity, "candidates": len(scores)},
        )
        logits = epsilon / (2.0 * sensitivity) * (scores - scores.max())
        return int(np.argmax(logits + self.rng.gumbel(size=len(scores))))
