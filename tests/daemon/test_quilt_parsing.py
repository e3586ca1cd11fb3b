"""The pure edges of the quilt routes and commands: `_metadata`, the query, file names, JSON.

No network: the multipart metadata parser (Walrus's `QuiltPatchMetadata`, non-string tag values
kept as JSON text), `quilt_version`, the files `read-quilt --out` writes (names that stay in the
directory, repeats numbered as Walrus's `write_blobs_dedup`), and the JSON shapes of stored and
listed patches.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict

from walruspy.cli.quilt_cmds import write_patches
from walruspy.client.quilts import QuiltPatchData, StoredQuiltPatch
from walruspy.core.blob_id import BlobId
from walruspy.core.quilt import QuiltPatchId, QuiltPatchInternalId
from walruspy.daemon.errors import DaemonApiError
from walruspy.daemon.quilts import field_name, parse_metadata, parse_quilt_query

QUILT = BlobId(bytes(range(32)))


def _patch(identifier: str, data: bytes, start: int = 1) -> QuiltPatchData:
    patch_id = QuiltPatchId(QUILT, QuiltPatchInternalId(start, start + 1))
    return QuiltPatchData(identifier, data, {}, patch_id)


def test_metadata_tags_keep_non_strings_as_json_text() -> None:
    text = b'[{"identifier": "a", "tags": {"n": 3, "ok": true, "s": "x", "o": {"k": [1]}}},'
    text += b' {"identifier": "b"}]'
    assert parse_metadata(text) == {
        "a": {"n": "3", "ok": "true", "s": "x", "o": '{"k":[1]}'},
        "b": {},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "_metadata is not JSON"),
        (b"\xff", "_metadata is not JSON"),
        (b'{"identifier": "a"}', "JSON array"),
        (b'[{"tags": {}}]', 'needs an "identifier" string'),
        (b'[{"identifier": 5}]', 'needs an "identifier" string'),
        (b'[{"identifier": "a", "tags": []}]', "must be a JSON object"),
        (b'[{"identifier": "a"}, {"identifier": "a"}]', "duplicate identifier 'a'"),
    ],
)
def test_malformed_metadata_is_named(text: bytes, message: str) -> None:
    with pytest.raises(DaemonApiError, match=message) as caught:
        parse_metadata(text)
    assert caught.value.http_status == 400 and caught.value.reason == "MALFORMED_REQUEST"


class _Part:
    def __init__(self, disposition: str) -> None:
        self.headers = CIMultiDict({"Content-Disposition": disposition})


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('form-data; name="/"; filename="f"', "/"),  # aiohttp's own reader gives ""
        ('form-data; name="/a"', "/a"),  # and "a"
        ('form-data; name="x\\ y"; filename="f"', "x y"),  # aiohttp's client escapes spaces
        ('form-data; name="a\\"b"', 'a"b'),
        ("form-data; name*=utf-8''%E4%B8%AD%2F; filename=\"f\"", "中/"),
        ('form-data; name="中 x"', "中 x"),
        ("form-data; name=plain", "plain"),
        ('form-data; filename="a; name=x"; name="real"', "real"),
        ('form-data;name="a;b";filename="c"', "a;b"),
        ("form-data", ""),
    ],
)
def test_field_names_are_read_as_sent(disposition: str, name: str) -> None:
    assert field_name(_Part(disposition)) == name  # type: ignore[arg-type]


def test_a_field_name_in_an_unknown_charset_is_named() -> None:
    with pytest.raises(DaemonApiError, match=r"field name.*bogus"):
        field_name(_Part("form-data; name*=bogus''%ff"))  # type: ignore[arg-type]


def test_quilt_version_and_the_publisher_query() -> None:
    for version in ("v1", "V1", "1"):
        query = parse_quilt_query([("quilt_version", version), ("epochs", "4")])
        assert query.epochs == 4 and query.deletable
    with pytest.raises(DaemonApiError, match="unsupported quilt_version 'v2'"):
        parse_quilt_query([("quilt_version", "v2")])
    with pytest.raises(DaemonApiError, match="given twice"):
        parse_quilt_query([("quilt_version", "v1"), ("quilt_version", "v1")])
    with pytest.raises(DaemonApiError, match="unknown query parameter 'colour'"):
        parse_quilt_query([("colour", "red")])
    assert not parse_quilt_query([("permanent", "true")]).deletable


def test_written_patches_stay_in_the_directory_and_repeats_are_numbered(tmp_path: Path) -> None:
    patches = [
        _patch("a.txt", b"1"),
        _patch("a.txt", b"2", 2),
        _patch("noext", b"3", 3),
        _patch("noext", b"4", 4),
        _patch("../up/x", b"5", 5),
        _patch("..", b"6", 6),
        _patch("/abs", b"7", 7),
    ]
    out = tmp_path / "out" / "deep"
    written = write_patches(patches, out)
    assert [path.name for path in written] == [
        "a.txt", "a_2.txt", "noext", "noext_2", ".._up_x", "_..", "_abs",
    ]  # fmt: skip
    assert all(path.parent == out for path in written)
    assert [path.read_bytes() for path in written] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]


def test_json_shapes_of_stored_and_read_patches() -> None:
    patch_id = QuiltPatchId(QUILT, QuiltPatchInternalId(3, 5))
    stored = StoredQuiltPatch("x.bin", patch_id, {"k": "v"})
    assert stored.to_json() == {
        "identifier": "x.bin",
        "quiltPatchId": str(patch_id),
        "range": [3, 5],
    }
    assert stored.sliver_indices == range(3, 5)
    read = QuiltPatchData("x.bin", b"\x00\xff", {"k": "v"}, patch_id)
    assert read.to_json() == {"blob": [0, 255], "identifier": "x.bin", "tags": {"k": "v"}}
    assert read.to_json(with_data=False)["blob"] == []
