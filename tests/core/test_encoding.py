"""Properties of RS2 encoding, decoding, sliver verification and recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import blobs, encoded, flip_bit, shard_counts
from walruspy.core.decoding import ConsistencyCheck, decode_blob
from walruspy.core.encoding import encode_blob
from walruspy.core.errors import InvalidInputError, NotEnoughSymbolsError, VerificationError
from walruspy.core.metadata import UnverifiedBlobMetadataWithId
from walruspy.core.params import EncodingParams
from walruspy.core.recovery import recover_sliver
from walruspy.core.slivers import SliverData
from walruspy.core.symbols import SymbolSource, symbols_from_bcs, symbols_to_bcs
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType


def _verified_slivers(blob: bytes, n: int, sliver_type: SliverType, indices: list[int]):
    enc = encoded(blob, n)
    make = enc.primary_sliver if sliver_type is SliverType.PRIMARY else enc.secondary_sliver
    return [make(i).verify(enc.metadata) for i in indices]


@given(blob=blobs, n=shard_counts, data=st.data())
def test_decode_from_any_p_primary_slivers(blob: bytes, n: int, data: st.DataObject) -> None:
    p = EncodingParams(n).n_primary_source_symbols
    indices = data.draw(st.lists(st.integers(0, n - 1), min_size=p, max_size=n, unique=True))
    slivers = _verified_slivers(blob, n, SliverType.PRIMARY, indices)
    check = data.draw(st.sampled_from(list(ConsistencyCheck)))
    assert decode_blob(encoded(blob, n).metadata, slivers, check) == blob


@given(blob=blobs, n=shard_counts, data=st.data())
def test_decode_from_any_s_secondary_slivers(blob: bytes, n: int, data: st.DataObject) -> None:
    s = EncodingParams(n).n_secondary_source_symbols
    indices = data.draw(st.lists(st.integers(0, n - 1), min_size=s, max_size=n, unique=True))
    slivers = _verified_slivers(blob, n, SliverType.SECONDARY, indices)
    assert decode_blob(encoded(blob, n).metadata, slivers) == blob


@given(blob=blobs, n=shard_counts, data=st.data())
def test_too_few_slivers_is_a_clear_error(blob: bytes, n: int, data: st.DataObject) -> None:
    p = EncodingParams(n).n_primary_source_symbols
    indices = data.draw(st.lists(st.integers(0, n - 1), max_size=p - 1, unique=True))
    slivers = _verified_slivers(blob, n, SliverType.PRIMARY, indices)
    with pytest.raises(NotEnoughSymbolsError, match=f"need {p} distinct primary slivers"):
        decode_blob(encoded(blob, n).metadata, slivers)


@given(blob=blobs, n=shard_counts, data=st.data())
def test_recover_any_sliver_from_any_sufficient_symbols(
    blob: bytes, n: int, data: st.DataObject
) -> None:
    enc = encoded(blob, n)
    params = EncodingParams(n)
    target_type = data.draw(st.sampled_from(list(SliverType)))
    target = SliverIndex(data.draw(st.integers(0, n - 1)))
    needed = (
        params.n_secondary_source_symbols
        if target_type is SliverType.PRIMARY
        else params.n_primary_source_symbols
    )
    helpers = data.draw(st.lists(st.integers(0, n - 1), min_size=needed, max_size=n, unique=True))
    source_of = enc.secondary_sliver if target_type is SliverType.PRIMARY else enc.primary_sliver
    symbols = [SymbolSource(source_of(h), n).symbol_for(target) for h in helpers]
    # Symbols travel as BCS between nodes.
    symbols = symbols_from_bcs(symbols_to_bcs(symbols))
    verified = [s.verify(enc.metadata, target, target_type) for s in symbols]
    recovered = recover_sliver(enc.metadata, target_type, target, verified)
    expected = (
        enc.primary_sliver(target)
        if target_type is SliverType.PRIMARY
        else (enc.secondary_sliver(target))
    )
    assert not isinstance(recovered, Exception)
    assert recovered.sliver == expected  # type: ignore[union-attr]


@given(blob=blobs, n=shard_counts, data=st.data())
def test_one_flipped_bit_in_a_sliver_fails_verification(
    blob: bytes, n: int, data: st.DataObject
) -> None:
    enc = encoded(blob, n)
    sliver_type = data.draw(st.sampled_from(list(SliverType)))
    index = data.draw(st.integers(0, n - 1))
    sliver = (
        enc.primary_sliver(index)
        if sliver_type is SliverType.PRIMARY
        else (enc.secondary_sliver(index))
    )
    sliver.verify(enc.metadata)
    tampered = SliverData(
        sliver.sliver_type,
        sliver.index,
        sliver.symbol_size,
        flip_bit(sliver.data, data.draw(st.integers(0))),
    )
    with pytest.raises(VerificationError):
        tampered.verify(enc.metadata)


@given(blob=blobs, n=shard_counts, bit=st.integers(0))
def test_one_flipped_bit_in_metadata_fails_verification(blob: bytes, n: int, bit: int) -> None:
    enc = encoded(blob, n)
    wire = enc.metadata.to_bcs()
    UnverifiedBlobMetadataWithId.from_bcs(wire).verify(n)
    try:
        tampered = UnverifiedBlobMetadataWithId.from_bcs(flip_bit(wire, bit))
    except InvalidInputError:  # flipping a tag or length byte breaks parsing: also a rejection
        return
    with pytest.raises(VerificationError):
        tampered.verify(n)


@given(blob=blobs, n=shard_counts, data=st.data())
def test_one_flipped_bit_in_a_recovery_symbol_fails_verification(
    blob: bytes, n: int, data: st.DataObject
) -> None:
    enc = encoded(blob, n)
    target = SliverIndex(data.draw(st.integers(0, n - 1)))
    helper = data.draw(st.integers(0, n - 1))
    symbol = SymbolSource(enc.secondary_sliver(helper), n).symbol_for(target)
    wire = symbol.to_bcs()
    # Bits past the variant tag: for blobs whose primary and secondary trees coincide (all-zero
    # blobs), flipping the tag names the same symbol of the same matrix position, which is valid.
    tag, body = wire[:1], wire[1:]
    tampered_wire = tag + flip_bit(body, data.draw(st.integers(0)))
    try:
        [tampered] = symbols_from_bcs(b"\x01" + tampered_wire)
    except InvalidInputError:  # the flip broke the encoding itself: also a rejection
        return
    try:
        tampered.verify(enc.metadata, target, SliverType.PRIMARY)
    except VerificationError:
        return
    # It verified: then it must be the true symbol at the position it now claims. (In degenerate
    # blobs, all zeros say, many positions hold equal symbols with equal proofs.)
    truth = SymbolSource(enc.secondary_sliver(tampered.source_index), n).symbol_for(
        tampered.target_index
    )
    assert tampered.data == truth.data


def test_encoding_is_deterministic_and_pairs_are_consistent() -> None:
    blob = bytes(range(256)) * 10
    a, b = encode_blob(blob, 7), encode_blob(blob, 7)
    assert a.metadata == b.metadata
    for pair in range(7):
        primary = a.sliver(SliverPairIndex(pair), SliverType.PRIMARY).sliver
        secondary = a.sliver(SliverPairIndex(pair), SliverType.SECONDARY).sliver
        assert primary.index == pair and secondary.index == 6 - pair
        assert primary.pair_index(7) == secondary.pair_index(7) == pair
    assert len(a.sliver_pairs()) == 7


def test_sliver_of_wrong_length_or_symbol_size_is_rejected() -> None:
    enc = encode_blob(b"x" * 100, 4)
    good = enc.primary_sliver(1)
    shorter = SliverData(
        good.sliver_type, good.index, good.symbol_size, good.data[: -good.symbol_size]
    )
    with pytest.raises(VerificationError, match="expected"):
        shorter.verify(enc.metadata)
    with pytest.raises(VerificationError, match="symbol"):
        SliverData(good.sliver_type, good.index, good.symbol_size * 2, good.data).verify(
            enc.metadata
        )
    out_of_range = SliverData(good.sliver_type, SliverIndex(9), good.symbol_size, good.data)
    with pytest.raises(VerificationError, match="out of range"):
        out_of_range.verify(enc.metadata)


def test_metadata_for_another_committee_size_is_rejected() -> None:
    enc = encode_blob(b"abc", 4)
    with pytest.raises(VerificationError, match="4 sliver pairs, the committee 7 shards"):
        enc.metadata.unverified().verify(7)
