# pragma version ~=0.4.3
# pragma evm-version prague
"""
@title WAL, the Walrus token
@notice Port of Move package `wal` (`wal::wal`): a fungible token with 9 decimals
    (1 WAL = 10^9 FROST) that holders can burn. Here an ERC-20 whose whole supply is
    minted to the deployer at deployment, with `burn` and `burnFrom`.
"""

from ethereum.ercs import IERC20

implements: IERC20


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


name: public(constant(String[16])) = "WAL Token"
symbol: public(constant(String[8])) = "WAL"
decimals: public(constant(uint8)) = 9

totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(initial_supply: uint256):
    """
    @notice Mints `initial_supply` FROST to the deployer.
    """
    self.totalSupply = initial_supply
    self.balanceOf[msg.sender] = initial_supply
    log Transfer(sender=empty(address), receiver=msg.sender, value=initial_supply)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    """
    @notice Moves `amount` from `sender` to `receiver`.
    """
    assert receiver != empty(address), "zero address"
    assert self.balanceOf[sender] >= amount, "insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@internal
def _spend_allowance(owner: address, spender: address, amount: uint256):
    """
    @notice Uses `amount` of `spender`'s allowance from `owner` (unlimited stays unlimited).
    """
    allowed: uint256 = self.allowance[owner][spender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "insufficient allowance"
        self.allowance[owner][spender] = allowed - amount


@internal
def _burn(owner: address, amount: uint256):
    """
    @notice Destroys `amount` of `owner`'s tokens (Move `wal::burn`).
    """
    assert self.balanceOf[owner] >= amount, "insufficient balance"
    self.balanceOf[owner] -= amount
    self.totalSupply -= amount
    log Transfer(sender=owner, receiver=empty(address), value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom.
    """
    self._spend_allowance(sender, msg.sender, amount)
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice ERC-20 approve.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def burn(amount: uint256):
    """
    @notice Burns `amount` of the caller's tokens.
    """
    self._burn(msg.sender, amount)


@external
def burnFrom(owner: address, amount: uint256):
    """
    @notice Burns `amount` of `owner`'s tokens using the caller's allowance.
    """
    self._spend_allowance(owner, msg.sender, amount)
    self._burn(owner, amount)
