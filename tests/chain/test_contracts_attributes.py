"""Attributes.vy: blob attributes, as Move `walrus::metadata` and the metadata calls of `blob`.

An ordered map of unique keys per live blob object; only the owner changes it; an update moves
the key to the end; removing a missing key or a missing attribute reverts; the attribute goes
with the object (kept by a transfer, gone with a deletion or a burn); the bounds hold; the
contract is attached once to the System that names it.
"""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.chain.conftest import ZERO_ADDRESS, BlobSpec, Deployment, deploy_system, events

MAX_PAIRS = 32


def pairs_of(d: Deployment, object_id: bytes) -> list[tuple[str, str]] | None:
    present, pairs = d.attributes.attribute(object_id)
    if not present:
        assert list(pairs) == []
        return None
    return [(str(key), str(value)) for key, value in pairs]


def set_pairs(d: Deployment, object_id: bytes, *pairs: tuple[str, str]) -> None:
    with boa.env.prank(d.user):
        d.attributes.insert_or_update_pairs(object_id, [k for k, _ in pairs], [v for _, v in pairs])


def test_pairs_keep_their_order_and_an_update_moves_the_key_to_the_end(
    deployment: Deployment,
) -> None:
    d = deployment
    object_id = d.reserve_and_register(BlobSpec.random(), deletable=True)
    assert pairs_of(d, object_id) is None
    set_pairs(d, object_id, ("content-type", "text/html"), ("site", "a"))
    [changed] = events(d.attributes, "BlobAttributeChanged")
    assert (changed.object_id, changed.n_pairs, changed.removed) == (object_id, 2, False)
    set_pairs(d, object_id, ("content-type", "image/png"), ("x", ""))
    assert pairs_of(d, object_id) == [("site", "a"), ("content-type", "image/png"), ("x", "")]
    # The same key twice in one call: the last value stays.
    set_pairs(d, object_id, ("k", "1"), ("k", "2"))
    assert pairs_of(d, object_id)[-1] == ("k", "2")  # type: ignore[index]

    with boa.env.prank(d.user):
        d.attributes.remove_pairs(object_id, ["site", "x"])
    assert pairs_of(d, object_id) == [("content-type", "image/png"), ("k", "2")]
    with boa.env.prank(d.user), boa.reverts("unknown key"):
        d.attributes.remove_pairs(object_id, ["k", "nope"])
    assert pairs_of(d, object_id) == [("content-type", "image/png"), ("k", "2")]  # all or none
    with boa.env.prank(d.user):
        d.attributes.remove_pairs(object_id, ["content-type", "k"])
    assert pairs_of(d, object_id) == []  # present and empty, as an emptied VecMap
    with boa.env.prank(d.user):
        d.attributes.remove_attribute(object_id)
        [removed] = events(d.attributes, "BlobAttributeChanged")
    assert removed.removed and pairs_of(d, object_id) is None
    with boa.env.prank(d.user), boa.reverts("no attribute"):
        d.attributes.remove_attribute(object_id)
    with boa.env.prank(d.user), boa.reverts("no attribute"):
        d.attributes.remove_pairs(object_id, ["k"])


def test_only_the_owner_of_a_live_blob_changes_its_attribute(deployment: Deployment) -> None:
    d = deployment
    object_id = d.reserve_and_register(BlobSpec.random(), deletable=True)
    stranger = boa.env.generate_address("stranger")
    for call in (
        lambda: d.attributes.insert_or_update_pairs(object_id, ["a"], ["b"]),
        lambda: d.attributes.remove_pairs(object_id, ["a"]),
        lambda: d.attributes.remove_attribute(object_id),
    ):
        with boa.env.prank(stranger), boa.reverts("not the owner"):
            call()
    storage_id = bytes(d.system.blob(object_id).storage_id)
    with boa.env.prank(d.user), boa.reverts("unknown blob"):
        d.attributes.insert_or_update_pairs(storage_id, ["a"], ["b"])  # a storage object
    with boa.env.prank(d.user), boa.reverts("unknown blob"):
        d.attributes.insert_or_update_pairs(b"\x07" * 32, ["a"], ["b"])


def test_the_attribute_goes_with_the_object(deployment: Deployment) -> None:
    d = deployment
    kept = d.reserve_and_register(BlobSpec.random(), deletable=True)
    set_pairs(d, kept, ("a", "1"))
    buyer = boa.env.generate_address("buyer")
    with boa.env.prank(d.user):
        d.system.transfer_blob(kept, buyer)
    assert pairs_of(d, kept) == [("a", "1")]
    with boa.env.prank(buyer):
        d.attributes.insert_or_update_pairs(kept, ["b"], ["2"])
    with boa.env.prank(d.user), boa.reverts("not the owner"):
        d.attributes.remove_attribute(kept)

    for drop in ("delete_blob", "burn_blob"):
        object_id = d.reserve_and_register(BlobSpec.random(), deletable=True)
        set_pairs(d, object_id, ("a", "1"))
        with boa.env.prank(d.user):
            getattr(d.system, drop)(object_id)
        assert pairs_of(d, object_id) is None
        with boa.env.prank(d.user), boa.reverts("unknown blob"):
            d.attributes.remove_attribute(object_id)


def test_bounds(deployment: Deployment) -> None:
    d = deployment
    object_id = d.reserve_and_register(BlobSpec.random())
    with boa.env.prank(d.user), boa.reverts("empty key"):
        d.attributes.insert_or_update_pairs(object_id, [""], ["v"])
    with boa.env.prank(d.user), boa.reverts("keys and values differ in number"):
        d.attributes.insert_or_update_pairs(object_id, ["a", "b"], ["v"])
    keys = [f"k{i}" for i in range(MAX_PAIRS)]
    set_pairs(d, object_id, *[(k, "v") for k in keys])
    assert len(pairs_of(d, object_id) or []) == MAX_PAIRS
    set_pairs(d, object_id, ("k0", "updated"))  # an update of a full map fits
    with boa.env.prank(d.user), boa.reverts("too many pairs"):
        d.attributes.insert_or_update_pairs(object_id, ["one more"], ["v"])
    long_key, long_value = "k" * 128, "v" * 1024
    set_pairs(d, object_id, ("k1", long_value))
    with boa.env.prank(d.user):
        d.attributes.remove_pairs(object_id, ["k2"])
    set_pairs(d, object_id, (long_key, "v"))
    assert (long_key, "v") in (pairs_of(d, object_id) or [])
    with pytest.raises(Exception):  # noqa: B017,PT011 - the ABI encoder refuses it before the call
        set_pairs(d, object_id, ("k" * 129, "v"))


def test_attach_once_to_the_system_that_names_it(
    system_deployer: Any, attributes_deployer: Any, wal: Any, committee_contract: Any
) -> None:
    attributes = attributes_deployer.deploy()
    other = attributes_deployer.deploy()
    system = deploy_system(system_deployer, wal, committee_contract)  # names no attributes
    with boa.reverts("system does not name this contract"):
        attributes.attach(system.address)
    named = system_deployer.deploy(
        wal.address, committee_contract.address, 60, 10, 1, 1, 1, ZERO_ADDRESS, ZERO_ADDRESS,
        other.address, ZERO_ADDRESS,
    )  # fmt: skip
    with boa.env.prank(boa.env.generate_address()), boa.reverts("not the installer"):
        other.attach(named.address)
    with boa.reverts("not attached"):
        other.insert_or_update_pairs(b"\x01" * 32, ["a"], ["b"])
    other.attach(named.address)
    assert other.system() == named.address and named.attributes() == other.address
    with boa.reverts("already attached"):
        other.attach(named.address)
