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
from walruspy.core.messages import ChallengeAttestationMessage

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


# Regression bounds of the challenge steps, about 1.5x the figures measured when written:
# certify_challenge is certify_blob's certificate check plus a binary search of the member.
CHALLENGE_BOUNDS = {
    4: {"schedule": 90_000, "start": 80_000, "certify": 520_000},
    100: {"schedule": 90_000, "start": 80_000, "certify": 1_200_000},
}


def measured(call: Any, *args: Any) -> int:
    """Execution + intrinsic gas of `call(*args)` from cold, as a fresh transaction."""
    calldata = call.prepare_calldata(*args)
    boa.env.reset_gas_used()
    call(*args)
    return boa.env.get_gas_used() + intrinsic_gas(calldata)


@pytest.mark.parametrize("n_members", [4, 100])
def test_challenge_gas(
    wal_deployer: Any,
    committee_deployer: Any,
    system_deployer: Any,
    challenges_deployer: Any,
    n_members: int,
) -> None:
    """schedule, start and certify_challenge, and the epoch change that settles a challenge.

    The epoch change is measured in the second and third epochs (reward slots written once
    already, rewards in both): after a started challenge that half the members passed (their
    shares paid, the others' burnt) and after none, so the difference is the cost of the
    burn check for the whole committee.
    """
    committee = committee_of(n_members)
    with boa.swap_env(boa.Env()):
        wal = wal_deployer.deploy(WAL_SUPPLY)
        contract = deploy_committee(committee_deployer, committee)
        challenges = challenges_deployer.deploy()
        system = deploy_system(system_deployer, wal, contract, challenges=challenges)
        d = Deployment(wal, contract, system, committee, boa.env.eoa, boa.env.generate_address())
        d.fund(d.user)
        for _ in range(2):  # rewards in every epoch, and reward slots written once
            d.reserve_and_register(BlobSpec.random(), epochs_ahead=3)
        d.next_epoch()
        boa.env.time_travel(seconds=system.epoch_duration_s() // 2)
        gas = {"schedule": measured(challenges.schedule_challenge)}
        boa.env.time_travel(blocks=2)
        gas["start"] = measured(challenges.start_challenge)
        epoch = system.epoch()
        seed = bytes(challenges.challenge_of(epoch)[1])
        smallest_quorum = committee.quorum_signers()
        for index in range(0, n_members, 2):
            node_id = committee.members[index].node_id
            message = ChallengeAttestationMessage(epoch, node_id, seed, 100).to_bcs()
            signature, signers_bitmap = committee.sign(message, smallest_quorum)
            args = (node_id, 100, signers_bitmap, signature)
            gas["certify"] = max(
                gas.get("certify", 0), measured(challenges.certify_challenge, *args)
            )
        boa.env.time_travel(seconds=system.epoch_duration_s())
        gas["advance_epoch, challenged"] = measured(system.advance_epoch)
        boa.env.time_travel(seconds=system.epoch_duration_s())
        gas["advance_epoch, no challenge"] = measured(system.advance_epoch)
    print(f"\nchallenges, {n_members} members ({committee.n_shards} shards): {gas}")
    for step, bound in CHALLENGE_BOUNDS[n_members].items():
        assert gas[step] < bound, (step, gas)
    assert gas["advance_epoch, challenged"] < 30_000_000
