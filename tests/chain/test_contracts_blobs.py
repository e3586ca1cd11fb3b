"""System blobs: register, certify, extend, delete, burn, transfer, and the full lifecycle.

Move `system::{register_blob, certify_blob, extend_blob, extend_blob_with_resource,
delete_blob}` and `blob` (spec/walrus-system.md 1.2, 1.5, 2.6, 2.7).
"""

from __future__ import annotations

import json
from typing import Any

import boa
import pytest

from tests.chain.conftest import (
    FIRST_EPOCH,
    MAX_EPOCHS_AHEAD,
    MIB,
    RS2_VECTORS,
    STORAGE_PRICE,
    TOTAL_CAPACITY,
    WRITE_PRICE,
    BlobSpec,
    Deployment,
    confirmation,
    deploy_system,
    encoded_blob_length,
    events,
    invalid_blob_id_message,
    storage_units,
)

ZERO = "0x" + "00" * 20
N_SHARDS = 10


def reserve(d: Deployment, size: int, epochs_ahead: int = 3) -> bytes:
    with boa.env.prank(d.user):
        return bytes(d.system.reserve_space(size, epochs_ahead))


def register(d: Deployment, spec: BlobSpec, deletable: bool = False, epochs: int = 3) -> bytes:
    storage_id = reserve(d, encoded_blob_length(spec.size, N_SHARDS), epochs)
    with boa.env.prank(d.user):
        return bytes(d.system.register_blob(storage_id, *spec.register_args(deletable)))


def certify_args(
    d: Deployment, object_id: bytes, message: bytes, signers: list[int] | None = None
) -> tuple[bytes, bytes, bytes, bytes]:
    signers = d.committee.quorum_signers() if signers is None else signers
    signature, signers_bitmap = d.committee.sign(message, signers)
    return object_id, signature, signers_bitmap, message


# === Registration ===


def test_register_blob(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random(5000)
    encoded = encoded_blob_length(spec.size, N_SHARDS)
    storage_id = reserve(deployment, encoded, 4)
    balance = deployment.wal.balanceOf(user)
    with boa.env.prank(user):
        object_id = bytes(system.register_blob(storage_id, *spec.register_args(True)))
    [registered] = events(system, "BlobRegistered")
    assert registered.epoch == FIRST_EPOCH
    assert registered.blob_id == spec.blob_id
    assert registered.size == spec.size
    assert registered.encoding_type == 1
    assert registered.end_epoch == FIRST_EPOCH + 4
    assert registered.deletable
    assert registered.object_id == object_id
    write_fee = WRITE_PRICE * storage_units(encoded)
    assert balance - deployment.wal.balanceOf(user) == write_fee == system.write_cost(encoded)
    blob = system.blob(object_id)
    assert (blob.blob_id, blob.size, blob.encoding_type) == (spec.blob_id, spec.size, 1)
    assert (blob.registered_epoch, blob.is_certified, blob.deletable) == (FIRST_EPOCH, False, True)
    assert blob.storage_id == storage_id
    assert (blob.storage.start_epoch, blob.storage.end_epoch) == (FIRST_EPOCH, FIRST_EPOCH + 4)
    assert blob.storage.storage_size == encoded
    # The storage resource is wrapped into the blob.
    assert system.storage_count_of(user) == 0
    assert system.owner_of(storage_id) == ZERO
    assert list(system.blob_ids_of(user, 0, 10)) == [object_id]
    assert system.owner_of(object_id) == user
    assert system.kind_of(object_id) == 2
    assert system.future_accounting(0).rewards_to_distribute == STORAGE_PRICE + write_fee


@pytest.mark.parametrize(
    "vector",
    [
        v
        for v in json.loads(RS2_VECTORS.read_text())["vectors"]
        if "blob_id_hex" in v and int(v["n_shards"]) == N_SHARDS
    ],
    ids=lambda v: f"L{v['unencoded_length']}",
)
def test_register_accepts_walrus_blob_ids(deployment: Deployment, vector: dict[str, str]) -> None:
    spec = BlobSpec(
        bytes.fromhex(vector["blob_id_hex"]),
        bytes.fromhex(vector["root_hash_hex"]),
        int(vector["unencoded_length"]),
    )
    assert deployment.system.derive_blob_id(spec.root_hash, 1, spec.size) == spec.blob_id
    register(deployment, spec)
    [registered] = events(deployment.system, "BlobRegistered")
    assert registered.blob_id == spec.blob_id


def test_register_blob_checks(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random(1000)
    encoded = encoded_blob_length(spec.size, N_SHARDS)
    small = reserve(deployment, encoded - 1)
    exact = reserve(deployment, encoded)
    with boa.env.prank(user):
        future = bytes(system.reserve_space_for_epochs(encoded, FIRST_EPOCH + 1, FIRST_EPOCH + 2))
        with boa.reverts("storage too small"):
            system.register_blob(small, *spec.register_args(False))
        with boa.reverts("storage not current"):
            system.register_blob(future, *spec.register_args(False))
        wrong = BlobSpec(spec.blob_id, spec.root_hash, spec.size + 1)
        with boa.reverts("wrong blob id"):
            system.register_blob(exact, *wrong.register_args(False))
        with boa.reverts("wrong blob id"):
            system.register_blob(exact, bytes(32), spec.root_hash, spec.size, 1, False)
        for encoding_type in (0, 2):
            with boa.reverts("unsupported encoding type"):
                system.register_blob(
                    exact, spec.blob_id, spec.root_hash, spec.size, encoding_type, False
                )
        with boa.reverts("unknown storage"):
            system.register_blob(bytes(32), *spec.register_args(False))
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the owner"):
        system.register_blob(exact, *spec.register_args(False))


def test_register_rejects_blobs_over_the_maximum_size(deployment: Deployment) -> None:
    too_large = BlobSpec.random(4 * 7 * 65534 + 1)  # p * s * 65534 + 1 at n = 10
    storage_id = reserve(deployment, MIB)
    with boa.env.prank(deployment.user), boa.reverts("blob too large"):
        deployment.system.register_blob(storage_id, *too_large.register_args(False))


def test_register_needs_the_write_fee(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    storage_id = reserve(deployment, encoded_blob_length(spec.size, N_SHARDS))
    with boa.env.prank(deployment.user):
        deployment.wal.approve(deployment.system.address, 0)
        with boa.reverts("unpaid"):
            deployment.system.register_blob(storage_id, *spec.register_args(False))


def test_register_rejects_expired_storage(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    storage_id = reserve(deployment, encoded_blob_length(spec.size, N_SHARDS), 1)
    deployment.next_epoch()
    with boa.env.prank(deployment.user), boa.reverts("storage not current"):
        deployment.system.register_blob(storage_id, *spec.register_args(False))


def test_reserve_and_register(deployment: Deployment) -> None:
    system, user, wal = deployment.system, deployment.user, deployment.wal
    spec = BlobSpec.random(100_000)
    encoded = encoded_blob_length(spec.size, N_SHARDS)
    balance = wal.balanceOf(user)
    object_id = deployment.reserve_and_register(spec, deletable=False, epochs_ahead=5)
    [registered] = events(system, "BlobRegistered")
    assert (registered.object_id, registered.end_epoch) == (object_id, FIRST_EPOCH + 5)
    blob = system.blob(object_id)
    assert blob.storage.storage_size == encoded
    assert system.kind_of(blob.storage_id) == 0  # wrapped, never in the owner's index
    units = storage_units(encoded)
    assert balance - wal.balanceOf(user) == units * (5 * STORAGE_PRICE + WRITE_PRICE)
    assert system.storage_count_of(user) == 0
    assert system.blob_count_of(user) == 1


def test_reserve_and_register_checks(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    with boa.env.prank(user):
        with boa.reverts("invalid epochs ahead"):
            system.reserve_and_register(0, *spec.register_args(False))
        with boa.reverts("invalid epochs ahead"):
            system.reserve_and_register(MAX_EPOCHS_AHEAD + 1, *spec.register_args(False))
        with boa.reverts("wrong blob id"):
            system.reserve_and_register(1, bytes(32), spec.root_hash, spec.size, 1, False)
        with boa.reverts("unsupported encoding type"):
            system.reserve_and_register(1, spec.blob_id, spec.root_hash, spec.size, 0, False)
        deployment.wal.approve(system.address, 1)
        with boa.reverts("unpaid"):
            system.reserve_and_register(1, *spec.register_args(False))
    # Nothing was left behind by the failed attempts.
    assert system.used_capacity_size() == 0
    assert system.storage_count_of(user) == 0


def test_the_same_blob_id_may_be_registered_twice(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    first = deployment.reserve_and_register(spec)
    second = deployment.reserve_and_register(spec, deletable=True)
    assert first != second
    assert deployment.system.blob(first).blob_id == deployment.system.blob(second).blob_id


# === Certification ===


def test_certify_permanent_blob(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=3)
    message = confirmation(FIRST_EPOCH, spec.blob_id)
    # Anyone may post a valid certificate; the blob stays its owner's.
    with boa.env.prank(boa.env.generate_address("publisher")):
        system.certify_blob(*certify_args(deployment, object_id, message))
    [certified] = events(system, "BlobCertified")
    assert (certified.epoch, certified.blob_id, certified.object_id) == (
        FIRST_EPOCH,
        spec.blob_id,
        object_id,
    )
    assert (certified.end_epoch, certified.deletable, certified.is_extension) == (
        FIRST_EPOCH + 3,
        False,
        False,
    )
    blob = system.blob(object_id)
    assert blob.is_certified and blob.certified_epoch == FIRST_EPOCH
    assert system.owner_of(object_id) == deployment.user


def test_certify_deletable_blob_names_its_object(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, deletable=True)
    other_id = deployment.reserve_and_register(spec, deletable=True)
    message = confirmation(FIRST_EPOCH, spec.blob_id, other_id)
    with boa.reverts("wrong object id"):
        system.certify_blob(*certify_args(deployment, object_id, message))
    system.certify_blob(
        *certify_args(deployment, object_id, confirmation(FIRST_EPOCH, spec.blob_id, object_id))
    )
    [certified] = events(system, "BlobCertified")
    assert certified.deletable and certified.object_id == object_id


def test_certify_checks_the_message(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    permanent = deployment.reserve_and_register(spec)
    deletable = deployment.reserve_and_register(spec, deletable=True)
    good = confirmation(FIRST_EPOCH, spec.blob_id)
    cases = [
        (permanent, confirmation(FIRST_EPOCH + 1, spec.blob_id), "wrong epoch"),
        (permanent, confirmation(FIRST_EPOCH - 1, spec.blob_id), "wrong epoch"),
        (permanent, confirmation(FIRST_EPOCH, bytes(32)), "wrong blob id"),
        (permanent, confirmation(FIRST_EPOCH, spec.blob_id, permanent), "wrong persistence type"),
        (deletable, good, "wrong persistence type"),
        (permanent, invalid_blob_id_message(FIRST_EPOCH, spec.blob_id), "wrong message type"),
        (permanent, good[:1] + b"\x01" + good[2:], "wrong intent version"),
        (permanent, good[:2] + b"\x02" + good[3:], "wrong app id"),
        (permanent, good[:-1], "message too short"),
        (permanent, good[:-1] + b"\x02", "bad persistence type"),
        (deletable, confirmation(FIRST_EPOCH, spec.blob_id, deletable)[:-1], "message too short"),
        (bytes(32), good, "unknown blob"),
    ]
    for object_id, message, reason in cases:
        with boa.reverts(reason):
            system.certify_blob(*certify_args(deployment, object_id, message))


def test_certify_ignores_trailing_bytes_as_move_does(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec)
    message = confirmation(FIRST_EPOCH, spec.blob_id) + b"future extension"
    deployment.system.certify_blob(*certify_args(deployment, object_id, message))
    assert deployment.system.blob(object_id).is_certified


def test_certify_checks_the_certificate(deployment: Deployment) -> None:
    system, committee = deployment.system, deployment.committee
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec)
    message = confirmation(FIRST_EPOCH, spec.blob_id)
    # Weights 3, 3, 2, 2 of 10: a quorum needs 7 (3w >= 2n + 1).
    for signers in ([0, 1], [0, 2], [2, 3], [0], [3]):
        with boa.reverts("certificate below quorum"):
            system.certify_blob(*certify_args(deployment, object_id, message, signers))
    signature, _ = committee.sign(message, [0, 1, 2])
    with boa.reverts("certificate below quorum"):
        system.certify_blob(object_id, signature, b"", message)
    with boa.reverts("bad signature"):
        system.certify_blob(object_id, signature, committee.sign(message, [0, 1, 3])[1], message)
    other = confirmation(FIRST_EPOCH, BlobSpec.random().blob_id)
    forged, signers_bitmap = committee.sign(other, [0, 1, 2, 3])
    with boa.reverts("bad signature"):
        system.certify_blob(object_id, forged, signers_bitmap, message)
    with boa.reverts("signers bitmap too long"):
        system.certify_blob(object_id, signature, b"\x07\x00", message)
    assert not system.blob(object_id).is_certified
    system.certify_blob(*certify_args(deployment, object_id, message, [0, 1, 2]))
    with boa.reverts("already certified"):
        system.certify_blob(*certify_args(deployment, object_id, message, [0, 1, 2, 3]))


def test_certificates_are_bound_to_their_epoch(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=3)
    old = certify_args(deployment, object_id, confirmation(FIRST_EPOCH, spec.blob_id))
    deployment.next_epoch()
    with boa.reverts("wrong epoch"):
        system.certify_blob(*old)
    system.certify_blob(
        *certify_args(deployment, object_id, confirmation(FIRST_EPOCH + 1, spec.blob_id))
    )
    assert system.blob(object_id).certified_epoch == FIRST_EPOCH + 1


def test_expired_blobs_cannot_be_certified(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=1)
    deployment.next_epoch()
    message = confirmation(FIRST_EPOCH + 1, spec.blob_id)
    with boa.reverts("expired"):
        deployment.system.certify_blob(*certify_args(deployment, object_id, message))


# === Extension ===


def test_extend_blob(deployment: Deployment) -> None:
    system, wal = deployment.system, deployment.wal
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=2)
    deployment.certify(object_id, spec)
    size = system.blob(object_id).storage.storage_size
    payer = boa.env.generate_address("payer")
    deployment.fund(payer)
    with boa.env.prank(payer):
        system.extend_blob(object_id, 3)
        [extended] = events(system, "BlobCertified")
    assert extended.is_extension
    assert (extended.epoch, extended.end_epoch) == (FIRST_EPOCH, FIRST_EPOCH + 5)
    assert system.blob(object_id).storage.end_epoch == FIRST_EPOCH + 5
    cost = 3 * STORAGE_PRICE * storage_units(size)
    assert wal.balanceOf(payer) == 10**6 * 10**9 - cost
    for offset in range(5):
        assert system.future_accounting(offset).used_capacity == size
    assert system.future_accounting(5).used_capacity == 0


def test_extend_blob_checks(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=2)
    with boa.env.prank(deployment.user):
        with boa.reverts("not certified"):
            system.extend_blob(object_id, 1)
        deployment.certify(object_id, spec)
        with boa.reverts("invalid epochs ahead"):
            system.extend_blob(object_id, 0)
        with boa.reverts("invalid epochs ahead"):
            system.extend_blob(object_id, MAX_EPOCHS_AHEAD - 1)
        with boa.reverts("invalid epochs ahead"):
            system.extend_blob(object_id, 2**32 - 1)
        with boa.reverts("unknown blob"):
            system.extend_blob(bytes(32), 1)
    with boa.env.prank(boa.env.generate_address()), boa.reverts("unpaid"):
        system.extend_blob(object_id, 1)


def test_extend_blob_checks_capacity(
    system_deployer: Any, wal: Any, committee_contract: Any, deployment: Deployment
) -> None:
    spec = BlobSpec.random()
    encoded = encoded_blob_length(spec.size, N_SHARDS)
    system = deploy_system(system_deployer, wal, committee_contract, total_capacity=encoded)
    d = Deployment(
        wal, committee_contract, system, deployment.committee, deployment.owner, deployment.user
    )
    d.fund(d.user)
    object_id = d.reserve_and_register(spec, epochs_ahead=2)
    d.certify(object_id, spec)
    with boa.env.prank(d.user):
        system.reserve_space_for_epochs(1, FIRST_EPOCH + 3, FIRST_EPOCH + 4)
        system.extend_blob(object_id, 1)
        with boa.reverts("storage capacity exceeded"):
            system.extend_blob(object_id, 1)


def test_extend_blob_with_resource(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=2)
    size = system.blob(object_id).storage.storage_size
    with boa.env.prank(user):
        extension = bytes(system.reserve_space_for_epochs(size, FIRST_EPOCH + 2, FIRST_EPOCH + 6))
        with boa.reverts("not certified"):
            system.extend_blob_with_resource(object_id, extension)
    deployment.certify(object_id, spec)
    with boa.env.prank(user):
        system.extend_blob_with_resource(object_id, extension)
        [extended] = events(system, "BlobCertified")
    assert extended.is_extension and extended.end_epoch == FIRST_EPOCH + 6
    assert system.blob(object_id).storage.end_epoch == FIRST_EPOCH + 6
    assert system.storage_count_of(user) == 0


def test_extend_blob_with_resource_checks(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, epochs_ahead=2)
    deployment.certify(object_id, spec)
    size = system.blob(object_id).storage.storage_size
    with boa.env.prank(user):
        other_size = bytes(
            system.reserve_space_for_epochs(size + 1, FIRST_EPOCH + 2, FIRST_EPOCH + 4)
        )
        gap = bytes(system.reserve_space_for_epochs(size, FIRST_EPOCH + 3, FIRST_EPOCH + 4))
        early = bytes(system.reserve_space_for_epochs(size, FIRST_EPOCH, FIRST_EPOCH + 3))
        overlapping_end = bytes(system.reserve_space_for_epochs(size, FIRST_EPOCH, FIRST_EPOCH + 2))
        with boa.reverts("incompatible sizes"):
            system.extend_blob_with_resource(object_id, other_size)
        with boa.reverts("incompatible epochs"):
            system.extend_blob_with_resource(object_id, gap)
        with boa.reverts("incompatible epochs"):
            system.extend_blob_with_resource(object_id, early)
        with boa.reverts("extension ends too early"):
            system.extend_blob_with_resource(object_id, overlapping_end)
    stranger = boa.env.generate_address()
    with boa.env.prank(stranger), boa.reverts("not the owner"):
        system.extend_blob_with_resource(object_id, gap)


# === Deletion, burning, transfer ===


def test_delete_blob_returns_its_storage(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, deletable=True, epochs_ahead=4)
    deployment.certify(object_id, spec)
    storage_id = system.blob(object_id).storage_id
    with boa.env.prank(user):
        returned = bytes(system.delete_blob(object_id))
        [deleted] = events(system, "BlobDeleted")
    assert returned == storage_id
    assert (deleted.epoch, deleted.blob_id, deleted.end_epoch) == (
        FIRST_EPOCH,
        spec.blob_id,
        FIRST_EPOCH + 4,
    )
    assert deleted.object_id == object_id and deleted.was_certified
    with boa.reverts("unknown blob"):
        system.blob(object_id)
    assert system.blob_count_of(user) == 0
    assert system.owner_of(storage_id) == user
    s = system.storage(storage_id)
    assert (s.start_epoch, s.end_epoch) == (FIRST_EPOCH, FIRST_EPOCH + 4)
    # The storage can carry another blob.
    other = BlobSpec.random(spec.size)
    with boa.env.prank(user):
        system.register_blob(storage_id, *other.register_args(False))


def test_delete_uncertified_blob(deployment: Deployment) -> None:
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, deletable=True)
    with boa.env.prank(deployment.user):
        deployment.system.delete_blob(object_id)
        [deleted] = events(deployment.system, "BlobDeleted")
    assert not deleted.was_certified


def test_delete_blob_checks(deployment: Deployment) -> None:
    system = deployment.system
    spec = BlobSpec.random()
    permanent = deployment.reserve_and_register(spec)
    deletable = deployment.reserve_and_register(spec, deletable=True, epochs_ahead=1)
    with boa.env.prank(deployment.user), boa.reverts("not deletable"):
        system.delete_blob(permanent)
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the owner"):
        system.delete_blob(deletable)
    with boa.env.prank(deployment.user), boa.reverts("unknown blob"):
        system.delete_blob(bytes(32))
    deployment.next_epoch()
    with boa.env.prank(deployment.user), boa.reverts("expired"):
        system.delete_blob(deletable)


def test_burn_blob(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec)
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the owner"):
        system.burn_blob(object_id)
    with boa.env.prank(user):
        system.burn_blob(object_id)
        assert [type(e).__name__ for e in events(system)] == ["ObjectTransferred"]
    assert system.blob_count_of(user) == 0
    with boa.reverts("unknown blob"):
        system.extend_blob(object_id, 1)


def test_transfer_blob(deployment: Deployment) -> None:
    system, user = deployment.system, deployment.user
    spec = BlobSpec.random()
    object_id = deployment.reserve_and_register(spec, deletable=True)
    buyer = boa.env.generate_address("buyer")
    with boa.env.prank(buyer), boa.reverts("not the owner"):
        system.transfer_blob(object_id, buyer)
    with boa.env.prank(user):
        with boa.reverts("zero address"):
            system.transfer_blob(object_id, ZERO)
        system.transfer_blob(object_id, buyer)
    assert system.owner_of(object_id) == buyer
    assert list(system.blob_ids_of(buyer, 0, 5)) == [object_id]
    assert system.blob_count_of(user) == 0
    with boa.env.prank(user), boa.reverts("not the owner"):
        system.delete_blob(object_id)
    with boa.env.prank(buyer):
        storage_id = bytes(system.delete_blob(object_id))
    assert system.owner_of(storage_id) == buyer


# === Encoded length ===


@pytest.mark.parametrize("n_shards", [1, 4, 7, 10, 13, 100, 301, 1000])
@pytest.mark.parametrize("size", [0, 1, 2, 33, 1000, 4096, 65537, MIB, 5_000_000])
def test_encoded_blob_length_matches_the_spec(system: Any, n_shards: int, size: int) -> None:
    f = (n_shards - 1) // 3
    p, s = n_shards - 2 * f, n_shards - f
    if (max(size, 1) - 1) // (p * s) + 1 > 65534:
        with boa.reverts("blob too large"):
            system.encoded_blob_length(size, 1, n_shards)
        return
    assert system.encoded_blob_length(size, 1, n_shards) == encoded_blob_length(size, n_shards)


@pytest.mark.parametrize("n_shards", [4, 10, 1000])
def test_encoded_blob_length_at_the_maximum_size(system: Any, n_shards: int) -> None:
    f = (n_shards - 1) // 3
    maximum = (n_shards - 2 * f) * (n_shards - f) * 65534
    assert system.encoded_blob_length(maximum, 1, n_shards) == encoded_blob_length(
        maximum, n_shards
    )
    with boa.reverts("blob too large"):
        system.encoded_blob_length(maximum + 1, 1, n_shards)


def test_encoded_blob_length_matches_move_tests(system: Any) -> None:
    # contracts/walrus/sources/system/redstuff.move, test_encoded_size_reed_solomon.
    assert system.encoded_blob_length(1, 1, 10) == 10 * (2 * (4 + 7) + 10 * 2 * 32 + 32)
    assert system.encoded_blob_length(1, 1, 1000) == 1000 * (2 * (334 + 667) + 1000 * 2 * 32 + 32)
    assert system.encoded_blob_length(28 * 100, 1, 10) == 10 * ((4 + 7) * 100 + 10 * 2 * 32 + 32)
    assert system.encoded_blob_length(0, 1, 10) == 10 * (2 * (4 + 7) + 10 * 2 * 32 + 32)
    with boa.reverts("unsupported encoding type"):
        system.encoded_blob_length(1, 0, 10)
    with boa.reverts("no shards"):
        system.encoded_blob_length(1, 1, 0)


# === The whole life of a blob ===


def test_full_lifecycle(deployment: Deployment) -> None:
    system, user, wal = deployment.system, deployment.user, deployment.wal
    spec = BlobSpec.random(200_000)
    start_balance = wal.balanceOf(user)

    # 1. Reserve + register in one transaction (deletable, 2 epochs).
    object_id = deployment.reserve_and_register(spec, deletable=True, epochs_ahead=2)
    encoded = encoded_blob_length(spec.size, N_SHARDS)

    # 2. Certify with a real aggregate signature of a quorum (members 0, 1, 2: weight 8).
    message = confirmation(FIRST_EPOCH, spec.blob_id, object_id)
    signature, signers_bitmap = deployment.committee.sign(message, [0, 1, 2])
    system.certify_blob(object_id, signature, signers_bitmap, message)
    assert system.blob(object_id).is_certified

    # 3. Extend by two epochs; the blob now ends at epoch 5.
    with boa.env.prank(user):
        system.extend_blob(object_id, 2)
    assert system.blob(object_id).storage.end_epoch == FIRST_EPOCH + 4
    units = storage_units(encoded)
    assert start_balance - wal.balanceOf(user) == units * (4 * STORAGE_PRICE + WRITE_PRICE)

    # 4. Epochs pass; the blob is alive until its end epoch (exclusive).
    for _ in range(3):
        deployment.next_epoch()
    assert system.epoch() == FIRST_EPOCH + 3

    # 5. Delete it; the storage comes back for the remaining epoch.
    with boa.env.prank(user):
        storage_id = bytes(system.delete_blob(object_id))
    s = system.storage(storage_id)
    assert (s.start_epoch, s.end_epoch, s.storage_size) == (FIRST_EPOCH, FIRST_EPOCH + 4, encoded)

    # 6. A second blob on that storage expires with it.
    other = BlobSpec.random(spec.size)
    with boa.env.prank(user):
        second = bytes(system.register_blob(storage_id, *other.register_args(True)))
    deployment.certify(second, other)
    deployment.next_epoch()
    assert system.epoch() == FIRST_EPOCH + 4
    expired_message = confirmation(FIRST_EPOCH + 4, other.blob_id, second)
    with boa.env.prank(user):
        with boa.reverts("expired"):
            system.extend_blob(second, 1)
        with boa.reverts("expired"):
            system.delete_blob(second)
    with boa.reverts("already certified"):
        system.certify_blob(*certify_args(deployment, second, expired_message))
    # The record stays until its owner burns it.
    with boa.env.prank(user):
        system.burn_blob(second)
    assert system.blob_count_of(user) == 0
    assert system.used_capacity_size() == 0
    assert system.total_capacity_size() == TOTAL_CAPACITY
