"""Test-wide settings: Hypothesis profiles and the location of the vectors."""

from __future__ import annotations

import os
from pathlib import Path

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
