"""The generator registry: a dict and a decorator. Modules register themselves when
``dpsynth.generators`` imports them explicitly (no discovery by globbing)."""

from __future__ import annotations

from typing import Callable, TypeVar

from dpsynth.errors import DpsynthError

REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        if name in REGISTRY:
            raise ValueError(f"generator '{name}' registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorate


def get_generator_class(name: str) -> type:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DpsynthError(f"unknown generator '{name}' (available: {', '.join(sorted(REGISTRY))})") from None
