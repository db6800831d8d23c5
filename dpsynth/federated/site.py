"""One site's side of a federated round: its own ledger, its DP-SGD plan, its local steps.

Accounting (sample-level; the privacy unit is the site's patient/row):

- In round 1 the site makes its one-off DP releases (charged to its ledger), then fixes the plan
  for ALL rounds: total steps T = R x K (K = ceil(generator's planned steps / R)), sampling rate
  q = 1 / ceil(n / batch), and ONE noise multiplier calibrated so that the ledger after T steps
  (with the releases) is at most the target epsilon.
- The ledger is never reset: it travels between rounds in the site's persistent state (Flower's
  ``Context.state``), and its single DP-SGD entry keeps counting steps across rounds. Each round
  the engine may take K more steps and refuses any step that would cross the target. (opacus'
  own PrivacyEngine object is rebuilt each round because a simulated site may run in another
  process; it only wires clipping and noise, it is not what is reported. Flower's opacus
  example instead *reports* a fresh accountant per round, which under-reports epsilon.)
- FedAvg of the sites' weights is post-processing; the released epsilon is the maximum over the
  sites' ledgers. A patient who attends two sites is in two ledgers: whether that happens is the
  user's declaration, not something dpsynth can check.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dpsynth.errors import DataError, PrivacyError
from dpsynth.federated.models import FederatedModel, federated_model, steps_per_round
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.engine import DPSGDEngine, DPSGDPlan, plan_dp_sgd
from dpsynth.privacy.ledger import Ledger, LedgerEntry


@dataclass(frozen=True)
class FederatedJob:
    """What every site is told (no rows): the generator, the public schema file, the budget,
    the number of rounds, the seed. Plain values only, so it travels to simulated sites."""

    generator: str
    params: dict
    schema_path: str
    rounds: int
    epsilon: float
    delta: float | None = None
    accountant: str = "rdp"
    preprocessing_share: float = 0.05
    secure_mode: bool = False
    seed: int = 0
    threads: int = 1
    sites: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (name, path)

    def budget(self) -> Budget:
        return Budget(epsilon=self.epsilon, delta=self.delta, accountant=self.accountant,
                      preprocessing_share=self.preprocessing_share, secure_mode=self.secure_mode)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["sites"] = [list(s) for s in self.sites]
        return out


def load_schema(path: str | Path):
    from dpsynth.data.image_schema import load_any_schema

    return load_any_schema(path)


def load_site_data(path: str | Path, schema):
    """The site's own rows (all of them are its training rows), checked against the public schema."""
    from dpsynth.data.image_schema import ImageSchema

    path = Path(path)
    if not path.is_file():
        raise DataError(f"site data file not found: {path}")
    if isinstance(schema, ImageSchema):
        from dpsynth.data.images import load_image_source

        return load_image_source(path, schema=schema, split="train")
    from dpsynth.data.loaders import read_table
    from dpsynth.data.table import TableData

    return TableData(schema.prepare(read_table(path), source=str(path)), schema)


def _dp_sgd_entry(ledger: Ledger) -> LedgerEntry | None:
    found = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
    return found[0] if found else None


class RoundEngine(DPSGDEngine):
    """The dpsynth DP-SGD engine for one round, continuing the site's single ledger entry."""

    def __init__(self, *, ledger: Ledger, plan: DPSGDPlan, steps_this_round: int, purpose: str,
                 secure_mode: bool, site: str, rounds: int) -> None:
        self.previous = _dp_sgd_entry(ledger)
        self.total_plan = plan
        done = 0 if self.previous is None else self.previous.steps
        # the engine stops after this round's steps; the noise multiplier is the one fixed for all rounds
        super().__init__(ledger=ledger, plan=replace(plan, steps=done + steps_this_round), purpose=purpose,
                         secure_mode=secure_mode)
        self.site = site
        self.rounds = rounds
        self.steps_this_round = steps_this_round

    def make_private(self, **kwargs):
        out = super().make_private(**kwargs)
        fresh = self.entry
        if self.previous is None:
            fresh.params.update({"planned_steps": self.total_plan.steps, "rounds": self.rounds,
                                 "steps_per_round": self.steps_this_round, "site": self.site,
                                 "accounting": "one entry for every local step of every round (never reset)"})
            return out
        if (fresh.noise_multiplier, fresh.sample_rate) != (self.previous.noise_multiplier, self.previous.sample_rate):
            raise PrivacyError(f"site {self.site}: DP-SGD plan changed between rounds")
        self.ledger.entries = [e for e in self.ledger.entries if e is not fresh]
        self.entry = self.previous  # keep counting in the site's one DP-SGD entry
        return out


@dataclass
class RoundResult:
    arrays: list[np.ndarray]
    state: dict
    metrics: dict


def run_site_round(*, job: FederatedJob, site_index: int, arrays: list[np.ndarray], server_round: int,
                   state: dict | None) -> RoundResult:
    """Site ``site_index`` trains from the global ``arrays`` for its steps of ``server_round``.

    ``state`` is what this site kept from its previous rounds (None in round 1): its ledger, its
    plan and its one-off releases. Returns the new weights, the new state and the metrics the
    site reports (its ledger and releases: DP outputs and its row count, treated as public)."""
    start = time.perf_counter()
    name, path = job.sites[site_index]
    schema = load_schema(job.schema_path)
    model: FederatedModel = federated_model(job.generator, job.params, schema)
    data = load_site_data(path, schema)
    n = len(data)
    budget = job.budget()
    rng = np.random.default_rng([job.seed, site_index, server_round])
    if state is None:
        ledger = Ledger(delta=budget.resolve_delta(n), accountant=budget.accountant, target_epsilon=budget.epsilon)
        released = model.preprocess(data, budget=budget, ledger=ledger, rng=rng)
        k = steps_per_round(model.plan_steps(n), job.rounds)
        plan = plan_dp_sgd(ledger=ledger, n=n, batch_size=model.batch_size, steps=k * job.rounds,
                           max_grad_norm=model.max_grad_norm)
        state = {"site": name, "n": n, "steps_per_round": k, "plan": plan.to_dict(), "released": released}
    else:
        ledger = Ledger.from_dict(state["ledger"])
        plan = DPSGDPlan(**state["plan"])
    engine = RoundEngine(ledger=ledger, plan=plan, steps_this_round=int(state["steps_per_round"]),
                         purpose=f"{model.name} DP-SGD at site {name}", secure_mode=budget.secure_mode, site=name,
                         rounds=job.rounds)
    new_state = model.local_round(model.from_arrays(arrays), data, released=state["released"], engine=engine, rng=rng)
    if ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"site {name}: spent epsilon {ledger.epsilon():.4f} exceeds the target {budget.epsilon}")
    state = {**state, "ledger": ledger.to_dict()}
    metrics = {"site": name, "n": n, "round": server_round, "epsilon": float(ledger.epsilon()),
               "steps": int(_dp_sgd_entry(ledger).steps), "ledger": json.dumps(ledger.to_dict()),
               "released": json.dumps(state["released"]),
               "seconds": round(time.perf_counter() - start, 3)}
    return RoundResult(arrays=model.to_arrays(new_state), state=state, metrics=metrics)


def check_sites(sites, schema, budget: Budget) -> dict[str, int]:
    """The site-side check every site runs on its own file before round 1 (here, in the
    one-machine simulation, run by the driver): the schema check and delta < 1/n. Returns each
    site's row count."""
    rows = {}
    for name, path in sites:
        data = load_site_data(path, schema)
        try:
            budget.resolve_delta(len(data))
        except PrivacyError as exc:
            raise PrivacyError(f"site {name} ({path}): {exc}") from None
        rows[name] = len(data)
    return rows
