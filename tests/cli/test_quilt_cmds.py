"""`walruspy quilt-id`: --blobs and --paths, text and --json, checked against the quilt vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.core.test_quilt import file_content, load_vectors
from walruspy.cli.main import cli
from walruspy.cli.options import spread_multi_values


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["quilt-id", *args])


def write_vector_files(vector: dict[str, Any], directory: Path) -> list[str]:
    """The vector's files on disk, as --blobs values naming each identifier and its tags."""
    specs = []
    for position, entry in enumerate(vector["files"]):
        path = directory / f"file-{position}"
        path.write_bytes(file_content(entry["seed"], entry["size"]))
        specs.append(
            json.dumps(
                {"path": str(path), "identifier": entry["identifier"], "tags": entry["tags"]}
            )
        )
    return specs


def small_vectors() -> list[dict[str, Any]]:
    return [v for v in load_vectors() if v["n_shards"] <= 16]


@pytest.mark.parametrize(
    "vector", small_vectors(), ids=lambda v: f"n{v['n_shards']}-{v['quilt_len']}"
)
def test_blobs_reproduce_the_vector(vector: dict[str, Any], tmp_path: Path) -> None:
    specs = write_vector_files(vector, tmp_path)
    result = run("--n-shards", str(vector["n_shards"]), "--blobs", *specs, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "blobId": vector["blob_id"],
        "patches": [
            {
                "identifier": entry["identifier"],
                "quiltPatchId": entry["patch_id"],
                "startIndex": entry["start_index"],
                "endIndex": entry["end_index"],
                "tags": entry["tags"],
            }
            for entry in vector["index"]
        ],
    }


def test_one_flag_per_value_works_too(tmp_path: Path) -> None:
    vector = small_vectors()[1]
    specs = write_vector_files(vector, tmp_path)
    args = ["--json", "--n-shards", str(vector["n_shards"])]
    for spec in specs:
        args += ["--blobs", spec]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["blobId"] == vector["blob_id"]


def test_text_output(tmp_path: Path) -> None:
    vector = load_vectors()[0]
    specs = write_vector_files(vector, tmp_path)
    result = run("--n-shards", "10", "--blobs", *specs)
    assert result.exit_code == 0, result.output
    entry = vector["index"][0]
    assert f"Quilt blob ID: {vector['blob_id']}" in result.output
    assert "Patches (1):" in result.output
    assert f"  img-448: {entry['patch_id']} (slivers 3..6)" in result.output


def test_identifier_defaults_to_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"walrus")
    (tmp_path / "other").write_bytes(b"")
    specs = [
        json.dumps({"path": str(tmp_path / "notes.txt"), "tags": {"k": "v"}}),
        json.dumps({"path": str(tmp_path / "other"), "identifier": None, "extra": 1}),
    ]
    result = run("--n-shards", "7", "--blobs", *specs, "--json")
    assert result.exit_code == 0, result.output
    patches = json.loads(result.output)["patches"]
    assert [(p["identifier"], p["tags"]) for p in patches] == [
        ("notes.txt", {"k": "v"}),
        ("other", {}),
    ]


def test_paths_read_directories_recursively(tmp_path: Path) -> None:
    nested = tmp_path / "site" / "assets"
    nested.mkdir(parents=True)
    (tmp_path / "site" / "index.html").write_bytes(b"<html/>")
    (nested / "logo.svg").write_bytes(b"<svg/>")
    (tmp_path / "readme.md").write_bytes(b"# hi")
    result = run(
        "--n-shards",
        "10",
        "--paths",
        str(tmp_path / "site"),
        str(tmp_path / "readme.md"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [p["identifier"] for p in payload["patches"]] == ["index.html", "logo.svg", "readme.md"]
    # The same files through --blobs give the same quilt.
    specs = [
        json.dumps({"path": str(path)})
        for path in (nested / "logo.svg", tmp_path / "readme.md", tmp_path / "site" / "index.html")
    ]
    again = run("--n-shards", "10", "--blobs", *specs, "--json")
    assert json.loads(again.output) == payload


def test_duplicate_file_names_are_one_clear_error(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "same.txt").write_bytes(name.encode())
    result = run("--n-shards", "10", "--paths", str(tmp_path), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert "duplicate identifier 'same.txt'" in payload["error"]
    assert payload["kind"] == "InvalidInputError"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("not json", "is not JSON"),
        ('["a"]', "is not a JSON object"),
        ('{"identifier": "x"}', 'needs a "path" string'),
        ('{"path": "P", "identifier": 3}', '"identifier" must be a string'),
        ('{"path": "P", "tags": {"k": 1}}', '"tags" must map strings to strings'),
        ('{"path": "P", "tags": ["k"]}', '"tags" must map strings to strings'),
        ('{"path": "/no/such/file"}', "does not exist"),
        ('{"path": "DIR"}', "is not a file"),
    ],
)
def test_malformed_blob_specs_are_usage_errors(spec: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    spec = spec.replace("P", str(tmp_path / "f")).replace("DIR", str(tmp_path))
    result = run("--n-shards", "10", "--blobs", spec)
    assert result.exit_code == 2
    assert message in result.output


def test_invalid_identifier_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    spec = json.dumps({"path": str(tmp_path / "f"), "identifier": "trailing "})
    result = run("--n-shards", "10", "--blobs", spec)
    assert result.exit_code == 1
    assert "identifier 'trailing ' ends with white space" in result.output
    assert "Traceback" not in result.output


def test_exactly_one_of_blobs_and_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    neither = run("--n-shards", "10")
    assert neither.exit_code == 2
    assert "exactly one of --blobs and --paths" in neither.output
    both = run(
        "--n-shards",
        "10",
        "--paths",
        str(tmp_path / "f"),
        "--blobs",
        json.dumps({"path": str(tmp_path / "f")}),
    )
    assert both.exit_code == 2


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    missing = run("--n-shards", "10", "--paths", str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    empty = run("--n-shards", "10", "--paths", str(tmp_path / "empty"))
    assert empty.exit_code == 2
    assert "no files found" in empty.output


def test_too_many_files_and_too_few_shards(tmp_path: Path) -> None:
    specs = []
    for name in "abc":
        (tmp_path / name).write_bytes(b"")
        specs.append(json.dumps({"path": str(tmp_path / name)}))
    too_many = run("--n-shards", "4", "--blobs", *specs)
    assert too_many.exit_code == 1
    assert "too many blobs for one quilt: 3, at most 2" in too_many.output
    too_few = run("--n-shards", "3", "--blobs", *specs[:1])
    assert too_few.exit_code == 1
    assert "n_shards must be between 4" in too_few.output


@pytest.mark.skipif(
    sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8"
)
def test_non_utf8_file_names_are_numbered(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad-\xff")
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "good").write_bytes(b"y")
    result = run(
        "--n-shards",
        "7",
        "--blobs",
        json.dumps({"path": str(tmp_path / "good")}),
        json.dumps({"path": str(tmp_path / name)}, ensure_ascii=False),
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert [p["identifier"] for p in json.loads(result.output)["patches"]] == [
        "good",
        "unnamed-blob-1",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--blobs", "A", "B", "--json"], ["--blobs", "A", "--blobs", "B", "--json"]),
        (["--paths", "A", "--paths", "B"], ["--paths", "A", "--paths", "B"]),
        (
            ["--n-shards", "4", "--paths", "A", "B"],
            ["--n-shards", "4", "--paths", "A", "--paths", "B"],
        ),
        (["--blobs", "A", "--n-shards", "4", "X"], ["--blobs", "A", "--n-shards", "4", "X"]),
        (["--blobs", "A", "--", "-B"], ["--blobs", "A", "--", "-B"]),
        (["--blobs=A", "B"], ["--blobs=A", "B"]),
    ],
)
def test_spread_multi_values(args: list[str], expected: list[str]) -> None:
    assert spread_multi_values(args) == expected


def test_quilt_id_runs_in_a_real_process(tmp_path: Path) -> None:
    vector = load_vectors()[0]
    specs = write_vector_files(vector, tmp_path)
    command = [sys.executable, "-m", "walruspy.cli.main", "quilt-id", "--n-shards", "10"]
    completed = subprocess.run(
        [*command, "--blobs", *specs, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(completed.stdout)["blobId"] == vector["blob_id"]
