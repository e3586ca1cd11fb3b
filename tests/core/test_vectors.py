"""The official Walrus encoder's vectors (tests/vectors/walrus-rs2-vectors.json), byte for byte.

The file is required: a missing file fails these tests rather than skipping them.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

import pytest

from tests.conftest import VECTORS_DIR
from walruspy.core import merkle
from walruspy.core.blob_id import BlobId
from walruspy.core.encoding import encode_blob
from walruspy.core.errors import DataTooLargeError
from walruspy.core.params import EncodingParams
from walruspy.core.types import SliverPairIndex, shard_of_pair

VECTORS_PATH = VECTORS_DIR / "walrus-rs2-vectors.json"


@cache
def load_vectors() -> list[dict[str, Any]]:
    if not VECTORS_PATH.exists():
        pytest.fail(f"the Walrus vectors are missing: {VECTORS_PATH}")
    vectors: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]
    return vectors


def vector_content(vector: dict[str, Any]) -> bytes:
    if vector["family"] == "affine":
        return bytes((i * 31 + 7) % 256 for i in range(vector["size"]))
    assert vector["family"] == "rust-regression-v1"
    return b"walrus blob id v1 regression test"


def vector_id(vector: dict[str, Any]) -> str:
    return f"{vector['family']}-{vector['size']}-n{vector['n_shards']}"


def _all_vectors() -> list[dict[str, Any]]:
    try:
        return load_vectors()
    except pytest.fail.Exception:
        return [{"missing": True}]


@pytest.fixture(params=["hashlib", "compiled"])
def hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of hashing the Merkle trees: a call of hashlib per hash, or the compiled loop."""
    compiled = request.param == "compiled"
    monkeypatch.setattr(merkle, "_compiled_worthwhile", lambda count: compiled)
    return str(request.param)


@pytest.mark.parametrize(
    "vector", _all_vectors(), ids=lambda v: vector_id(v) if "family" in v else "missing"
)
def test_vector(vector: dict[str, Any], hashing: str) -> None:
    if vector.get("missing"):
        load_vectors()  # fails with the path
    content = vector_content(vector)
    assert hashlib.sha256(content).hexdigest() == vector["content_sha256"]
    n = vector["n_shards"]
    params = EncodingParams(n)
    assert params.n_primary_source_symbols == vector["n_primary_source_symbols"]
    assert params.n_secondary_source_symbols == vector["n_secondary_source_symbols"]
    if vector.get("blob_id") is None:
        assert "too large" in vector["error"]
        with pytest.raises(DataTooLargeError, match="too large"):
            encode_blob(content, n)
        return
    assert params.symbol_size(len(content)) == vector["symbol_size"]
    encoded = encode_blob(content, n)
    metadata = encoded.metadata
    assert str(metadata.blob_id) == vector["blob_id"]
    assert metadata.blob_id.hex() == vector["blob_id_hex"]
    assert metadata.metadata.root_hash().hex() == vector["root_hash_hex"]
    assert metadata.unencoded_length == vector["unencoded_length"]
    assert BlobId.parse(vector["blob_id"]) == metadata.blob_id
    blob_id = metadata.blob_id.raw
    assert shard_of_pair(SliverPairIndex(0), blob_id, n) == vector["shard_index_of_pair_0"]
    if "primary_sliver_sha256" not in vector:
        return
    assert encoded.primary_sliver(0).data.__len__() == vector["primary_sliver_len"]
    assert encoded.secondary_sliver(0).data.__len__() == vector["secondary_sliver_len"]
    for pair in range(n):
        primary = encoded.primary_sliver(pair).data
        secondary = encoded.secondary_sliver(n - 1 - pair).data
        assert hashlib.sha256(primary).hexdigest() == vector["primary_sliver_sha256"][pair]
        assert hashlib.sha256(secondary).hexdigest() == vector["secondary_sliver_sha256"][pair]
        hashes = metadata.metadata.hashes[pair]
        assert hashes.primary_hash.hex() == vector["pair_primary_hash_hex"][pair]
        assert hashes.secondary_hash.hex() == vector["pair_secondary_hash_hex"][pair]


def test_vectors_cover_every_shard_count() -> None:
    assert {v["n_shards"] for v in load_vectors()} == {4, 7, 10, 13, 100, 1000}


def test_worked_example_of_the_spec() -> None:
    """spec/encoding.md section 6: walrus-core's own blob-ID stability constant."""
    encoded = encode_blob(b"walrus blob id v1 regression test", 10)
    assert encoded.primary_sliver(0).data.hex() == "77616c72757320626c6f62206964"
    assert encoded.secondary_sliver(9).data.hex() == "c2f80b0295ac0000"
    assert str(encoded.metadata.blob_id) == "RcU82Mwf-CFkv1LaI_2qcpANwpGUuG3TMwnVzZxD2kY"
    assert shard_of_pair(SliverPairIndex(0), encoded.metadata.blob_id.raw, 10) == 8
