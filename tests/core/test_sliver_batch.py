"""Many slivers as BCS `Vec<Sliver>`, and their verification as one batch."""

from __future__ import annotations

import pytest

from walruspy.core.encoding import EncodedBlob, encode_blob
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.slivers import SliverData, slivers_from_bcs, slivers_to_bcs, verify_slivers
from walruspy.core.types import SliverPairIndex, SliverType

N = 10


def all_slivers(data: bytes) -> tuple[EncodedBlob, list[SliverData]]:
    encoded = encode_blob(data, N)
    pairs = [SliverPairIndex(pair) for pair in range(N)]
    return encoded, [encoded.sliver(pair, kind).sliver for pair in pairs for kind in SliverType]


def test_round_trip_keeps_each_slivers_own_bytes() -> None:
    _, slivers = all_slivers(b"batch" * 500)
    parsed = slivers_from_bcs(slivers_to_bcs(slivers), 2 * N)
    assert [sliver for sliver, _ in parsed] == slivers
    assert [raw for _, raw in parsed] == [sliver.to_bcs() for sliver in slivers]


def test_the_enum_variant_is_walrus_s() -> None:
    _, slivers = all_slivers(b"x" * 100)
    primary, secondary = slivers[0], slivers[1]
    assert slivers_to_bcs([primary]) == b"\x01\x00" + primary.to_bcs()
    assert slivers_to_bcs([secondary]) == b"\x01\x01" + secondary.to_bcs()


def test_parsing_is_strict() -> None:
    _, slivers = all_slivers(b"y" * 100)
    body = slivers_to_bcs(slivers[:3])
    with pytest.raises(DecodeError):
        slivers_from_bcs(body + b"\x00", 10)
    with pytest.raises(DecodeError):
        slivers_from_bcs(body[:-1], 10)
    with pytest.raises(DecodeError):
        slivers_from_bcs(body, 2)  # more slivers than allowed
    with pytest.raises(DecodeError, match="variant 2"):
        slivers_from_bcs(b"\x01\x02" + slivers[0].to_bcs(), 10)


def test_a_batch_verifies_as_each_sliver_alone() -> None:
    encoded, slivers = all_slivers(b"verify me" * 300)
    metadata = encoded.metadata
    verified = verify_slivers(slivers, metadata)
    assert [v.sliver for v in verified] == slivers
    assert verified == [sliver.verify(metadata) for sliver in slivers]
    assert verify_slivers([], metadata) == []


@pytest.mark.parametrize("position", [0, 7, 19])
def test_the_first_bad_sliver_is_named(position: int) -> None:
    encoded, slivers = all_slivers(b"tamper" * 300)
    bad = slivers[position]
    slivers[position] = SliverData(
        bad.sliver_type, bad.index, bad.symbol_size, bytes([bad.data[0] ^ 0x80]) + bad.data[1:]
    )
    message = f"{bad.sliver_type.value} sliver {bad.index} does not match"
    with pytest.raises(VerificationError, match=message):
        verify_slivers(slivers, encoded.metadata)
    short = SliverData(bad.sliver_type, bad.index, bad.symbol_size, bad.data[: bad.symbol_size])
    with pytest.raises(VerificationError, match="bytes, expected"):
        verify_slivers([*slivers[:position], short], encoded.metadata)
