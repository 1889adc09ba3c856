"""Fixtures shared by the reliability suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where a test's processes run and keep their output."""
    return tmp_path / "procs"
