"""Quilts through the client library on the in-process network (`tests/client/network.py`).

A quilt is stored as one blob through the ordinary store path; every patch comes back by
identifier, by tag, by patch ID and all at once, byte for byte with its tags, and the nodes are
asked for exactly the secondary slivers the index and the patches occupy (never a primary
sliver). A stopped or lying node's columns are rebuilt from decoding symbols; when they cannot
be, the quilt is read whole with the Strict check. Bad input is refused with an error that says
what was wrong: unknown identifiers and patch IDs, blobs that are not quilts, quilts that cannot
be built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.client.network import Network, open_network
from tests.node.cluster import blob_data
from walruspy.client import WalrusClient
from walruspy.client.errors import (
    BlobNotFoundError,
    BlobTooLargeError,
    InvalidArgumentError,
    NotAQuiltError,
    QuiltPatchNotFoundError,
)
from walruspy.client.quilts import QuiltStoreResult
from walruspy.core.blob_id import BlobId
from walruspy.core.params import EncodingParams
from walruspy.core.quilt import QuiltPatchId, QuiltPatchInternalId, QuiltStoreBlob
from walruspy.core.types import SliverType, sliver_index_of_pair
from walruspy.node_api import errors as api_errors

pytestmark = pytest.mark.timeout(120)

BLOBS = (
    QuiltStoreBlob("empty", b""),
    QuiltStoreBlob("one", b"\x01", {"kind": "small"}),
    QuiltStoreBlob("page.html", blob_data(1, 900), {"kind": "page", "lang": "en"}),
    QuiltStoreBlob("photo.jpg", blob_data(2, 2500), {"kind": "image"}),
    QuiltStoreBlob("zeta", blob_data(3, 40), {"kind": "page"}),
)
BY_ID = {blob.identifier: blob for blob in BLOBS}


class SliverLog:
    """Which slivers (sliver type, sliver index) the nodes were asked for."""

    def __init__(self, network: Network) -> None:
        self.asked: list[tuple[SliverType, int]] = []
        self.n_shards = network.cluster.n_shards
        for index in range(len(network.nodes)):
            service = network._service(index)
            service.get_sliver = self._wrap(service.get_sliver)

    def _wrap(self, honest: Any) -> Any:
        async def logged(blob_id: Any, pair: Any, sliver_type: SliverType) -> bytes:
            index = sliver_index_of_pair(pair, sliver_type, self.n_shards)
            self.asked.append((sliver_type, int(index)))
            return bytes(await honest(blob_id, pair, sliver_type))

        return logged

    def secondary(self) -> set[int]:
        """The secondary slivers asked for; no primary sliver may have been."""
        assert all(kind is SliverType.SECONDARY for kind, _ in self.asked), self.asked
        return {index for _, index in self.asked}

    def clear(self) -> None:
        self.asked.clear()


async def _store(network: Network, client: WalrusClient) -> QuiltStoreResult:
    result = await client.quilts.store(BLOBS, 3)
    await network.settle()
    return result


def _check(patch: Any) -> None:
    blob = BY_ID[patch.identifier]
    assert patch.data == blob.data
    assert dict(patch.tags) == dict(blob.tags)


async def test_store_then_read_every_patch_every_way(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await _store(network, client)
        assert not stored.blob_store_result.already_certified
        assert [p.identifier for p in stored.patches] == sorted(BY_ID)
        body = stored.to_json()
        assert set(body) == {"blobStoreResult", "storedQuiltBlobs"}
        assert "newlyCreated" in body["blobStoreResult"]
        first = body["storedQuiltBlobs"][0]
        assert set(first) == {"identifier", "quiltPatchId", "range"}
        # The quilt is an ordinary blob: a full read returns the quilt's bytes.
        assert len(await client.read(stored.quilt_id)) == stored.blob_store_result.unencoded_length

        log = SliverLog(network)
        listing = await client.quilts.list_patches(stored.quilt_id)
        index_columns = log.secondary()
        assert index_columns == set(range(stored.patches[0].sliver_indices.start))
        assert [p.patch_id for p in listing.patches()] == [p.patch_id for p in stored.patches]
        items = listing.items_json()
        assert items[1] == {
            "identifier": "one",
            "patch_id": str(stored.patches[1].patch_id),
            "tags": {"kind": "small"},
        }
        walrus = listing.to_json()["V1"]
        assert walrus["quilt_id"] == str(stored.quilt_id)
        assert [p["identifier"] for p in walrus["index"]["quiltPatches"]] == sorted(BY_ID)

        for patch in stored.patches:
            log.clear()
            read = await client.quilts.read_by_ids([patch.patch_id])
            assert log.secondary() == set(patch.sliver_indices)
            assert read.slivers[stored.quilt_id] == tuple(patch.sliver_indices)
            assert not read.whole
            (got,) = read.patches
            _check(got)
            assert got.patch_id == patch.patch_id

            log.clear()
            (by_name,) = (
                await client.quilts.read_by_identifiers(stored.quilt_id, [got.identifier])
            ).patches
            _check(by_name)
            assert log.secondary() == index_columns | set(patch.sliver_indices)

        pages = await client.quilts.read_by_tag(stored.quilt_id, "kind", "page")
        assert [p.identifier for p in pages.patches] == ["page.html", "zeta"]
        for page in pages.patches:
            _check(page)
        assert (await client.quilts.read_by_tag(stored.quilt_id, "kind", "video")).patches == ()
        everything = await client.quilts.read_all(stored.quilt_id)
        assert [p.identifier for p in everything.patches] == sorted(BY_ID)
        for got in everything.patches:
            _check(got)
        several = await client.quilts.read_by_ids(
            [str(stored.patches[3].patch_id), stored.patches[0].patch_id]
        )
        assert [p.identifier for p in several.patches] == ["photo.jpg", "empty"]


async def test_columns_of_a_stopped_or_lying_node_are_rebuilt(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await _store(network, client)
        network.lie_about_slivers(0)
        await network.stop(1)
        read = await client.quilts.read_all(stored.quilt_id)
        assert not read.whole
        assert [p.identifier for p in read.patches] == sorted(BY_ID)
        for patch in read.patches:
            _check(patch)


async def test_a_quilt_is_read_whole_when_columns_cannot_be_had(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await _store(network, client)
        for index in range(len(network.nodes)):
            node = network.nodes[index].node
            assert node is not None and node.api is not None
            node.api.symbols.decoding_symbols = _refused  # type: ignore[method-assign,assignment]
        network.refuse_slivers(0, SliverType.SECONDARY)
        read = await client.quilts.read_all(stored.quilt_id)
        assert read.whole == (stored.quilt_id,)
        for got in read.patches:
            _check(got)
        patch = stored.patches[2]
        assert (await client.quilts.read_by_ids([patch.patch_id])).patches[0].identifier == (
            patch.identifier
        )


async def _refused(*args: Any) -> bytes:
    raise api_errors.SliverNotFoundError()


async def test_unknown_patches_and_blobs_that_are_not_quilts(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        stored = await _store(network, client)
        quilt_id = stored.quilt_id
        with pytest.raises(QuiltPatchNotFoundError, match="no patch with identifier 'nope'"):
            await client.quilts.read_by_identifiers(quilt_id, ["one", "nope"])
        s = EncodingParams(network.cluster.n_shards).n_secondary_source_symbols
        beyond = QuiltPatchId(quilt_id, QuiltPatchInternalId(s - 1, s + 1))
        with pytest.raises(QuiltPatchNotFoundError, match=f"it has {s} columns"):
            await client.quilts.read_by_ids([beyond])
        last_end = stored.patches[-1].patch_id.internal_id.end_index
        if last_end < s:  # unused columns at the end are zero: no patch header there
            empty = QuiltPatchId(quilt_id, QuiltPatchInternalId(last_end, s))
            with pytest.raises(QuiltPatchNotFoundError, match="no patch in columns"):
                await client.quilts.read_by_ids([empty])
        with pytest.raises(InvalidArgumentError, match="quilt patch ID"):
            await client.quilts.read_by_ids(["not-a-patch-id"])
        with pytest.raises(InvalidArgumentError, match="no quilt patch IDs"):
            await client.quilts.read_by_ids([])

        plain = await client.store(blob_data(9, 3000), 2)
        await network.settle()
        with pytest.raises(NotAQuiltError, match="is not a quilt"):
            await client.quilts.list_patches(plain.blob_id)
        missing = BlobId(bytes(range(32)))
        with pytest.raises(BlobNotFoundError):
            await client.quilts.list_patches(missing)


async def test_quilts_that_cannot_be_built_are_refused(tmp_path: Path) -> None:
    async with open_network(tmp_path) as network, network.client() as client:
        twice = [QuiltStoreBlob("same", b"a"), QuiltStoreBlob("same", b"b")]
        with pytest.raises(InvalidArgumentError, match="duplicate identifier 'same'"):
            await client.quilts.store(twice, 1)
        with pytest.raises(InvalidArgumentError, match="at least one blob"):
            await client.quilts.store([], 1)
        s = EncodingParams(network.cluster.n_shards).n_secondary_source_symbols
        many = [QuiltStoreBlob(f"b{i}", b"x") for i in range(s)]
        with pytest.raises(InvalidArgumentError, match="too many blobs"):
            await client.quilts.store(many, 1)
        huge = [
            QuiltStoreBlob("huge", bytes(EncodingParams(network.cluster.n_shards).max_blob_size))
        ]
        with pytest.raises(BlobTooLargeError):
            await client.quilts.store(huge, 1)
