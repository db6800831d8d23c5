"""Run configuration: frozen dataclasses read from YAML; unknown keys are rejected.

A config file looks like::

    generator: dp-gan
    seed: 0
    privacy: {epsilon: 1.0, delta: null, accountant: rdp, preprocessing_share: 0.05, secure_mode: false}
    split: {seed: 0, holdout: 0.2, test: 0.2}
    params: {epochs: 100, batch_size: 128}      # the generator's keyword-only hyper-parameters
    threads: 1

Command-line options override file values. The resolved config is dumped next to the weights.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dpsynth.data.splits import SplitSpec
from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import Budget

_TOP_KEYS = {"generator", "seed", "privacy", "split", "params", "threads", "description"}
_PRIVACY_KEYS = {"epsilon", "delta", "accountant", "preprocessing_share", "secure_mode"}
_SPLIT_KEYS = {"seed", "holdout", "test"}


@dataclass(frozen=True)
class PrivacyConfig:
    epsilon: float = 1.0
    delta: float | None = None
    accountant: str = "rdp"
    preprocessing_share: float = 0.05
    secure_mode: bool = False

    def budget(self) -> Budget:
        return Budget(epsilon=self.epsilon, delta=self.delta, accountant=self.accountant,
                      preprocessing_share=self.preprocessing_share, secure_mode=self.secure_mode)


@dataclass(frozen=True)
class RunConfig:
    generator: str = "dp-gan"
    seed: int = 0
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    split: SplitSpec = field(default_factory=SplitSpec)
    params: dict = field(default_factory=dict)
    threads: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        for key, value, low in (("seed", self.seed, 0), ("split.seed", self.split.seed, 0), ("threads", self.threads, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"'{key}' must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict:
        return {
            "generator": self.generator,
            "seed": self.seed,
            "privacy": dict(vars(self.privacy)),
            "split": self.split.to_dict(),
            "params": dict(self.params),
            "threads": self.threads,
            **({"description": self.description} if self.description else {}),
        }

    def with_overrides(self, **overrides: Any) -> "RunConfig":
        """Apply CLI overrides; keys are top-level fields or privacy fields; None means unset."""
        top, priv = {}, {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key in _PRIVACY_KEYS:
                priv[key] = value
            elif key in ("generator", "seed", "threads"):
                top[key] = value
            elif key == "split_seed":
                top["split"] = replace(top.get("split", self.split), seed=int(value))
            else:
                raise ConfigError(f"unknown override '{key}'")
        cfg = replace(self, **top)
        if "generator" in top and top["generator"] != self.generator:
            cfg = replace(cfg, params={})  # params of another generator do not carry over
        return replace(cfg, privacy=replace(cfg.privacy, **priv))


def _check_keys(raw: dict, allowed: set, where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def config_from_dict(raw: dict, *, source: str = "config") -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    _check_keys(raw, _TOP_KEYS, source)
    priv = raw.get("privacy") or {}
    split = raw.get("split") or {}
    if not isinstance(priv, dict) or not isinstance(split, dict):
        raise ConfigError(f"{source}: 'privacy' and 'split' must be mappings")
    _check_keys(priv, _PRIVACY_KEYS, f"{source}: privacy")
    _check_keys(split, _SPLIT_KEYS, f"{source}: split")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: 'params' must be a mapping")
    try:
        return RunConfig(
            generator=str(raw.get("generator", "dp-gan")),
            seed=int(raw.get("seed", 0)),
            privacy=PrivacyConfig(**priv),
            split=SplitSpec(**split),
            params=params,
            threads=int(raw.get("threads", 1)),
            description=str(raw.get("description", "")),
        )
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def read_yaml_file(path: str | Path, *, what: str = "config file") -> dict:
    """A YAML mapping from ``path`` ({} when empty); one-line ConfigError when missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return raw or {}


def load_config(path: str | Path) -> RunConfig:
    return config_from_dict(read_yaml_file(path), source=str(path))


def build_generator(name: str, params: dict):
    """Instantiate a registered generator; unknown hyper-parameters are a one-line ConfigError."""
    from dpsynth.generators.registry import get_generator_class

    cls = get_generator_class(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise ConfigError(f"generator '{name}': unknown parameter(s) {sorted(unknown)}; accepted: {sorted(accepted)}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"generator '{name}': {exc}") from None
