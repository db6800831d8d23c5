"""The YAML form of a federated run; unknown keys are rejected. Paths are relative to the
working directory. Example (configs/federated_uci_heart.yaml)::

    sites: {cleveland: cleveland.csv, hungary: hungary.csv}   # or a list of paths (names = file stems)
    schema: evaluation/schemas/uci_heart_disease.yaml
    generator: dp-gan
    rounds: 5
    seed: 0
    threads: 1
    privacy: {epsilon: 3.0, delta: null, accountant: rdp, preprocessing_share: 0.05, secure_mode: false}
    params: {epochs: 50, batch_size: 64}
    site_level_dp: {epsilon: 10.0, delta: null, clip_norm: 1.0, secure_aggregation: true}   # optional
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dpsynth.config import PrivacyConfig, read_yaml_file
from dpsynth.errors import ConfigError

_TOP = {"sites", "schema", "generator", "rounds", "seed", "threads", "privacy", "params", "site_level_dp",
        "description"}
_PRIVACY = {"epsilon", "delta", "accountant", "preprocessing_share", "secure_mode"}
_SITE_LEVEL = {"epsilon", "delta", "clip_norm", "secure_aggregation"}


@dataclass(frozen=True)
class SiteLevelDP:
    """Flower's central DP over whole sites: a second, separate guarantee."""

    epsilon: float
    delta: float | None = None
    clip_norm: float = 1.0
    secure_aggregation: bool = True

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"site-level epsilon must be > 0, got {self.epsilon}")
        if not self.clip_norm > 0:
            raise ConfigError(f"site-level clip_norm must be > 0, got {self.clip_norm}")


@dataclass(frozen=True)
class FederatedConfig:
    sites: tuple[tuple[str, str], ...] = ()
    schema: str | None = None
    generator: str = "dp-gan"
    rounds: int = 3
    seed: int = 0
    threads: int = 1
    privacy: PrivacyConfig = PrivacyConfig()
    params: dict | None = None
    site_level_dp: SiteLevelDP | None = None
    description: str = ""

    def with_overrides(self, **overrides: Any) -> "FederatedConfig":
        """CLI values override the file; None means unset."""
        top, priv = {}, {}
        for key, value in overrides.items():
            if value is None or value == ():
                continue
            if key in _PRIVACY:
                priv[key] = value
            elif key == "sites":
                top[key] = sites_from(list(value))
            elif key in ("schema", "generator", "rounds", "seed", "threads", "site_level_dp"):
                top[key] = value
            else:
                raise ConfigError(f"unknown override '{key}'")
        cfg = replace(self, **top)
        if "generator" in top and top["generator"] != self.generator:
            cfg = replace(cfg, params=None)  # params of another generator do not carry over
        return replace(cfg, privacy=replace(cfg.privacy, **priv))

    def to_dict(self) -> dict:
        out = {"sites": {name: path for name, path in self.sites}, "schema": self.schema, "generator": self.generator,
               "rounds": self.rounds, "seed": self.seed, "threads": self.threads, "privacy": dict(vars(self.privacy)),
               "params": dict(self.params or {})}
        if self.site_level_dp is not None:
            out["site_level_dp"] = dict(vars(self.site_level_dp))
        if self.description:
            out["description"] = self.description
        return out


def sites_from(raw: Any) -> tuple[tuple[str, str], ...]:
    """(name, path) pairs from a list of paths (name = file stem) or a {name: path} mapping."""
    if isinstance(raw, dict):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    elif isinstance(raw, (list, tuple)):
        pairs = [(Path(str(p)).stem, str(p)) for p in raw]
    else:
        raise ConfigError("sites: expected a list of files or a mapping {name: file}")
    names = [n for n, _ in pairs]
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
    if bad:
        raise ConfigError(f"sites: site name(s) {bad} must be letters, digits, '_', '.' or '-'")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"sites: duplicate site name(s) {dupes}; give them as a mapping {{name: file}}")
    return tuple(pairs)


def _check(raw: dict, allowed: set, where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def federated_config_from_dict(raw: dict, *, source: str = "federated config") -> FederatedConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    _check(raw, _TOP, source)
    priv = raw.get("privacy") or {}
    site_level = raw.get("site_level_dp")
    params = raw.get("params") or {}
    if not isinstance(priv, dict) or not isinstance(params, dict) or not isinstance(site_level, (dict, type(None))):
        raise ConfigError(f"{source}: 'privacy', 'params' and 'site_level_dp' must be mappings")
    _check(priv, _PRIVACY, f"{source}: privacy")
    if site_level is not None:
        _check(site_level, _SITE_LEVEL, f"{source}: site_level_dp")
    try:
        return FederatedConfig(
            sites=sites_from(raw["sites"]) if "sites" in raw else (),
            schema=None if raw.get("schema") is None else str(raw["schema"]),
            generator=str(raw.get("generator", "dp-gan")),
            rounds=int(raw.get("rounds", 3)),
            seed=int(raw.get("seed", 0)),
            threads=int(raw.get("threads", 1)),
            privacy=PrivacyConfig(**priv),
            params=params,
            site_level_dp=None if site_level is None else SiteLevelDP(**site_level),
            description=str(raw.get("description", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_federated_config(path: str | Path) -> FederatedConfig:
    return federated_config_from_dict(read_yaml_file(path, what="federated config"), source=str(path))
