"""`store-quilt`, `read-quilt` and `list-patches-in-quilt` through click, on in-process nodes.

The network and configuration are those of `test_cli_client.py` (a `ThreadedNetwork` and a real
configuration file). A quilt is stored from `--paths` and from `--blobs` (text and `--json`),
listed, and read back by patch IDs (one of which may start with `-`), by identifiers, by tag and
whole, to stdout and to `--out`; bad selections and unknown patches are one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.client import test_cli_client as cli_base
from tests.client.network import ThreadedNetwork
from tests.client.test_cli_client import ok, run, settle
from tests.node.cluster import blob_data
from walruspy.cli.options import spread_multi_values

pytestmark = pytest.mark.timeout(120)

# The module-scoped network and configuration file of the client commands' tests.
network = cli_base.network
config = cli_base.config


def _files(tmp_path: Path) -> dict[str, bytes]:
    directory = tmp_path / "site"
    (directory / "nested").mkdir(parents=True, exist_ok=True)
    files = {"a.txt": b"alpha", "b.bin": blob_data(51, 2000), "nested/c.txt": b""}
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return files


def _store_paths(network: ThreadedNetwork, config: Path, tmp_path: Path) -> dict[str, Any]:
    _files(tmp_path)
    result = ok(
        network, config, "store-quilt", "--paths", str(tmp_path / "site"), "--epochs", "2",
        "--json",
    )  # fmt: skip
    settle(network)
    return dict(json.loads(result.stdout))


def test_store_quilt_from_paths_then_read_every_way(
    network: ThreadedNetwork,
    config: Path,
    tmp_path: Path,
) -> None:
    body = _store_paths(network, config, tmp_path)
    files = {Path(name).name: content for name, content in _files(tmp_path).items()}
    quilt_id = body["blobStoreResult"]["newlyCreated"]["blobObject"]["blobId"]
    patches = {entry["identifier"]: entry for entry in body["storedQuiltBlobs"]}
    assert sorted(patches) == sorted(files)

    listed = json.loads(ok(network, config, "list-patches-in-quilt", quilt_id, "--json").stdout)
    assert listed["V1"]["quilt_id"] == quilt_id
    assert [p["identifier"] for p in listed["V1"]["index"]["quiltPatches"]] == sorted(files)
    text = ok(network, config, "list-patches-in-quilt", quilt_id).stdout
    assert f"Quilt Metadata V1: {quilt_id}" in text
    assert patches["a.txt"]["quiltPatchId"] in text

    ids = [patches[name]["quiltPatchId"] for name in ("b.bin", "a.txt")]
    raw = ok(network, config, "read-quilt", "--quilt-patch-ids", *ids)
    assert raw.stdout_bytes == files["b.bin"] + files["a.txt"]
    by_id = json.loads(
        ok(network, config, "read-quilt", "--quilt-patch-ids", *ids, "--json").stdout
    )
    assert [bytes(b["blob"]) for b in by_id["retrievedBlobs"]] == [files["b.bin"], files["a.txt"]]
    assert by_id["retrievedBlobs"][1] == {"blob": list(b"alpha"), "identifier": "a.txt", "tags": {}}

    out = tmp_path / "out"
    named = ok(
        network, config, "read-quilt", "--quilt-id", quilt_id, "--identifiers", "c.txt", "a.txt",
        "--out", str(out),
    )  # fmt: skip
    assert "Retrieved 2 blobs and saved to directory" in named.stdout
    assert (out / "a.txt").read_bytes() == b"alpha" and (out / "c.txt").read_bytes() == b""
    whole = json.loads(
        ok(
            network, config, "read-quilt", "--quilt-id", quilt_id, "--out", str(out), "--json"
        ).stdout
    )
    assert whole["out"] == str(out)
    assert [b["identifier"] for b in whole["retrievedBlobs"]] == sorted(files)
    assert all(b["blob"] == [] for b in whole["retrievedBlobs"])
    assert (out / "b.bin").read_bytes() == files["b.bin"]


def test_store_quilt_from_blobs_with_tags_and_read_by_tag(
    network: ThreadedNetwork,
    config: Path,
    tmp_path: Path,
) -> None:
    specs = []
    for index, tag in enumerate(["red", "blue", "red"]):
        path = tmp_path / f"f{index}"
        path.write_bytes(f"file {index}".encode())
        specs.append(
            json.dumps({"path": str(path), "identifier": f"id-{index}", "tags": {"c": tag}})
        )
    text = ok(network, config, "store-quilt", "--blobs", *specs, "--epochs", "1")
    assert "Success:" in text.stdout and "Patches (3):" in text.stdout
    assert "tags: c=red" in text.stdout
    quilt_id = next(
        line.split()[-1] for line in text.stdout.splitlines() if line.startswith("Blob ID:")
    )
    settle(network)
    red = json.loads(
        ok(
            network, config, "read-quilt", "--quilt-id", quilt_id, "--tag", "c", "red", "--json"
        ).stdout
    )
    assert [(b["identifier"], b["tags"]) for b in red["retrievedBlobs"]] == [
        ("id-0", {"c": "red"}),
        ("id-2", {"c": "red"}),
    ]
    none = ok(
        network, config, "read-quilt", "--quilt-id", quilt_id, "--tag", "c", "green", "--json"
    )
    assert json.loads(none.stdout) == {}


def test_bad_selections_and_unknown_patches_are_one_line(
    network: ThreadedNetwork,
    config: Path,
    tmp_path: Path,
) -> None:
    body = _store_paths(network, config, tmp_path)
    result = body["blobStoreResult"]
    quilt_id = (result.get("alreadyCertified") or result["newlyCreated"]["blobObject"])["blobId"]
    patch_id = body["storedQuiltBlobs"][0]["quiltPatchId"]
    usage = [
        ["read-quilt"],
        ["read-quilt", "--quilt-id", quilt_id, "--quilt-patch-ids", patch_id],
        ["read-quilt", "--quilt-id", quilt_id, "--identifiers", "a", "--tag", "k", "v"],
        ["read-quilt", "--quilt-id", quilt_id, "--tag", "k", "v", "--tag", "x", "y"],
        ["store-quilt", "--epochs", "1"],
    ]
    for args in usage:
        result = run(network, config, *args)
        assert result.exit_code == 2, (args, result.output)
    missing = run(network, config, "read-quilt", "--quilt-id", quilt_id, "--identifiers", "zz")
    assert missing.exit_code == 1
    assert "no patch with identifier 'zz'" in missing.output and quilt_id in missing.output
    as_json = run(
        network, config, "read-quilt", "--quilt-id", quilt_id, "--identifiers", "zz", "--json"
    )
    assert json.loads(as_json.stdout)["kind"] == "QuiltPatchNotFoundError"
    bad_id = run(network, config, "read-quilt", "--quilt-patch-ids", "nope")
    assert bad_id.exit_code == 1 and "invalid quilt patch ID 'nope'" in bad_id.output
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / "x").write_bytes(b"1")
    (tmp_path / "site" / "x").write_bytes(b"2")
    duplicate = run(
        network, config, "store-quilt", "--paths", str(twice), str(tmp_path / "site" / "x"),
        "--epochs", "1",
    )  # fmt: skip
    assert duplicate.exit_code == 1 and "duplicate identifier 'x'" in duplicate.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--quilt-patch-ids", "-AbC", "--x", "--json"],
            ["--quilt-patch-ids", "-AbC", "--quilt-patch-ids", "--x", "--json"],
        ),
        (
            ["--identifiers", "a", "b", "--out", "d"],
            ["--identifiers", "a", "--identifiers", "b", "--out", "d"],
        ),
        (["--patch-ids", "A", "--", "-B"], ["--patch-ids", "A", "--", "-B"]),
    ],
)
def test_patch_ids_may_start_with_a_hyphen(args: list[str], expected: list[str]) -> None:
    assert spread_multi_values(args, {"--json", "--out"}) == expected
