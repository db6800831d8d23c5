"""A privacy budget: target (epsilon, delta), the accountant that composes spends, and the rules
that refuse unsafe requests (epsilon <= 0, delta >= 1/n)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dpsynth.errors import PrivacyError

ACCOUNTANTS = ("rdp", "prv")


def default_delta(n: int) -> float:
    """Well under 1/n: min(1e-5, 1 / (10 n))."""
    return min(1e-5, 1.0 / (10 * n))


@dataclass(frozen=True)
class Budget:
    """Target privacy budget for one run.

    ``preprocessing_share`` is the fraction of the budget (in zCDP rho, which composes
    additively) reserved for preprocessing statistics such as DP category counts or DP bounds.
    ``non_private=True`` is the explicit, separately named epsilon=infinity reference; it is
    never produced by a finite epsilon.
    """

    epsilon: float
    delta: float | None = None
    accountant: str = "rdp"
    preprocessing_share: float = 0.05
    secure_mode: bool = False
    non_private: bool = False

    def __post_init__(self) -> None:
        if self.accountant not in ACCOUNTANTS:
            raise PrivacyError(f"accountant '{self.accountant}' is not one of {', '.join(ACCOUNTANTS)}")
        if self.non_private:
            if not math.isinf(self.epsilon):
                raise PrivacyError("a non-private budget has epsilon=inf")
            return
        if not isinstance(self.epsilon, (int, float)) or math.isnan(self.epsilon) or self.epsilon <= 0:
            raise PrivacyError(f"epsilon must be > 0, got {self.epsilon}")
        if math.isinf(self.epsilon):
            raise PrivacyError("epsilon=inf is the non-private reference: ask for it with Budget.non_private_reference()")
        if self.delta is not None and not (0 < self.delta < 1):
            raise PrivacyError(f"delta must be in (0, 1), got {self.delta}")
        if not (0 < self.preprocessing_share < 1):
            raise PrivacyError(f"preprocessing_share must be in (0, 1), got {self.preprocessing_share}")

    @classmethod
    def non_private_reference(cls) -> "Budget":
        return cls(epsilon=math.inf, non_private=True)

    def resolve_delta(self, n: int) -> float:
        """The delta for a dataset of n rows: the default when unset; refused at 1/n or above."""
        if n <= 0:
            raise PrivacyError(f"cannot train on {n} rows")
        delta = default_delta(n) if self.delta is None else self.delta
        if not self.non_private and delta >= 1.0 / n:
            raise PrivacyError(f"delta={delta:g} is >= 1/n = {1.0 / n:g} for n={n} rows; use delta well below 1/n")
        return delta

    def to_dict(self) -> dict:
        return {
            "epsilon": "inf" if self.non_private else self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "preprocessing_share": self.preprocessing_share,
            "secure_mode": self.secure_mode,
            "non_private": self.non_private,
        }


def zcdp_rho_for(epsilon: float, delta: float) -> float:
    """The rho-zCDP whose standard conversion gives (epsilon, delta): eps = rho + 2 sqrt(rho ln 1/delta).

    Used only to *split* a budget between mechanisms; the reported epsilon always comes from
    the accountant over the ledger.
    """
    log_term = math.log(1.0 / delta)
    root = -math.sqrt(log_term) + math.sqrt(log_term + epsilon)
    return root * root
