"""The sweep config (YAML; unknown keys are rejected): data, epsilons x seeds, generators, and what
each cell evaluates; see :mod:`dpsynth.workflows.sweep` for its format and the runner."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from dpsynth.config import RunConfig, build_generator, config_from_dict
from dpsynth.data.splits import SplitSpec
from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import Budget

DEFAULT_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
_TOP_KEYS = {"description", "data", "schema", "epsilons", "seeds", "privacy", "split", "threads", "n_synthetic",
             "rebalance", "audit", "evaluation", "generators", "out"}
_GEN_KEYS = {"name", "label", "params"}
_AUDIT_KEYS = {"canaries", "method", "confidence"}
_PRIVACY_KEYS = {"delta", "accountant", "preprocessing_share", "secure_mode"}


@dataclass(frozen=True)
class SweepGenerator:
    label: str
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepConfig:
    data: str
    generators: tuple[SweepGenerator, ...]
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    seeds: tuple[int, ...] = (0,)
    schema: str | None = None
    privacy: dict = field(default_factory=dict)
    split: SplitSpec = field(default_factory=SplitSpec)
    threads: int = 1
    n_synthetic: int | None = None
    rebalance: tuple[str, ...] = ()
    audit: dict | None = None
    evaluation: dict = field(default_factory=dict)
    description: str = ""
    out: str | None = None
    name: str = "sweep"

    def run_config(self, gen: SweepGenerator, epsilon: float, seed: int) -> RunConfig:
        privacy = {**self.privacy, "epsilon": epsilon}
        return config_from_dict({"generator": gen.name, "seed": seed, "privacy": privacy, "split": self.split.to_dict(),
                                 "params": gen.params, "threads": self.threads}, source="sweep cell")

    def budget(self, epsilon: float) -> Budget:
        if math.isinf(epsilon):
            return Budget.non_private_reference()
        return self.run_config(self.generators[0], epsilon, 0).privacy.budget()

    def fingerprint(self, gen: SweepGenerator, epsilon: float, seed: int) -> str:
        """What makes a cell the same cell: a rerun with other settings must not reuse it."""
        payload = {"data": self.data, "schema": self.schema, "generator": gen.name, "params": gen.params,
                   "epsilon": _eps_text(epsilon), "seed": seed, "privacy": self.privacy, "split": self.split.to_dict(),
                   "n_synthetic": self.n_synthetic, "rebalance": list(self.rebalance), "audit": self.audit,
                   "evaluation": self.evaluation}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"description": self.description, "data": self.data, "schema": self.schema,
                "epsilons": [_eps_text(e) for e in self.epsilons], "seeds": list(self.seeds), "privacy": self.privacy,
                "split": self.split.to_dict(), "threads": self.threads, "n_synthetic": self.n_synthetic,
                "rebalance": list(self.rebalance) or None, "audit": self.audit, "evaluation": self.evaluation,
                "generators": [{"name": g.name, "label": g.label, "params": g.params} for g in self.generators]}


def _eps_text(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:g}"


def _parse_epsilon(value, source: str) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity", "non-private"):
        return math.inf
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: epsilon {value!r} is not a number or 'inf'") from None
    if not eps > 0:
        raise ConfigError(f"{source}: epsilon must be > 0 (or 'inf' for the non-private reference), got {value}")
    return eps


def sweep_config_from_dict(raw: dict, *, source: str = "sweep config", name: str = "sweep") -> SweepConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if not raw.get("data"):
        raise ConfigError(f"{source}: 'data' (embedded name or file) is required")
    gens_raw = raw.get("generators")
    if not isinstance(gens_raw, list) or not gens_raw:
        raise ConfigError(f"{source}: 'generators' must be a non-empty list")
    gens = []
    for i, g in enumerate(gens_raw):
        g = {"name": g} if isinstance(g, str) else g
        if not isinstance(g, dict) or "name" not in g:
            raise ConfigError(f"{source}: generator #{i} needs a 'name'")
        bad = set(g) - _GEN_KEYS
        if bad:
            raise ConfigError(f"{source}: generator #{i}: unknown key(s) {sorted(bad)}; allowed: {sorted(_GEN_KEYS)}")
        params = g.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: generator #{i}: 'params' must be a mapping")
        build_generator(str(g["name"]), params)  # unknown generator / parameter: fail before any work
        label = str(g.get("label") or g["name"])
        if "/" in label or label.startswith("."):
            raise ConfigError(f"{source}: generator label '{label}' must not contain '/' or start with '.'")
        gens.append(SweepGenerator(label=label, name=str(g["name"]), params=params))
    labels = [g.label for g in gens]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: generator labels must be unique (give 'label:' to repeated generators), "
                          f"got {labels}")
    eps_raw = raw.get("epsilons", [_eps_text(e) for e in DEFAULT_EPSILONS])
    if not isinstance(eps_raw, list) or not eps_raw:
        raise ConfigError(f"{source}: 'epsilons' must be a non-empty list")
    epsilons = tuple(sorted({_parse_epsilon(e, source) for e in eps_raw}))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{source}: 'seeds' must be a non-empty list of integers")
    privacy = raw.get("privacy") or {}
    if not isinstance(privacy, dict) or set(privacy) - _PRIVACY_KEYS:
        raise ConfigError(f"{source}: 'privacy' takes {sorted(_PRIVACY_KEYS)} (epsilon comes from 'epsilons')")
    split = raw.get("split") or {}
    audit = raw.get("audit")
    if audit is not None and (not isinstance(audit, dict) or set(audit) - _AUDIT_KEYS):
        raise ConfigError(f"{source}: 'audit' must be a mapping with keys from {sorted(_AUDIT_KEYS)}")
    rebalance = raw.get("rebalance") or ()
    if isinstance(rebalance, str):
        rebalance = [c.strip() for c in rebalance.split(",") if c.strip()]
    evaluation = raw.get("evaluation") or {}
    if not isinstance(evaluation, dict):
        raise ConfigError(f"{source}: 'evaluation' must be a mapping of evaluation config sections")
    from dpsynth.metrics.suite import merge_config

    merge_config(evaluation)  # unknown sections / keys: fail before any work
    try:
        config = SweepConfig(
            data=str(raw["data"]), generators=tuple(gens), epsilons=epsilons, seeds=tuple(seeds),
            schema=raw.get("schema"), privacy=dict(privacy), split=SplitSpec(**split),
            threads=int(raw.get("threads", 1)), n_synthetic=raw.get("n_synthetic"), rebalance=tuple(rebalance),
            audit=dict(audit) if audit is not None else None, evaluation=evaluation,
            description=str(raw.get("description", "")), out=raw.get("out"), name=name)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for eps in epsilons:  # refuse a bad delta / accountant before any work
        if not math.isinf(eps):
            config.budget(eps)
    return config


def load_sweep_config(path: str | Path) -> SweepConfig:
    from dpsynth.config import read_yaml_file

    path = Path(path)
    return sweep_config_from_dict(read_yaml_file(path, what="sweep config"), source=str(path), name=path.stem)
