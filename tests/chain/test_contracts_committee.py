"""System's committee: deployment checks, views, and certificate checks (via invalidate_blob_id).

The certificate rules (spec/walrus-system.md 2.7, Move `bls_aggregate`) are exercised with
INVALID_BLOB_ID certificates, which need no blob: bitmap shape, the f+1 validity threshold,
aggregate key = total key - non-signer keys, and the signature itself.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boa
import pytest

from tests.chain.conftest import (
    FIRST_EPOCH,
    MESSAGE_VECTORS,
    ZERO_ADDRESS,
    BlobSpec,
    Committee,
    Deployment,
    bitmap,
    deploy_committee,
    deploy_system,
    events,
    invalid_blob_id_message,
    make_committee,
)
from walruspy.core.crypto import BlsPrivateKey, BlsPublicKey, aggregate_public_keys
from walruspy.core.messages import ProofOfPossessionMessage

BLOB_ID = bytes(range(32))
# The base field modulus of BLS12-381.
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)


def test_views_return_the_committee(
    system: Any, committee_contract: Any, committee: Committee
) -> None:
    assert system.committee() == committee_contract.address
    assert system.epoch() == FIRST_EPOCH
    assert system.n_shards() == committee_contract.n_shards() == committee.n_shards
    assert committee_contract.sealed()
    assert committee_contract.committee_size() == len(committee.members)
    infos = committee_contract.committee_members()
    for index, (info, member) in enumerate(zip(infos, committee.members, strict=True)):
        public_key = member.private_key.public_key()
        assert info.node_id == member.node_id
        assert info.public_key == public_key.to_eip2537()
        assert info.public_key_compressed == public_key.to_bytes()
        assert info.network_address == member.network_address
        assert info.weight == len(member.shards)
        assert info.network_public_key == b""  # a fixed committee: plain HTTP
        assert list(committee_contract.committee_member_shards(index)) == list(member.shards)
    assert committee_contract.shard_assignment() == committee.shard_owners()
    node_ids, weights = committee_contract.node_weights()
    assert list(node_ids) == [m.node_id for m in committee.members]
    assert list(weights) == committee.weights


def test_total_aggregated_key_matches_golden_vector(committee_contract: Any) -> None:
    expected = json.loads(MESSAGE_VECTORS.read_text())["committee"]["total_aggregated_key_eip2537"]
    assert committee_contract.total_aggregated_key().hex() == expected


def test_committee_member_shards_rejects_unknown_index(committee_contract: Any) -> None:
    with boa.reverts("no such member"):
        committee_contract.committee_member_shards(4)


def test_deployment_emits_the_start_of_the_first_epoch(deployment: Deployment) -> None:
    # The constructor's logs are those of the deployment computation.
    names = [type(e).__name__ for e in events(deployment.system)]
    assert names == ["EpochChangeStart", "EpochChangeDone"]


def test_add_members_checks_its_input(committee_deployer: Any, committee: Committee) -> None:
    contract = committee_deployer.deploy()
    node_ids, keys, addresses, pops = committee.member_args()
    with boa.reverts("committee arrays differ in length"):
        contract.add_members(node_ids, keys[:3], addresses, pops)
    with boa.reverts("committee arrays differ in length"):
        contract.add_members(node_ids, keys, addresses[:3], pops)
    with boa.reverts("committee arrays differ in length"):
        contract.add_members(node_ids, keys, addresses, pops[:3])
    with boa.reverts("node ids not strictly increasing"):
        contract.add_members([node_ids[1], node_ids[0]], keys[:2], addresses[:2], pops[:2])
    with boa.reverts("node ids not strictly increasing"):
        contract.add_members([node_ids[0], node_ids[0]], keys[:2], addresses[:2], pops[:2])
    with boa.reverts("public key is the point at infinity"):
        contract.add_members(node_ids[:1], [bytes(128)], addresses[:1], pops[:1])
    with boa.reverts("public key must be 128 bytes"):
        contract.add_members(node_ids[:1], [keys[0][:127]], addresses[:1], pops[:1])
    not_on_curve = keys[0][:-1] + bytes([keys[0][-1] ^ 1])
    with boa.reverts("public key not in G1"):
        contract.add_members(node_ids[:1], [not_on_curve], addresses[:1], pops[:1])
    # Batches must continue the node-ID order.
    contract.add_members(node_ids[2:], keys[2:], addresses[2:], pops[2:])
    with boa.reverts("node ids not strictly increasing"):
        contract.add_members(node_ids[:2], keys[:2], addresses[:2], pops[:2])
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
        contract.add_members(node_ids[3:], keys[3:], addresses[3:], pops[3:])


def test_add_members_checks_proofs_of_possession(
    committee_deployer: Any, committee: Committee
) -> None:
    contract = committee_deployer.deploy()
    node_ids, keys, addresses, pops = committee.member_args()
    first, other = committee.members[0], committee.members[1]
    stranger = boa.env.generate_address()
    bad_pops = {
        "another key's PoP": other.proof_of_possession(),
        "a PoP for another installer": first.proof_of_possession(stranger),
        "a PoP for another epoch": first.proof_of_possession(epoch=FIRST_EPOCH + 1),
        "a signature of another message": first.private_key.sign(b"not a PoP").to_eip2537(),
        "a short PoP": pops[0][:-1],
        "an empty PoP": b"",
        "a PoP off the curve": pops[0][:-1] + bytes([pops[0][-1] ^ 1]),
        "the PoP at infinity": bytes(256),
    }
    for what, bad in bad_pops.items():
        with boa.reverts("invalid proof of possession"):
            contract.add_members(node_ids[:1], keys[:1], addresses[:1], [bad])
        assert contract.committee_size() == 0, what
    # A bad PoP anywhere in a batch refuses the whole batch.
    with boa.reverts("invalid proof of possession"):
        contract.add_members(node_ids, keys, addresses, [*pops[:3], pops[2]])
    # A rogue key (g1^x minus the other keys) cannot come with a PoP: its owner does not know
    # its secret, and signing the rogue key's PoP message with x does not verify.
    rogue_secret = BlsPrivateKey.from_seed(b"rogue" * 7)
    honest = aggregate_public_keys(m.private_key.public_key() for m in committee.members[:3])
    rogue_key = aggregate_public_keys(
        [rogue_secret.public_key(), BlsPublicKey.from_eip2537(_g1_neg_eip2537(honest))]
    )
    installer = bytes.fromhex(str(boa.env.eoa)[2:])
    rogue_message = ProofOfPossessionMessage.for_evm_address(FIRST_EPOCH, installer, rogue_key)
    rogue_pop = rogue_secret.sign(rogue_message.to_bcs())
    contract.add_members(node_ids[:3], keys[:3], addresses[:3], pops[:3])
    with boa.reverts("invalid proof of possession"):
        contract.add_members(
            node_ids[3:], [rogue_key.to_eip2537()], addresses[3:], [rogue_pop.to_eip2537()]
        )
    # The installer's own PoPs are accepted, and only with the installer sending them.
    stranger_args = committee.member_args(installer=stranger)
    with boa.env.prank(stranger):
        installed_by_stranger = committee_deployer.deploy()
        with boa.reverts("invalid proof of possession"):
            installed_by_stranger.add_members(node_ids, keys, addresses, pops)
        installed_by_stranger.add_members(*stranger_args)
    assert installed_by_stranger.committee_size() == len(committee.members)
    contract.add_members(node_ids[3:], keys[3:], addresses[3:], pops[3:])
    assert contract.committee_size() == len(committee.members)


def _g1_neg_eip2537(point: BlsPublicKey) -> bytes:
    encoded = point.to_eip2537()
    y = int.from_bytes(encoded[64:], "big")
    return encoded[:64] + (FIELD_MODULUS - y).to_bytes(64, "big")


def test_a_key_outside_the_subgroup_is_refused(committee_deployer: Any) -> None:
    # (0, 2) lies on E(Fp): y^2 = x^3 + 4 but not in the prime-order subgroup (the cofactor
    # of G1 is not 1).
    outside = (0).to_bytes(64, "big") + (2).to_bytes(64, "big")
    contract = committee_deployer.deploy()
    with boa.reverts("public key not in G1"):
        contract.add_members([bytes(31) + b"\x01"], [outside], ["a:1"], [bytes(256)])


def test_seal_checks_the_shard_assignment(committee_deployer: Any, committee: Committee) -> None:
    contract = committee_deployer.deploy()
    owners = committee.shard_owners()
    with boa.reverts("empty committee"):
        contract.seal(owners)
    contract.add_members(*committee.member_args())
    with boa.reverts("no shards"):
        contract.seal(b"")
    with boa.reverts("shard assigned to no member"):
        contract.seal(owners[:-1] + b"\x04")
    with boa.reverts("member without shards"):
        contract.seal(owners.replace(b"\x03", b"\x02"))
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
        contract.seal(owners)
    with boa.reverts("committee not sealed"):
        contract.verify_certificate(b"", b"", b"", 0)
    contract.seal(owners)
    with boa.reverts("committee sealed"):
        contract.seal(owners)
    with boa.reverts("committee sealed"):
        contract.add_members(*committee.member_args(0, 1))


def test_system_requires_a_sealed_committee(
    system_deployer: Any, committee_deployer: Any, wal: Any
) -> None:
    unsealed = committee_deployer.deploy()
    with boa.reverts("committee not sealed"):
        deploy_system(system_deployer, wal, unsealed)
    with boa.reverts("committee is not a contract"):
        system_deployer.deploy(
            wal.address, boa.env.generate_address(), 60, 10, 1, 1, 1, ZERO_ADDRESS, ZERO_ADDRESS,
            ZERO_ADDRESS, ZERO_ADDRESS,
        )  # fmt: skip


def test_a_full_size_committee_installs_in_batches(committee_deployer: Any) -> None:
    big = make_committee(150, 1000)
    contract = deploy_committee(committee_deployer, big, batch=50)
    assert contract.committee_size() == 150
    assert contract.n_shards() == 1000
    assert list(contract.committee_member_shards(149)) == list(big.members[149].shards)
    keys = [m.private_key.public_key() for m in big.members]
    assert contract.total_aggregated_key() == aggregate_public_keys(keys).to_eip2537()
    with boa.reverts("too many members"):
        fresh = committee_deployer.deploy()
        fresh.add_members(*big.member_args())
        fresh.add_members(
            [b"\xff" * 32], [big.members[0].public_key_eip2537], ["x:1"], [bytes(256)]
        )


# === Certificates (INVALID_BLOB_ID, threshold f + 1: 3w >= n + 1, here w >= 4 of 10) ===


def test_invalidate_blob_id_accepts_golden_certificates(system: Any) -> None:
    vector = json.loads(MESSAGE_VECTORS.read_text())["messages"]["invalid_blob_id"]
    message = bytes.fromhex(vector["bytes"])
    for aggregate in vector["aggregates"]:
        assert aggregate["is_above_validity"]
        signature = bytes.fromhex(aggregate["signature_eip2537"])
        signers_bitmap = bytes.fromhex(aggregate["signers_bitmap"])
        blob_id = system.invalidate_blob_id(signature, signers_bitmap, message)
        assert blob_id == bytes.fromhex(json.loads(MESSAGE_VECTORS.read_text())["blob_id"])
        [event] = events(system, "InvalidBlobID")
        assert (event.epoch, event.blob_id) == (FIRST_EPOCH, blob_id)


SIGNER_SETS = [
    [i for i in range(4) if mask >> i & 1] for mask in range(1, 16)
]  # every non-empty subset of the 4 members (weights 3, 3, 2, 2 of 10 shards)


@pytest.mark.parametrize("signers", SIGNER_SETS, ids=str)
def test_validity_threshold_is_exactly_f_plus_one(
    system: Any, committee: Committee, signers: list[int]
) -> None:
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, signers_bitmap = committee.sign(message, signers)
    weight = sum(committee.weights[i] for i in signers)
    if 3 * weight >= committee.n_shards + 1:
        assert system.invalidate_blob_id(signature, signers_bitmap, message) == BLOB_ID
    else:
        with boa.reverts("certificate below validity"):
            system.invalidate_blob_id(signature, signers_bitmap, message)


@pytest.mark.parametrize("signers", SIGNER_SETS, ids=str)
def test_quorum_threshold_is_exactly_two_f_plus_one(
    deployment: Deployment, committee: Committee, signers: list[int]
) -> None:
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec)
    weight = sum(committee.weights[i] for i in signers)
    if 3 * weight >= 2 * committee.n_shards + 1:
        deployment.certify(object_id, spec, signers)
        assert deployment.system.blob(object_id).is_certified
    else:
        with boa.reverts("certificate below quorum"):
            deployment.certify(object_id, spec, signers)


def test_bitmap_may_be_short_but_not_long_or_past_the_members(
    system: Any, committee: Committee
) -> None:
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, signers_bitmap = committee.sign(message, [0, 1])
    with boa.reverts("signers bitmap too long"):
        system.invalidate_blob_id(signature, signers_bitmap + b"\x00", message)
    with boa.reverts("signers bitmap names a non-member"):
        system.invalidate_blob_id(signature, bytes([signers_bitmap[0] | 0x10]), message)
    with boa.reverts("signers bitmap names a non-member"):
        system.invalidate_blob_id(signature, b"\x80", message)
    # An empty bitmap means nobody signed.
    with boa.reverts("certificate below validity"):
        system.invalidate_blob_id(signature, b"", message)


def test_signature_must_match_the_signers(system: Any, committee: Committee) -> None:
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, _ = committee.sign(message, [0, 1])
    # Claiming more signers than signed changes the aggregate key.
    with boa.reverts("bad signature"):
        system.invalidate_blob_id(signature, bitmap([0, 1, 2], 4), message)
    with boa.reverts("bad signature"):
        system.invalidate_blob_id(signature, bitmap([2, 3], 4), message)


def test_forged_and_malformed_signatures_are_rejected(system: Any, committee: Committee) -> None:
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, signers_bitmap = committee.sign(message, [0, 1, 2])
    outsider = BlsPrivateKey.from_seed(b"not a member of this committee!!")
    forged = outsider.sign(message).to_eip2537()
    other_message = invalid_blob_id_message(FIRST_EPOCH, bytes(32))
    for bad in [
        forged,
        committee.sign(other_message, [0, 1, 2])[0],
        bytes(256),
        signature[:-1] + bytes([signature[-1] ^ 1]),
    ]:
        with boa.reverts("bad signature"):
            system.invalidate_blob_id(bad, signers_bitmap, message)
    for wrong_length in [signature[:255], signature + b"\x00", b""]:
        with boa.reverts("bad signature"):
            system.invalidate_blob_id(wrong_length, signers_bitmap, message)


def test_malformed_signature_costs_bounded_gas(system: Any, committee: Committee) -> None:
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, signers_bitmap = committee.sign(message, [0, 1, 2])
    bad = signature[:-1] + bytes([signature[-1] ^ 1])
    before = boa.env.get_gas_used()
    with boa.reverts("bad signature"):
        system.invalidate_blob_id(bad, signers_bitmap, message, gas=5_000_000)
    # The failing pairing precompile burns only its allowance, not the 5M given.
    assert boa.env.get_gas_used() - before < 1_500_000


def test_invalid_blob_id_message_checks(system: Any, committee: Committee) -> None:
    def attempt(message: bytes, reason: str) -> None:
        signature, signers_bitmap = committee.sign(message, [0, 1, 2, 3])
        with boa.reverts(reason):
            system.invalidate_blob_id(signature, signers_bitmap, message)

    good = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    attempt(invalid_blob_id_message(FIRST_EPOCH + 1, BLOB_ID), "wrong epoch")
    attempt(invalid_blob_id_message(0, BLOB_ID), "wrong epoch")
    attempt(b"\x01" + good[1:], "wrong message type")
    attempt(good[:1] + b"\x01" + good[2:], "wrong intent version")
    attempt(good[:2] + b"\x04" + good[3:], "wrong app id")
    attempt(good[:6], "message too short")
    attempt(good[:38], "message too short")


def test_certificates_do_not_carry_across_committees(
    system_deployer: Any, committee_deployer: Any, wal: Any, committee: Committee
) -> None:
    # Same node IDs and shards, other keys: the old committee's certificate does not verify.
    rekeyed = Committee(
        tuple(
            replace(m, private_key=BlsPrivateKey.from_seed(bytes([i + 7]) * 32))
            for i, m in enumerate(committee.members)
        ),
        committee.n_shards,
    )
    system = deploy_system(system_deployer, wal, deploy_committee(committee_deployer, rekeyed))
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    signature, signers_bitmap = committee.sign(message, [0, 1, 2, 3])
    with boa.reverts("bad signature"):
        system.invalidate_blob_id(signature, signers_bitmap, message)


def test_certificates_over_many_members(
    system_deployer: Any, committee_deployer: Any, wal: Any
) -> None:
    big = make_committee(20, 40)
    system = deploy_system(system_deployer, wal, deploy_committee(committee_deployer, big))
    message = invalid_blob_id_message(FIRST_EPOCH, BLOB_ID)
    # 14 members of weight 2 = 28 shards: a quorum of 40 needs 27.
    signers = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 19]
    signature, signers_bitmap = big.sign(message, signers)
    assert len(signers_bitmap) == 3
    assert system.invalidate_blob_id(signature, signers_bitmap, message) == BLOB_ID
    with boa.reverts("signers bitmap names a non-member"):
        system.invalidate_blob_id(signature, signers_bitmap[:2] + b"\x10", message)


def test_a_committee_handed_over_to_staking_is_filled_only_by_it(
    committee_deployer: Any, committee: Committee, wal: Any
) -> None:
    filled = deploy_committee(committee_deployer, committee)
    with boa.reverts("committee already filled"):
        filled.hand_over(wal.address)
    empty = committee_deployer.deploy()
    with boa.reverts("staking is not a contract"):
        empty.hand_over(boa.env.generate_address())
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
        empty.hand_over(wal.address)
    empty.hand_over(wal.address)
    assert (empty.staking(), empty.installer()) == (wal.address, wal.address)
    with boa.reverts("installed by staking"), boa.env.prank(wal.address):
        empty.add_members(*committee.member_args(installer=str(wal.address)))
    keys = [m.public_key_eip2537 for m in committee.members]
    ids = [m.node_id for m in committee.members]
    with boa.reverts("not the staking contract"):
        empty.install(1, ids, keys, committee.shard_owners())
    with boa.env.prank(wal.address), boa.reverts("node ids not strictly increasing"):
        empty.install(1, ids[::-1], keys[::-1], committee.shard_owners())
    with boa.env.prank(wal.address), boa.reverts("member without shards"):
        empty.install(1, ids, keys, bytes(committee.n_shards))
    with boa.env.prank(wal.address):
        empty.install(7, ids, keys, committee.shard_owners())
    assert (empty.epoch(), empty.sealed(), empty.n_shards()) == (7, True, committee.n_shards)
    assert list(empty.node_weights()[1]) == committee.weights
    assert bytes(empty.total_aggregated_key()) == bytes(filled.total_aggregated_key())


def test_check_proof_of_possession_names_what_is_wrong(
    committee_contract: Any, committee: Committee
) -> None:
    member = committee.members[0]
    account = str(boa.env.generate_address("operator"))
    key = member.public_key_eip2537
    pop = member.proof_of_possession(account, 5)
    assert committee_contract.check_proof_of_possession(key, pop, account, 5)
    with boa.reverts("invalid proof of possession"):
        committee_contract.check_proof_of_possession(key, pop, account, 6)
    with boa.reverts("public key is the point at infinity"):
        committee_contract.check_proof_of_possession(bytes(128), pop, account, 5)


def test_reserved_storage_makes_the_first_install_cheap(
    committee_deployer: Any, committee: Committee, wal: Any
) -> None:
    keys = [m.public_key_eip2537 for m in committee.members]
    ids = [m.node_id for m in committee.members]
    costs = []
    for reserve in (0, len(ids)):
        contract = committee_deployer.deploy()
        with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
            contract.reserve(1)
        with boa.reverts("too many members"):
            contract.reserve(151)
        contract.reserve(reserve)
        contract.hand_over(wal.address)
        assert contract.committee_size() == 0  # placeholders dropped
        with boa.env.prank(wal.address), boa.reverts("committee already filled"):
            contract.reserve(1)
        with boa.env.prank(wal.address):
            contract.install(3, ids, keys, committee.shard_owners())
            costs.append(contract._computation.get_gas_used())
        assert [bytes(n) for n in contract.node_weights()[0]] == ids
    assert costs[1] < costs[0] - len(ids) * 60_000, costs
