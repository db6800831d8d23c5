"""The privacy ledger: one entry per access to real data, composed into the reported epsilon.

Every statistic (a count, a bound, a category list), every DP-SGD step and every selection
among candidates appends or extends an entry. ``epsilon()`` composes all entries with the
budget's accountant; it is the only epsilon dpsynth reports. The ledger is saved as JSON
beside the weights and printed in every report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from dpsynth.errors import PrivacyError
from dpsynth.privacy.accountants import compose


@dataclass
class LedgerEntry:
    """One privacy expense.

    mechanism: 'gaussian' (noise_multiplier = sigma / L2 sensitivity, sample_rate 1),
    'dp-sgd' (subsampled Gaussian, ``steps`` grows as training runs), or 'zcdp' (a rho-zCDP
    bound, e.g. the exponential mechanism), or 'non-private' (epsilon = inf).
    """

    mechanism: str
    purpose: str
    noise_multiplier: float | None = None
    sample_rate: float = 1.0
    steps: int = 1
    rho: float = 0.0
    params: dict = field(default_factory=dict)

    def gaussian_triple(self) -> tuple[float, float, int] | None:
        if self.mechanism in ("gaussian", "dp-sgd") and self.steps > 0:
            return (float(self.noise_multiplier), float(self.sample_rate), int(self.steps))
        return None

    def to_dict(self) -> dict:
        out = {"mechanism": self.mechanism, "purpose": self.purpose}
        if self.noise_multiplier is not None:
            out["noise_multiplier"] = self.noise_multiplier
            out["sample_rate"] = self.sample_rate
            out["steps"] = self.steps
        if self.mechanism == "zcdp":
            out["rho"] = self.rho
        if self.params:
            out["params"] = self.params
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "LedgerEntry":
        return cls(
            mechanism=raw["mechanism"],
            purpose=raw["purpose"],
            noise_multiplier=raw.get("noise_multiplier"),
            sample_rate=raw.get("sample_rate", 1.0),
            steps=raw.get("steps", 1),
            rho=raw.get("rho", 0.0),
            params=raw.get("params", {}),
        )


class Ledger:
    """All privacy expenses of one run, with the (delta, accountant) they are composed under."""

    def __init__(self, *, delta: float, accountant: str = "rdp", target_epsilon: float | None = None) -> None:
        self.delta = delta
        self.accountant = accountant
        self.target_epsilon = target_epsilon
        self.entries: list[LedgerEntry] = []

    # ---- recording ----------------------------------------------------------------------
    def record_gaussian(self, *, purpose: str, noise_multiplier: float, params: dict | None = None,
                        delta_spent: float = 0.0) -> LedgerEntry:
        """A Gaussian release. ``delta_spent`` is an additive delta the release costs on top of its
        RDP curve (e.g. thresholded release of data-dependent keys); it is taken out of the delta
        the accountant converts at."""
        params = dict(params or {})
        if delta_spent:
            params["delta_spent"] = float(delta_spent)
        entry = LedgerEntry("gaussian", purpose, noise_multiplier=float(noise_multiplier), params=params)
        return self._append(entry)

    def record_zcdp(self, *, purpose: str, rho: float, params: dict | None = None) -> LedgerEntry:
        return self._append(LedgerEntry("zcdp", purpose, rho=float(rho), params=params or {}))

    def open_dp_sgd(self, *, purpose: str, noise_multiplier: float, sample_rate: float, params: dict | None = None) -> LedgerEntry:
        """An entry whose ``steps`` starts at 0 and is advanced by :meth:`record_step`."""
        entry = LedgerEntry(
            "dp-sgd", purpose, noise_multiplier=float(noise_multiplier), sample_rate=float(sample_rate), steps=0,
            params=params or {},
        )
        self.entries.append(entry)
        return entry

    def record_step(self, entry: LedgerEntry) -> None:
        entry.steps += 1

    def record_non_private(self, *, purpose: str) -> LedgerEntry:
        entry = LedgerEntry("non-private", purpose)
        self.entries.append(entry)
        return entry

    def _append(self, entry: LedgerEntry) -> LedgerEntry:
        self.entries.append(entry)
        if self.target_epsilon is not None and self.epsilon() > self.target_epsilon * (1 + 1e-9):
            self.entries.pop()
            raise PrivacyError(
                f"'{entry.purpose}' would cross the target epsilon={self.target_epsilon:g}; nothing was released"
            )
        return entry

    # ---- composition --------------------------------------------------------------------
    @property
    def non_private(self) -> bool:
        return any(e.mechanism == "non-private" for e in self.entries)

    def gaussian_history(self) -> list[tuple[float, float, int]]:
        return [t for t in (e.gaussian_triple() for e in self.entries) if t is not None]

    def rho(self) -> float:
        return sum(e.rho for e in self.entries if e.mechanism == "zcdp")

    def delta_spent(self) -> float:
        return sum(e.params.get("delta_spent", 0.0) for e in self.entries)

    def accountant_delta(self) -> float:
        """The delta left for converting the composed RDP/PRV curve: delta minus additive spends."""
        left = self.delta - self.delta_spent()
        if left <= 0:
            raise PrivacyError(f"additive delta spends ({self.delta_spent():g}) exhaust delta={self.delta:g}")
        return left

    def epsilon(self, *, extra: tuple[float, float, int] | None = None) -> float:
        """The composed epsilon of every entry (plus an optional hypothetical extra triple)."""
        if self.non_private:
            return math.inf
        history = self.gaussian_history() + ([extra] if extra else [])
        return compose(history, zcdp_rho=self.rho(), delta=self.accountant_delta(), accountant=self.accountant)

    def preprocessing_epsilon(self) -> float:
        """Epsilon of everything that is not a DP-SGD run (bounds, counts, selections)."""
        if self.non_private:
            return math.inf
        history = [e.gaussian_triple() for e in self.entries if e.mechanism == "gaussian"]
        return compose(history, zcdp_rho=self.rho(), delta=self.accountant_delta(), accountant=self.accountant)

    # ---- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict:
        eps = self.epsilon()
        return {
            "accountant": self.accountant,
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "epsilon": "inf" if math.isinf(eps) else eps,
            "preprocessing_epsilon": "inf" if self.non_private else self.preprocessing_epsilon(),
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "Ledger":
        ledger = cls(delta=raw["delta"], accountant=raw["accountant"], target_epsilon=raw.get("target_epsilon"))
        ledger.entries = [LedgerEntry.from_dict(e) for e in raw["entries"]]
        return ledger

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Ledger":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        eps = self.epsilon()
        eps_text = "inf (NON-PRIVATE reference)" if math.isinf(eps) else f"{eps:.4f}"
        lines = [f"epsilon={eps_text}  delta={self.delta:.3g}  accountant={self.accountant}"]
        for e in self.entries:
            if e.mechanism in ("gaussian", "dp-sgd"):
                lines.append(
                    f"  - {e.purpose}: {e.mechanism} sigma={e.noise_multiplier:.4g} q={e.sample_rate:.4g} steps={e.steps}"
                )
            elif e.mechanism == "zcdp":
                lines.append(f"  - {e.purpose}: zCDP rho={e.rho:.4g}")
            else:
                lines.append(f"  - {e.purpose}: {e.mechanism}")
        return "\n".join(lines)
