"""Gas of certify_blob with 4, 10 and 100 committee members (printed with `pytest -s`).

Each figure is the execution gas of one certify_blob with every storage slot and account cold,
as in a fresh transaction, plus the transaction's intrinsic gas (21000 + calldata; EIP-7623's
floor does not bind). The worst case for a committee is the smallest quorum, which leaves the
most non-signer keys to subtract; all members signing is the best case.
"""

from __future__ import annotations

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
    make_committee,
    vector_committee,
)

# Regression bounds, about 1.5x the figures measured when this file was written.
BOUNDS = {4: 400_000, 10: 450_000, 100: 1_300_000}


def intrinsic_gas(calldata: bytes) -> int:
    """Prague intrinsic gas of a call: 21000 + 4 per zero byte + 16 per other byte."""
    zeros = calldata.count(0)
    standard = 21_000 + 4 * zeros + 16 * (len(calldata) - zeros)
    floor = 21_000 + 10 * (zeros + 4 * (len(calldata) - zeros))  # EIP-7623
    return max(standard, floor)


def committee_of(n_members: int) -> Committee:
    if n_members == 4:
        return vector_committee()  # 10 shards, weights 3 3 2 2
    return make_committee(n_members, 10 * n_members)


def measure(d: Deployment, signers: list[int]) -> tuple[int, int]:
    spec = BlobSpec.random()
    object_id = d.reserve_and_register(spec)
    message = confirmation(d.system.epoch(), spec.blob_id)
    signature, signers_bitmap = d.committee.sign(message, signers)
    calldata = d.system.certify_blob.prepare_calldata(object_id, signature, signers_bitmap, message)
    boa.env.reset_gas_used()  # also makes every account and slot cold again
    d.system.certify_blob(object_id, signature, signers_bitmap, message)
    return boa.env.get_gas_used(), intrinsic_gas(calldata)


@pytest.mark.parametrize("n_members", [4, 10, 100])
def test_certify_gas(
    wal_deployer: Any, committee_deployer: Any, system_deployer: Any, n_members: int
) -> None:
    committee = committee_of(n_members)
    # A fresh environment without the test isolation's snapshots, so that resetting the
    # warm/cold access sets before the measured call is allowed.
    with boa.swap_env(boa.Env()):
        owner = boa.env.eoa
        wal = wal_deployer.deploy(WAL_SUPPLY)
        contract = deploy_committee(committee_deployer, committee)
        system = deploy_system(system_deployer, wal, contract)
        user = boa.env.generate_address()
        d = Deployment(wal, contract, system, committee, owner, user)
        d.fund(user)
        smallest_quorum = committee.quorum_signers()
        worst_execution, worst_intrinsic = measure(d, smallest_quorum)
        best_execution, best_intrinsic = measure(d, list(range(n_members)))
    non_signers = n_members - len(smallest_quorum)
    print(
        f"\ncertify_blob, {n_members} members ({committee.n_shards} shards):"
        f" {non_signers} non-signers: {worst_execution} execution + {worst_intrinsic}"
        f" intrinsic = {worst_execution + worst_intrinsic} gas;"
        f" all signing: {best_execution} + {best_intrinsic} = {best_execution + best_intrinsic}"
    )
    assert best_execution < worst_execution
    assert worst_execution + worst_intrinsic < BOUNDS[n_members]
