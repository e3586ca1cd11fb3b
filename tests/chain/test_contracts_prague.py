"""The contracts need the Prague fork: titanoboa runs it; without its precompiles they fail loudly.

titanoboa 0.2.8 builds its chain with py-evm's `latest_mainnet_at(1)`, which in py-evm 0.12.1b1 is
PragueVM: SHA-256 (0x02), MODEXP (0x05), BLAKE2F (0x09, EIP-152) and the seven EIP-2537 BLS12-381
precompiles (0x0b-0x11) are present, and Vyper 0.4.3 targets Prague by default. On a chain where a
precompile is missing, a call to its address succeeds with no output; the contracts check the
output length so that such a chain reverts with a reason instead of accepting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boa
import pytest

from tests.chain.conftest import (
    WAL_SUPPLY,
    BlobSpec,
    Committee,
    Deployment,
    confirmation,
    deploy_committee,
    deploy_system,
    encoded_blob_length,
)

SHA256, MODEXP, BLAKE2F = 0x02, 0x05, 0x09
G1ADD, G1MSM, G2ADD, G2MSM, PAIRING_CHECK, MAP_FP_TO_G1, MAP_FP2_TO_G2 = range(0x0B, 0x12)


def _address(number: int) -> bytes:
    return number.to_bytes(20, "big")


def test_titanoboa_runs_prague() -> None:
    assert boa.env.evm.vm.fork == "prague"
    precompiles = boa.env.evm.vm.state.computation_class.get_precompiles()
    for number in [SHA256, MODEXP, BLAKE2F, *range(G1ADD, MAP_FP2_TO_G2 + 1)]:
        assert _address(number) in precompiles


@contextmanager
def chain_without(*numbers: int) -> Iterator[None]:
    """A fresh environment whose EVM lacks the given precompiles (as before Prague)."""
    with boa.swap_env(boa.Env()):
        drop_precompiles(*numbers)
        yield


def drop_precompiles(*numbers: int) -> None:
    """Remove precompiles from the current environment (a fresh one: see `chain_without`)."""
    computation_class = boa.env.evm.vm.state.computation_class
    remaining = dict(computation_class.get_precompiles())
    for number in numbers:
        del remaining[_address(number)]
    computation_class._precompiles = remaining  # this environment's own class


def _deploy(
    wal_deployer: Any, committee_deployer: Any, system_deployer: Any, committee: Committee
) -> Deployment:
    wal = wal_deployer.deploy(WAL_SUPPLY)
    contract = deploy_committee(committee_deployer, committee)
    system = deploy_system(system_deployer, wal, contract)
    d = Deployment(wal, contract, system, committee, boa.env.eoa, boa.env.generate_address())
    d.fund(d.user)
    return d


def test_register_needs_blake2f(
    wal_deployer: Any, committee_deployer: Any, system_deployer: Any, committee: Committee
) -> None:
    with chain_without(BLAKE2F):
        d = _deploy(wal_deployer, committee_deployer, system_deployer, committee)
        with boa.env.prank(d.user), boa.reverts("blake2f precompile unavailable"):
            d.system.reserve_and_register(1, *BlobSpec.random().register_args(False))


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        (G1ADD, "invalid G1 point"),
        (G1MSM, "public key not in G1"),
        # the proofs of possession: a hash to G2 and a pairing per member
        (MODEXP, "modexp precompile unavailable"),
        (MAP_FP2_TO_G2, "bls precompiles unavailable"),
        (G2ADD, "bls precompiles unavailable"),
        (PAIRING_CHECK, "invalid proof of possession"),
    ],
)
def test_installing_the_committee_needs_the_bls_precompiles(
    committee_deployer: Any, committee: Committee, missing: int, reason: str
) -> None:
    with chain_without(missing):
        contract = committee_deployer.deploy()
        with boa.reverts(reason):
            contract.add_members(*committee.member_args())


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        (MODEXP, "modexp precompile unavailable"),
        (MAP_FP2_TO_G2, "bls precompiles unavailable"),
        (G2ADD, "bls precompiles unavailable"),
        (PAIRING_CHECK, "bad signature"),
    ],
)
def test_certify_needs_the_bls_precompiles(
    wal_deployer: Any,
    committee_deployer: Any,
    system_deployer: Any,
    committee: Committee,
    missing: int,
    reason: str,
) -> None:
    # The committee checks its members' proofs of possession with the same precompiles: install
    # it first, then lose them.
    with boa.swap_env(boa.Env()):
        d = _deploy(wal_deployer, committee_deployer, system_deployer, committee)
        drop_precompiles(missing)
        spec = BlobSpec.random()
        with boa.env.prank(d.user):
            storage_id = d.system.reserve_space(encoded_blob_length(spec.size, 10), 2)
            object_id = d.system.register_blob(storage_id, *spec.register_args(False))
        message = confirmation(d.system.epoch(), spec.blob_id)
        signature, signers_bitmap = committee.sign(message, [0, 1, 2, 3])
        with boa.reverts(reason):
            d.system.certify_blob(object_id, signature, signers_bitmap, message)
