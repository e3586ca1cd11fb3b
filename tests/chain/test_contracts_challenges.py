"""Challenges.vy and the reward rule it gives System: storage challenges (Walrus paper 4.6).

The schedule (window at half an epoch, a future block's hash as seed, re-scheduling once that
hash is out of BLOCKHASH's reach), the certificate rules (quorum of the current committee over
the CHALLENGE_ATTESTATION the contract builds: any other epoch, node, seed or count fails the
signature check), and settlement: with a started challenge, members without a certificate get
nothing and their share is burnt; without one, rewards are paid as before. Both with a fixed
committee (System.advance_epoch) and under staking (rewards to the pools).
"""

from __future__ import annotations

from typing import Any

import boa
import pytest
from eth_utils.crypto import keccak

from tests.chain.conftest import (
    EPOCH_DURATION_S,
    FIRST_EPOCH,
    MIB,
    STORAGE_PRICE,
    ZERO_ADDRESS,
    BlobSpec,
    Deployment,
    confirmation,
    deploy_system,
    events,
)
from tests.chain.staking_net import WAL, StakingNet, deploy_staking_net
from walruspy.chain import evm
from walruspy.chain.contracts import CONTRACTS_DIR
from walruspy.core.messages import ChallengeAttestationMessage

BLOCKHASH_WINDOW = 256


def block_hash(number: int) -> bytes:
    """The hash the tests give block `number` (titanoboa keeps no real ancestors)."""
    return keccak(b"block %d" % number)


def mine(blocks: int = 1) -> None:
    """Move to a later block and make BLOCKHASH answer `block_hash` for the last 256 blocks."""
    boa.env.time_travel(blocks=blocks)
    number = boa.env.evm.patch.block_number
    boa.env.evm.patch.prev_hashes = [block_hash(number - 1 - i) for i in range(256)]


def open_window(challenges: Any) -> None:
    wait = challenges.window_opens_at() - boa.env.timestamp
    if wait > 0:
        boa.env.time_travel(seconds=wait)


def start(challenges: Any) -> bytes:
    """Schedule and start the current epoch's challenge; returns the seed."""
    open_window(challenges)
    challenges.schedule_challenge()
    mine()
    mine()
    return bytes(challenges.start_challenge())


def attestation(epoch: int, node_id: bytes, seed: bytes, blobs_checked: int) -> bytes:
    return ChallengeAttestationMessage(epoch, node_id, seed, blobs_checked).to_bcs()


def certify(
    d: Deployment,
    index: int,
    blobs_checked: int = 7,
    signers: list[int] | None = None,
    message: bytes | None = None,
) -> None:
    """Post a certificate for member `index` (default: the right message, a smallest quorum)."""
    node_id = d.committee.members[index].node_id
    if message is None:
        seed = bytes(d.challenges.challenge_of(d.system.epoch())[1])
        message = attestation(d.system.epoch(), node_id, seed, blobs_checked)
    signers = d.committee.quorum_signers() if signers is None else signers
    signature, signers_bitmap = d.committee.sign(message, signers)
    d.challenges.certify_challenge(node_id, blobs_checked, signers_bitmap, signature)


# === Deployment ===


def test_attach_once_by_the_installer_to_a_system_that_names_it(
    system_deployer: Any, challenges_deployer: Any, wal: Any, committee_contract: Any
) -> None:
    challenges = challenges_deployer.deploy()
    other = challenges_deployer.deploy()
    system = deploy_system(system_deployer, wal, committee_contract)  # names no challenges
    with boa.reverts("not attached"):
        challenges.schedule_challenge()
    with boa.reverts("not attached"):
        challenges.window_opens_at()
    with boa.reverts("system does not name this contract"):
        challenges.attach(system.address)
    system = deploy_system(system_deployer, wal, committee_contract, challenges=challenges)
    assert system.challenges() == challenges.address
    assert challenges.system() == system.address
    with boa.reverts("already attached"):
        challenges.attach(system.address)
    with boa.env.prank(boa.env.generate_address("stranger")), boa.reverts("not the installer"):
        other.attach(system.address)
    with boa.reverts("system is not a contract"):
        other.attach(boa.env.generate_address("nobody"))
    with boa.reverts("challenges is not a contract"):
        system_deployer.deploy(
            wal.address, committee_contract.address, 60, 10, 1, 1, 1, ZERO_ADDRESS,
            boa.env.generate_address("eoa"), ZERO_ADDRESS, ZERO_ADDRESS,
        )  # fmt: skip


# === Schedule and start ===


def test_the_window_opens_at_half_an_epoch(deployment: Deployment) -> None:
    system, challenges = deployment.system, deployment.challenges
    opens = system.epoch_start_s() + EPOCH_DURATION_S // 2
    assert challenges.window_opens_at() == opens
    boa.env.time_travel(seconds=opens - boa.env.timestamp - 1)
    with boa.reverts("too early"):
        challenges.schedule_challenge()
    with boa.reverts("not scheduled"):
        challenges.start_challenge()
    boa.env.time_travel(seconds=1)
    with boa.env.prank(boa.env.generate_address("anyone")):  # permissionless
        challenges.schedule_challenge()
    seed_block = boa.env.evm.patch.block_number + 1
    [scheduled] = events(challenges)
    assert (type(scheduled).__name__, scheduled.epoch, scheduled.seed_block) == (
        "ChallengeScheduled",
        FIRST_EPOCH,
        seed_block,
    )
    assert challenges.challenge_of(FIRST_EPOCH) == (seed_block, b"\x00" * 32, False)
    with boa.reverts("already scheduled"):
        challenges.schedule_challenge()
    deployment.next_epoch()
    assert challenges.window_opens_at() == system.epoch_start_s() + EPOCH_DURATION_S // 2
    with boa.reverts("too early"):
        challenges.schedule_challenge()


def test_start_waits_for_the_seed_block_and_publishes_its_hash(deployment: Deployment) -> None:
    challenges = deployment.challenges
    open_window(challenges)
    mine()
    challenges.schedule_challenge()
    seed_block = boa.env.evm.patch.block_number + 1
    with boa.reverts("too early"):  # in the scheduling block
        challenges.start_challenge()
    mine()
    with boa.reverts("too early"):  # in the seed block itself: its hash is not known yet
        challenges.start_challenge()
    mine()
    with boa.env.prank(boa.env.generate_address("anyone")):
        seed = bytes(challenges.start_challenge())
    expected = keccak(
        block_hash(seed_block)
        + FIRST_EPOCH.to_bytes(32, "big")
        + bytes.fromhex(str(challenges.address)[2:])
    )
    assert seed == expected
    [started] = events(challenges)
    assert (type(started).__name__, started.epoch, bytes(started.seed)) == (
        "ChallengeStart",
        FIRST_EPOCH,
        expected,
    )
    assert challenges.challenge_of(FIRST_EPOCH) == (seed_block, expected, True)
    assert challenges.passed_members(FIRST_EPOCH) == (True, 0)
    with boa.reverts("already started"):
        challenges.start_challenge()
    with boa.reverts("already started"):
        challenges.schedule_challenge()


def test_seeds_differ_by_contract_and_epoch(
    deployment: Deployment, system_deployer: Any, challenges_deployer: Any, wal: Any
) -> None:
    challenges = deployment.challenges
    other = challenges_deployer.deploy()
    deploy_system(system_deployer, wal, deployment.committee_contract, challenges=other)
    open_window(challenges)
    open_window(other)
    challenges.schedule_challenge()  # both in one block: one seed block, one epoch number
    other.schedule_challenge()
    mine(2)
    first = bytes(challenges.start_challenge())
    assert challenges.challenge_of(FIRST_EPOCH)[0] == other.challenge_of(FIRST_EPOCH)[0]
    assert bytes(other.start_challenge()) != first
    deployment.next_epoch()
    assert start(challenges) not in {first, bytes(challenges.challenge_of(FIRST_EPOCH)[1])}
    assert bytes(challenges.challenge_of(FIRST_EPOCH)[1]) == first


def test_a_seed_block_out_of_blockhash_reach_is_scheduled_again(deployment: Deployment) -> None:
    challenges = deployment.challenges
    open_window(challenges)
    challenges.schedule_challenge()
    first_seed_block = boa.env.evm.patch.block_number + 1
    mine(1 + BLOCKHASH_WINDOW)  # block.number == seed block + 256: the last block that can start
    with boa.reverts("already scheduled"):
        challenges.schedule_challenge()
    with boa.env.anchor():
        challenges.start_challenge()
    mine()
    with boa.reverts("seed block too old"):
        challenges.start_challenge()
    challenges.schedule_challenge()
    seed_block = boa.env.evm.patch.block_number + 1
    assert seed_block > first_seed_block + BLOCKHASH_WINDOW
    assert challenges.challenge_of(FIRST_EPOCH)[0] == seed_block
    mine(2)
    seed = bytes(challenges.start_challenge())
    assert challenges.challenge_of(FIRST_EPOCH) == (seed_block, seed, True)


def test_no_committee_no_challenge() -> None:
    net = deploy_staking_net(10)  # epoch 0 under staking has no committee
    open_window(net.challenges)
    with boa.reverts("no committee"):
        net.challenges.schedule_challenge()


# === Certificates ===


def test_a_quorum_certificate_passes_the_node_once(deployment: Deployment) -> None:
    challenges = deployment.challenges
    node_id = deployment.committee.members[2].node_id
    with boa.reverts("challenge not started"):
        certify(deployment, 2, message=b"")
    seed = start(challenges)
    assert not challenges.passed(FIRST_EPOCH, node_id)
    with boa.env.prank(boa.env.generate_address("relay")):  # anyone may post it
        certify(deployment, 2, blobs_checked=640)
    [certified] = events(challenges)
    assert (type(certified).__name__, certified.epoch, bytes(certified.node_id)) == (
        "ChallengeCertified",
        FIRST_EPOCH,
        node_id,
    )
    assert certified.blobs_checked == 640
    assert challenges.passed(FIRST_EPOCH, node_id)
    assert challenges.blobs_checked_of(FIRST_EPOCH, node_id) == 640
    assert challenges.passed_members(FIRST_EPOCH) == (True, 1 << 2)
    assert not challenges.passed(FIRST_EPOCH + 1, node_id)
    # The same certificate again, or another one: the node passed already.
    with boa.reverts("already certified"):
        certify(deployment, 2, blobs_checked=640)
    with boa.reverts("already certified"):
        certify(deployment, 2, blobs_checked=1, signers=[0, 1, 2, 3])
    certify(deployment, 0, blobs_checked=0, signers=[0, 1, 2, 3])
    assert challenges.passed_members(FIRST_EPOCH) == (True, 1 | 1 << 2)
    members = deployment.committee.members
    assert challenges.passed_nodes(FIRST_EPOCH) == ([node_id, members[0].node_id], [640, 0])
    assert challenges.passed_nodes(FIRST_EPOCH + 1) == ([], [])
    assert challenges.blobs_checked_of(FIRST_EPOCH, deployment.committee.members[0].node_id) == 0
    assert challenges.passed(FIRST_EPOCH, deployment.committee.members[0].node_id)
    assert seed == bytes(challenges.challenge_of(FIRST_EPOCH)[1])


def test_certificates_for_anything_else_fail(deployment: Deployment) -> None:
    challenges = deployment.challenges
    seed = start(challenges)
    members = deployment.committee.members
    node_id = members[1].node_id
    wrong = {
        "epoch": attestation(FIRST_EPOCH + 1, node_id, seed, 7),
        "node": attestation(FIRST_EPOCH, members[0].node_id, seed, 7),
        "seed": attestation(FIRST_EPOCH, node_id, keccak(seed), 7),
        "count": attestation(FIRST_EPOCH, node_id, seed, 8),
    }
    for message in wrong.values():
        with boa.reverts("bad signature"):
            certify(deployment, 1, blobs_checked=7, message=message)
    # Weights 3 3 2 2 of 10 shards: 6 is below the quorum of 7.
    with boa.reverts("certificate below quorum"):
        certify(deployment, 1, signers=[0, 1])
    with boa.reverts("not a committee member"):
        deployment.challenges.certify_challenge(b"\x42" * 32, 7, b"\x0f", b"\x00" * 256)
    assert challenges.passed_members(FIRST_EPOCH) == (True, 0)
    certify(deployment, 1, signers=[0, 1, 2])
    # A certificate of the last epoch is refused in the next one, whose challenge is not started.
    message = attestation(FIRST_EPOCH, members[3].node_id, seed, 7)
    deployment.next_epoch()
    with boa.reverts("challenge not started"):
        certify(deployment, 3, message=message)
    assert challenges.passed(FIRST_EPOCH, node_id)


def test_member_index_finds_every_member_by_binary_search(
    committee_deployer: Any, deployment: Deployment
) -> None:
    contract = deployment.committee_contract
    for index, member in enumerate(deployment.committee.members):
        assert contract.member_index(member.node_id) == (True, index)
    for probe in (b"\x00" * 32, b"\xff" * 32, bytes(31) + b"\x01"):
        if probe not in {m.node_id for m in deployment.committee.members}:
            assert contract.member_index(probe) == (False, 0)
    assert committee_deployer.deploy().member_index(b"\x01" * 32) == (False, 0)


# === Rewards ===


def pay_for_storage(d: Deployment, size: int = 5 * MIB) -> int:
    """Reserve `size` bytes for this epoch and the next; returns this epoch's rewards."""
    with boa.env.prank(d.user):
        d.system.reserve_space(size, 2)
    return storage_units(size) * STORAGE_PRICE


def storage_units(size: int) -> int:
    return -(-size // MIB)


def shares(d: Deployment, epoch_rewards: int) -> list[int]:
    """Each member's share of an epoch's rewards (after the 3% burn), as settlement computes."""
    to_distribute = epoch_rewards - epoch_rewards * 3 // 100
    n_shards = d.committee.n_shards
    return [len(m.shards) * to_distribute // n_shards for m in d.committee.members]


def test_members_without_a_certificate_get_nothing_and_their_share_is_burnt(
    deployment: Deployment,
) -> None:
    d, wal, system = deployment, deployment.wal, deployment.system
    epoch_rewards = pay_for_storage(d)
    start(d.challenges)
    certify(d, 0)
    certify(d, 3)
    supply = wal.totalSupply()
    d.next_epoch()
    expected = shares(d, epoch_rewards)
    members = d.committee.members
    paid = [system.node_rewards(m.node_id) for m in members]
    assert paid == [expected[0], 0, 0, expected[3]]
    withheld = expected[1] + expected[2]
    assert supply - wal.totalSupply() == epoch_rewards * 3 // 100 + withheld
    # Only the rounding remainder is carried, as without challenges.
    remainder = epoch_rewards - epoch_rewards * 3 // 100 - sum(expected)
    assert system.future_accounting(0).rewards_to_distribute == epoch_rewards + remainder
    # The next epoch's challenge is a new one: without it, everyone is paid again.
    d.next_epoch()
    assert [system.node_rewards(m.node_id) - p for m, p in zip(members, paid, strict=True)] == (
        shares(d, epoch_rewards + remainder)
    )


def test_rewards_are_paid_as_before_when_no_challenge_started(deployment: Deployment) -> None:
    d, wal, system = deployment, deployment.wal, deployment.system
    epoch_rewards = pay_for_storage(d)
    open_window(d.challenges)
    d.challenges.schedule_challenge()  # scheduled, never started
    supply = wal.totalSupply()
    d.next_epoch()
    assert [system.node_rewards(m.node_id) for m in d.committee.members] == shares(d, epoch_rewards)
    assert supply - wal.totalSupply() == epoch_rewards * 3 // 100
    assert d.challenges.challenge_of(FIRST_EPOCH)[2] is False


def test_nobody_passing_burns_the_whole_epoch(deployment: Deployment) -> None:
    d, wal = deployment, deployment.wal
    epoch_rewards = pay_for_storage(d)
    start(d.challenges)
    supply = wal.totalSupply()
    d.next_epoch()
    assert all(d.system.node_rewards(m.node_id) == 0 for m in d.committee.members)
    assert supply - wal.totalSupply() == epoch_rewards * 3 // 100 + sum(shares(d, epoch_rewards))


# === Rewards under staking ===


@pytest.fixture
def staked() -> StakingNet:
    """A staking net in epoch 1 with four equally staked nodes and stored blobs paying rewards."""
    net = deploy_staking_net(10)
    staker = str(boa.env.generate_address("staker"))
    net.fund(staker)
    for i in range(4):
        operator = net.register(f"node{i}")
        net.stake(staker, operator.node_id, 1000 * WAL)
    net.advance()
    user = str(boa.env.generate_address("user"))
    net.fund(user)
    for _ in range(2):
        spec = BlobSpec.random(size=1 << 20)
        with boa.env.prank(user):
            object_id = bytes(net.system.reserve_and_register(3, *spec.register_args(False)))
        message = confirmation(net.system.epoch(), spec.blob_id)
        signature, signers = net.sign(message)
        net.system.certify_blob(object_id, signature, signers, message)
    return net


def staking_rewards(net: StakingNet) -> dict[bytes, int]:
    return {node_id: net.pools.pools(node_id).rewards_pool for node_id in net.operators}


def staking_shares(net: StakingNet) -> tuple[int, dict[bytes, int]]:
    """The current epoch's 3% burn and each member's share, as settlement will compute them."""
    accounting = net.system.future_accounting(0)
    rewards, used = accounting.rewards_to_distribute, accounting.used_capacity
    burn = rewards * 3 // 100
    weights = {node_id: len(shards) for node_id, shards in net.committee().items()}
    total = sum(weights.values()) * used
    return burn, {n: w * used * (rewards - burn) // total for n, w in weights.items()}


@pytest.mark.parametrize("challenge", [True, False])
def test_staking_pools_of_nodes_without_a_certificate_get_nothing(
    staked: StakingNet, challenge: bool
) -> None:
    net = staked
    epoch = net.system.epoch()
    node_ids = sorted(net.operators)
    passing = node_ids[:3]
    if challenge:
        open_window(net.challenges)
        net.challenges.schedule_challenge()
        mine(2)
        seed = bytes(net.challenges.start_challenge())
        for node_id in passing:
            message = attestation(epoch, node_id, seed, 3)
            signature, signers_bitmap = net.sign(message)
            net.challenges.certify_challenge(node_id, 3, signers_bitmap, signature)
    assert set(staking_rewards(net).values()) == {0}
    burn, shares = staking_shares(net)
    assert all(share > 0 for share in shares.values())
    supply = net.wal.totalSupply()
    net.advance()
    after = staking_rewards(net)
    failing = node_ids[3]
    if challenge:
        # The failing node's pool gets nothing; its share is burnt, not shared.
        assert after == {**shares, failing: 0}
        assert supply - net.wal.totalSupply() == burn + shares[failing]
    else:
        assert after == shares
        assert supply - net.wal.totalSupply() == burn


def test_the_client_maps_reasons_the_contract_gives() -> None:
    """EvmChain.schedule_challenge and start_challenge turn these reverts into False."""
    source = (CONTRACTS_DIR / "Challenges.vy").read_text()
    for reason in evm._SCHEDULE_NOT_DUE | evm._START_NOT_DUE:
        assert f'"{reason}"' in source, reason
