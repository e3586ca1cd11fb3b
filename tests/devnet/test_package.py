"""The built wheel runs a whole network without the Vyper compiler or a writable home.

The wheel is built from this checkout (`pip wheel --no-deps`), unpacked into its own directory
and put first on the import path, so every process (the CLI, the devchain, the nodes and the
daemon the devnet spawns) imports walruspy from the wheel, not from `src`. A module named `vyper`
that refuses to import stands in for a machine without the compiler, and HOME points at a
read-only directory, so nothing can be compiled or cached: the contracts must come from the
`compiled.json` the wheel ships (walruspy.chain.contracts).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devnet.conftest import CLI_TIMEOUT_S, blob_bytes

pytestmark = [pytest.mark.slow, pytest.mark.devnet, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, unpacked, plus a `vyper` that cannot be imported."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("walruspy-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "walruspy/chain/contracts/compiled.json" in names
        for name in ("index.html", "explorer.js", "explorer.css"):  # the explorer's page
            assert f"walruspy/daemon/explorer_static/{name}" in names
        assert not any(name.startswith(("tests/", "bench/")) for name in names)
        archive.extractall(site)
    (site / "vyper.py").write_text(
        'raise ImportError("the Vyper compiler is not installed on this machine")\n'
    )
    return site


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield home
    home.chmod(stat.S_IRWXU)


def run(site: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "walruspy.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=env,
        check=False,
        cwd=site,
    )
    assert result.returncode == 0, f"walruspy {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_wheel_runs_a_devnet_without_compiler_or_cache(
    wheel_site: Path, read_only_home: Path, tmp_path: Path
) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import walruspy, vyper"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(wheel_site)},
        check=False,
    )
    assert "not installed on this machine" in probe.stderr
    where = subprocess.run(
        [sys.executable, "-c", "import walruspy; print(walruspy.__file__)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(wheel_site)},
        check=True,
    )
    assert where.stdout.startswith(str(wheel_site))

    directory = tmp_path / "net"
    run(wheel_site, read_only_home, "devnet", "up", "--dir", str(directory), "--nodes", "4",
        "--shards", "8", "--epoch-duration", "1h")  # fmt: skip
    try:
        config = str(directory / "client_config.yaml")
        source = tmp_path / "blob.bin"
        source.write_bytes(blob_bytes(11, 50_000))
        stored = json.loads(
            run(
                wheel_site, read_only_home, "store", str(source), "--epochs", "2",
                "--config", config, "--json",
            ).stdout
        )  # fmt: skip
        blob_id = stored["results"][0]["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]
        back = tmp_path / "back.bin"
        run(wheel_site, read_only_home, "read", blob_id, "--out", str(back), "--config", config)
        assert back.read_bytes() == source.read_bytes()
    finally:
        run(wheel_site, read_only_home, "devnet", "down", "--dir", str(directory))
    assert not any(read_only_home.iterdir())  # nothing was cached
