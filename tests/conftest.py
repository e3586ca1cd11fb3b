"""Test-wide settings: Hypothesis profiles and the location of the vectors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The vectors the tests check against, in the repository: a checkout with nothing beside it
#: runs every test. `walrus-rs2-vectors.json` is the official Walrus encoder's output.
VECTORS_DIR = REPO_ROOT / "tests" / "vectors"

# Crypto and encoding are milliseconds per example: no per-example deadline on a noisy machine.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=50
)
settings.register_profile(
    "thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=500
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog unconfigured: a command run in process configures it
    for the whole process (`walruspy.cli.output.quiet_library_logs`), which would otherwise
    decide what a later test's `capture_logs` sees."""
    yield
    structlog.reset_defaults()
