"""Test-wide settings: Hypothesis profiles and the location of the shared vectors."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shared vectors live beside the checkout (CI copies shared/ there too).
SHARED_DIR = Path(os.environ.get("WALRUSPY_SHARED_DIR", REPO_ROOT.parent / "shared"))

# Crypto and encoding are milliseconds per example: no per-example deadline on a noisy machine.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=50
)
settings.register_profile(
    "thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=500
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
