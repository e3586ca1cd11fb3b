"""Wal.vy: the WAL token, an ERC-20 with 9 decimals and burning."""

from __future__ import annotations

from typing import Any

import boa
import pytest

from tests.chain.conftest import WAL_SUPPLY, events

ZERO = "0x" + "00" * 20


@pytest.fixture
def alice() -> Any:
    return boa.env.generate_address("alice")


@pytest.fixture
def bob() -> Any:
    return boa.env.generate_address("bob")


def test_metadata_and_supply(wal: Any, owner: Any) -> None:
    assert wal.name() == "WAL Token"
    assert wal.symbol() == "WAL"
    assert wal.decimals() == 9
    assert wal.totalSupply() == WAL_SUPPLY
    assert wal.balanceOf(owner) == WAL_SUPPLY


def test_deployment_mints_to_the_deployer(wal_deployer: Any, alice: Any) -> None:
    with boa.env.prank(alice):
        token = wal_deployer.deploy(5)
    [minted] = events(token, "Transfer")
    assert (minted.sender, minted.receiver, minted.value) == (ZERO, alice, 5)
    assert token.balanceOf(alice) == 5


def test_transfer(wal: Any, owner: Any, alice: Any) -> None:
    assert wal.transfer(alice, 100)
    [event] = events(wal, "Transfer")
    assert (event.sender, event.receiver, event.value) == (owner, alice, 100)
    assert wal.balanceOf(alice) == 100
    assert wal.balanceOf(owner) == WAL_SUPPLY - 100
    with boa.env.prank(alice), boa.reverts("insufficient balance"):
        wal.transfer(owner, 101)
    with boa.reverts("zero address"):
        wal.transfer(ZERO, 1)


def test_approve_and_transfer_from(wal: Any, owner: Any, alice: Any, bob: Any) -> None:
    assert wal.approve(alice, 50)
    [event] = events(wal, "Approval")
    assert (event.owner, event.spender, event.value) == (owner, alice, 50)
    with boa.env.prank(alice):
        assert wal.transferFrom(owner, bob, 30)
        assert wal.allowance(owner, alice) == 20
        with boa.reverts("insufficient allowance"):
            wal.transferFrom(owner, bob, 21)
    assert wal.balanceOf(bob) == 30


def test_unlimited_allowance_is_not_spent(wal: Any, owner: Any, alice: Any, bob: Any) -> None:
    wal.approve(alice, 2**256 - 1)
    with boa.env.prank(alice):
        wal.transferFrom(owner, bob, 10)
    assert wal.allowance(owner, alice) == 2**256 - 1


def test_transfer_from_needs_the_balance(wal: Any, owner: Any, alice: Any, bob: Any) -> None:
    wal.transfer(alice, 5)
    with boa.env.prank(alice):
        wal.approve(bob, 10)
    with boa.env.prank(bob), boa.reverts("insufficient balance"):
        wal.transferFrom(alice, bob, 6)


def test_burn(wal: Any, owner: Any) -> None:
    wal.burn(1_000)
    [event] = events(wal, "Transfer")
    assert (event.sender, event.receiver, event.value) == (owner, ZERO, 1_000)
    assert wal.totalSupply() == WAL_SUPPLY - 1_000
    assert wal.balanceOf(owner) == WAL_SUPPLY - 1_000
    with boa.reverts("insufficient balance"):
        wal.burn(WAL_SUPPLY)


def test_burn_from(wal: Any, owner: Any, alice: Any) -> None:
    wal.approve(alice, 300)
    with boa.env.prank(alice):
        wal.burnFrom(owner, 200)
        with boa.reverts("insufficient allowance"):
            wal.burnFrom(owner, 101)
    assert wal.allowance(owner, alice) == 100
    assert wal.totalSupply() == WAL_SUPPLY - 200
