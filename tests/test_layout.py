"""The dependency rule of STYLE.md: who may import whom inside walruspy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "walruspy"

#: package -> the walruspy packages it may import (besides itself).
ALLOWED = {
    "core": set(),
    "logs": set(),
    # The one clock (wall and monotonic time, blocking work) and the fail points: leaves.
    "clock": set(),
    "failpoints": set(),
    # The one retry policy (doubling pauses, capped): a leaf, used wherever a loop retries.
    "backoff": set(),
    # Awaiting several things at once (concurrent reads, a task group's first error): a leaf.
    "tasks": set(),
    "chain": {"core", "logs", "clock", "backoff", "tasks"},
    "node_api": {"core", "logs", "clock", "backoff", "tasks"},
    "client": {"core", "chain", "node_api", "workers", "logs", "clock", "backoff", "tasks"},
    "node": {
        "core",
        "chain",
        "node_api",
        "workers",
        "logs",
        "clock",
        "failpoints",
        "backoff",
        "tasks",
    },
    "daemon": {"client", "core", "chain", "node_api", "workers", "logs", "clock", "backoff"},
    # The simulator runs the whole network in one process, as the devnet does in many (its
    # network, sim.network and sim.transport, knows aiohttp only; the simulator wires walruspy's
    # parts over it, reusing the devnet's registration and staking).
    "sim": {
        "devnet",
        "clock",
        "failpoints",
        "backoff",
        "core",
        "chain",
        "node_api",
        "client",
        "node",
        "daemon",
        "workers",
        "logs",
    },
    "cli": {
        "client",
        "core",
        "chain",
        "node_api",
        "workers",
        "daemon",
        "node",
        "devnet",
        "demo",
        "logs",
        "clock",
        "failpoints",
        "backoff",
        "tasks",
    },
    "devnet": {
        "core",
        "chain",
        "node_api",
        "client",
        "node",
        "daemon",
        "workers",
        "logs",
        "clock",
        "failpoints",
        "backoff",
    },
    "workers": {"core"},
    "demo": {"core", "workers", "client", "devnet", "chain", "logs"},
}


def _walruspy_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "walruspy" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_dependency_rule(path: Path) -> None:
    relative = path.relative_to(SRC)
    package = relative.parts[0].removesuffix(".py")
    if package == "__init__" or package == "__main__":
        return
    assert package in ALLOWED, f"new top-level module {package}: add it to the dependency rule"
    imported = _walruspy_imports(path) - {package}
    forbidden = imported - ALLOWED[package]
    assert not forbidden, f"walruspy.{package} may not import {sorted(forbidden)} ({relative})"
