"""SharedBlobs.vy: Move `walrus::shared_blob` (new, new_funded, fund, extend).

A blob object its owner gave to the contract is wrapped once, with funds from whoever shares it;
anyone funds it; anyone extends it, paid from its own funds only (never from another shared
blob's); nobody can delete, burn or transfer the wrapped object any more; the contract is
attached once to the System that names it, and approves that System for its WAL.
"""

from __future__ import annotations

from typing import Any

import boa

from tests.chain.conftest import ZERO_ADDRESS, BlobSpec, Deployment, deploy_system, events

UNLIMITED = 2**256 - 1


def shared_blob(d: Deployment, owner: Any = None, certified: bool = True) -> tuple[bytes, bytes]:
    """A certified blob of the user's, transferred to SharedBlobs: (object ID, its spec size)."""
    spec = BlobSpec.random()
    object_id = d.reserve_and_register(spec, deletable=True, epochs_ahead=3)
    if certified:
        d.certify(object_id, spec)
    with boa.env.prank(d.user):
        d.system.transfer_blob(object_id, d.shared_blobs.address)
        d.wal.approve(d.shared_blobs.address, UNLIMITED)
    return object_id, spec.blob_id


def test_share_fund_and_extend_from_the_funds(deployment: Deployment) -> None:
    d = deployment
    object_id, _ = shared_blob(d)
    before = d.wal.balanceOf(d.user)
    with boa.env.prank(d.user):
        shared_id = bytes(d.shared_blobs.share(object_id, 1_000))
        [shared] = events(d.shared_blobs, "BlobShared")
    assert (shared.shared_blob_id, shared.blob_object_id, shared.funds) == (
        shared_id,
        object_id,
        1_000,
    )
    assert d.wal.balanceOf(d.user) == before - 1_000
    assert d.shared_blobs.shared_blob_of(object_id) == shared_id
    with boa.env.prank(d.user), boa.reverts("already shared"):
        d.shared_blobs.share(object_id, 0)

    funder = boa.env.generate_address("funder")
    d.fund(funder, 10**12)
    with boa.env.prank(funder):
        d.wal.approve(d.shared_blobs.address, UNLIMITED)
        d.shared_blobs.fund(shared_id, 10**11)
    assert d.shared_blobs.shared_blob(shared_id).funds == 1_000 + 10**11

    end = d.system.blob(object_id).storage.end_epoch
    with boa.env.prank(boa.env.generate_address("anyone")):
        d.shared_blobs.extend(shared_id, 2)
        [extended] = events(d.shared_blobs, "SharedBlobExtended")
    assert d.system.blob(object_id).storage.end_epoch == end + 2
    assert extended.cost > 0
    assert d.shared_blobs.shared_blob(shared_id).funds == 1_000 + 10**11 - extended.cost
    assert d.wal.balanceOf(d.shared_blobs.address) == 1_000 + 10**11 - extended.cost

    # The wrapped object is nobody's to delete, burn or move.
    for call in (d.system.delete_blob, d.system.burn_blob):
        with boa.env.prank(d.user), boa.reverts("not the owner"):
            call(object_id)


def test_an_extension_is_paid_from_that_blobs_funds_only(deployment: Deployment) -> None:
    d = deployment
    rich_blob, _ = shared_blob(d)
    poor_blob, _ = shared_blob(d)
    with boa.env.prank(d.user):
        d.shared_blobs.share(rich_blob, 10**11)
        poor = bytes(d.shared_blobs.share(poor_blob, 1))
        with boa.reverts("insufficient funds"):
            d.shared_blobs.extend(poor, 1)
    assert d.shared_blobs.shared_blob(poor).funds == 1
    assert d.wal.balanceOf(d.shared_blobs.address) == 10**11 + 1


def test_what_cannot_be_shared_or_funded(deployment: Deployment) -> None:
    d = deployment
    spec = BlobSpec.random()
    kept = d.reserve_and_register(spec, deletable=True)
    with boa.env.prank(d.user), boa.reverts("blob not transferred to this contract"):
        d.shared_blobs.share(kept, 0)
    storage_id = bytes(d.system.blob(kept).storage_id)
    with boa.env.prank(d.user), boa.reverts("unknown blob"):
        d.shared_blobs.share(storage_id, 0)
    with boa.reverts("unknown shared blob"):
        d.shared_blobs.fund(b"\x01" * 32, 5)
    with boa.reverts("unknown shared blob"):
        d.shared_blobs.extend(b"\x01" * 32, 1)
    with boa.reverts("unknown shared blob"):
        d.shared_blobs.shared_blob(b"\x01" * 32)
    uncertified, _ = shared_blob(d, certified=False)
    broke = boa.env.generate_address("broke")
    with boa.env.prank(broke), boa.reverts("unpaid"):
        d.shared_blobs.share(uncertified, 5)  # no WAL, no allowance
    with boa.env.prank(d.user):
        shared_id = bytes(d.shared_blobs.share(uncertified, 10**9))
        with boa.reverts("zero amount"):
            d.shared_blobs.fund(shared_id, 0)
        with boa.reverts("not certified"):
            d.shared_blobs.extend(shared_id, 1)


def test_attach_once_to_the_system_that_names_it(
    system_deployer: Any, shared_blobs_deployer: Any, wal: Any, committee_contract: Any
) -> None:
    contract = shared_blobs_deployer.deploy()
    system = deploy_system(system_deployer, wal, committee_contract)
    with boa.reverts("system does not name this contract"):
        contract.attach(system.address)
    named = system_deployer.deploy(
        wal.address, committee_contract.address, 60, 10, 1, 1, 1, ZERO_ADDRESS, ZERO_ADDRESS,
        ZERO_ADDRESS, contract.address,
    )  # fmt: skip
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
        contract.attach(named.address)
    with boa.reverts("not attached"):
        contract.share(b"\x01" * 32, 0)
    contract.attach(named.address)
    assert contract.system() == named.address and contract.wal() == wal.address
    assert wal.allowance(contract.address, named.address) == UNLIMITED
    with boa.reverts("already attached"):
        contract.attach(named.address)
