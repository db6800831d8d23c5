"""Fixtures of tiny related tables (see tiny_relational.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_relational import make_tiny


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    """(data folder, relational schema path) of 40 tiny patients."""
    schema = make_tiny(tmp_path / "data")
    return tmp_path / "data", schema
