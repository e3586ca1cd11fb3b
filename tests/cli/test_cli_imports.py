"""The command line imports what a command needs: the devnet's machinery only for `devnet`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import walruspy.devnet

HEAVY = ["walruspy.devnet.network", "walruspy.chain.deploy", "eth_account"]


def loaded_after(code: str) -> list[str]:
    loaded = f"[m for m in {HEAVY!r} if m in sys.modules]"
    probe = f"import json, sys\n{code}\nprint(json.dumps({loaded}))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(done.stdout))


def test_the_command_line_does_not_import_the_devnet_s_machinery() -> None:
    assert loaded_after("import walruspy.cli.main") == []


def test_the_devnet_package_names_load_on_first_use() -> None:
    assert loaded_after("from walruspy.devnet import open_devnet") != []
    for name in walruspy.devnet.__all__:
        assert getattr(walruspy.devnet, name).__name__ == name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = walruspy.devnet.no_such_name  # type: ignore[attr-defined]
