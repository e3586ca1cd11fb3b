"""A blob encoded inconsistently is detected by recovery, proved, and never decoded as data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.strategies import blobs, shard_counts
from walruspy.core.decoding import ConsistencyCheck, decode_blob
from walruspy.core.encoding import encode_blob
from walruspy.core.errors import InconsistentBlobError, VerificationError
from walruspy.core.inconsistency import InconsistencyProof
from walruspy.core.params import EncodingParams
from walruspy.core.recovery import recover_sliver
from walruspy.core.symbols import SymbolSource
from walruspy.core.types import SliverIndex, SliverType
from walruspy.sim.forgery import tampered_encoding


@given(
    blob=blobs,
    n=shard_counts,
    noise=st.binary(min_size=1, max_size=64),
    data=st.data(),
)
def test_tampered_pair_yields_a_verifiable_inconsistency_proof(
    blob: bytes, n: int, noise: bytes, data: st.DataObject
) -> None:
    pair = data.draw(st.integers(0, n - 1))
    enc, metadata, fake = tampered_encoding(blob, n, pair, noise)
    fake.verify(metadata)  # the forged sliver passes the per-sliver check
    params = EncodingParams(n)
    helpers = data.draw(
        st.lists(
            st.integers(0, n - 1),
            min_size=params.n_secondary_source_symbols,
            max_size=n,
            unique=True,
        )
    )
    target = SliverIndex(pair)
    verified = [
        SymbolSource(enc.secondary_sliver(h), n)
        .symbol_for(target)
        .verify(metadata, target, SliverType.PRIMARY)
        for h in helpers
    ]
    result = recover_sliver(metadata, SliverType.PRIMARY, target, verified)
    assert isinstance(result, InconsistencyProof)
    wire = result.to_bcs()
    parsed = InconsistencyProof.from_bcs(wire, SliverType.PRIMARY)
    assert parsed == result
    parsed.verify(metadata)  # anyone can check it


def test_inconsistency_proof_against_consistent_blob_is_rejected() -> None:
    enc = encode_blob(b"consistent blob" * 20, 7)
    params = EncodingParams(7)
    target = SliverIndex(2)
    symbols = tuple(
        SymbolSource(enc.secondary_sliver(h), 7).symbol_for(target)
        for h in range(params.n_secondary_source_symbols)
    )
    proof = InconsistencyProof(SliverType.PRIMARY, target, symbols)
    with pytest.raises(VerificationError, match="not an inconsistency"):
        proof.verify(enc.metadata)
    with pytest.raises(VerificationError, match="exactly"):
        InconsistencyProof(SliverType.PRIMARY, target, symbols[:-1]).verify(enc.metadata)


@pytest.mark.parametrize("check", [ConsistencyCheck.DEFAULT, ConsistencyCheck.STRICT])
def test_inconsistent_blob_is_never_returned_as_data(check: ConsistencyCheck) -> None:
    n = 7
    blob = bytes(range(200))
    enc, metadata, fake = tampered_encoding(blob, n, 0, b"\xaa")
    params = EncodingParams(n)
    # A reader that got the forged sliver 0 among its p verified primary slivers.
    slivers = [fake.verify(metadata)] + [
        enc.primary_sliver(i).verify(metadata)
        for i in range(params.n_primary_source_symbols, params.n_primary_source_symbols * 2 - 1)
    ]
    with pytest.raises(InconsistentBlobError, match="inconsistently encoded"):
        decode_blob(metadata, slivers, check)


def test_strict_checks_a_blob_decoded_from_the_source_slivers_themselves() -> None:
    n = 7
    blob = bytes(range(200))
    enc, metadata, fake = tampered_encoding(blob, n, 0, b"\xaa")
    p = EncodingParams(n).n_primary_source_symbols
    # The forged sliver 0 and the other source slivers: decoding is a plain concatenation.
    others = [enc.primary_sliver(i).verify(metadata) for i in range(1, p)]
    slivers = [fake.verify(metadata), *others]
    with pytest.raises(InconsistentBlobError, match="re-encoding the decoded data"):
        decode_blob(metadata, slivers, ConsistencyCheck.STRICT)
    honest = [enc.primary_sliver(i).verify(enc.metadata) for i in range(p)]
    assert decode_blob(enc.metadata, honest, ConsistencyCheck.STRICT) == blob
