"""The README's quick start, run as written: its shell blocks in bash, its Python block saved as
`example.py`, in a fresh directory that holds what a checkout's root holds for them (the
Makefile, pyproject.toml and the virtual environment these tests run in, linked).

The blocks are read from the README's "Quick start" section when the test runs, so the README
cannot drift from what works: a command renamed, an option dropped or an output changed fails
here. `make install` finds the environment installed and does nothing; `devnet up` starts a
real devnet (the publisher on 31415, as the README's curl lines expect); `devnet down` stops
it, and the test stops it too if a command failed half-way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from walruspy.devnet.setup import port_taken

pytestmark = [pytest.mark.devnet, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
PUBLISHER_PORT = 31415
#: The whole quick start: install (a no-op here), a devnet, stores, reads, curl, the example.
RUN_TIMEOUT_S = 420


def quick_start_blocks() -> list[tuple[str, str]]:
    """The fenced blocks of the README's "Quick start" section: (language, text), in order."""
    text = README.read_text()
    _, found, rest = text.partition("\n## Quick start\n")
    assert found, "the README has no '## Quick start' section"
    section = rest.split("\n## ", 1)[0]
    return re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    blocks = quick_start_blocks()
    assert [language for language, _ in blocks] == ["sh", "python", "sh"]
    (setup, example, finish) = (code for _, code in blocks)
    taken = port_taken(PUBLISHER_PORT)
    assert taken is None, f"port {PUBLISHER_PORT}, which the README's curl lines use: {taken}"

    checkout = tmp_path / "walruspy"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(sys.prefix)  # the environment running these tests
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, checkout / name)
    # This environment is installed (`make test` installs before it tests): make must see it
    # so and not reinstall the package from this directory, whatever the checkout's file times.
    stamp = Path(sys.prefix) / ".installed"
    if stamp.exists():
        installed = stamp.stat().st_mtime - 1
        os.utime(checkout / "pyproject.toml", (installed, installed))
    (checkout / "example.py").write_text(example)
    script = "set -euo pipefail\n" + setup + finish
    env = {key: value for key, value in os.environ.items() if key != "WALRUSPY_CONFIG"}
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "walruspy.cli.main", "devnet", "down", "--dir", "devnet"],
            cwd=checkout,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, f"the quick start failed:\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert (checkout / "hello-again.txt").read_text() == "Hello, Walrus\n"
    # `store` (text), the publisher's JSON, the aggregator's bytes, the example's lines.
    assert "Blob ID:" in out  # the first store's text
    assert '"newlyCreated"' in out or '"alreadyCertified"' in out, out  # the publisher's JSON
    assert "Hello, Walrus\n" in out
    assert re.search(r"^stored \S+ until epoch \d+$", out, flags=re.MULTILINE), out
    assert re.search(r"^object 0x[0-9a-f]{64}$", out, flags=re.MULTILINE), out
    assert "\nHello from Python\n" in out
    assert "Stopped" in out  # devnet down
