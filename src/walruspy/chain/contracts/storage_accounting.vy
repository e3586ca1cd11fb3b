# pragma version ~=0.4.3
"""
@title Future accounting ring buffer (storage fund)
@notice Port of Move `walrus::storage_accounting` (spec/walrus-system.md 2.1, 2.5).
    One slot per epoch from the current one to max_epochs_ahead - 1 epochs ahead, each
    with the capacity used in that epoch and the WAL paid for it (rewards to distribute
    when the epoch ends). Slot `offset` lives at (current_index + offset) % length; at an
    epoch change the current slot is popped and reused, empty, for the epoch `length`
    epochs later. Slot epochs are derived from `current_epoch` rather than stored, which
    keeps deployment cheap (Move stores them; `_pop_expand` keeps its check implicitly).
"""

# Move `system_state_inner::MAX_MAX_EPOCHS_AHEAD`: bounds the buffer and its loops.
MAX_MAX_EPOCHS_AHEAD: constant(uint32) = 1000


struct FutureAccounting:
    # Move `storage_accounting::FutureAccounting`; rewards in FROST (WAL base units).
    epoch: uint32
    used_capacity: uint64
    rewards_to_distribute: uint256


struct _Slot:
    used_capacity: uint64
    rewards_to_distribute: uint256


# Length of the ring: how many epochs ahead storage can be bought (Move `max_epochs_ahead`).
max_epochs_ahead: public(uint32)
_current_index: uint32
_current_epoch: uint32
_slots: HashMap[uint32, _Slot]


@internal
def _init(length: uint32, current_epoch: uint32):
    """
    @notice Port of Move `storage_accounting::ring_new`, starting at `current_epoch`.
    """
    assert length > 0 and length <= MAX_MAX_EPOCHS_AHEAD, "invalid max epochs ahead"
    self.max_epochs_ahead = length
    self._current_epoch = current_epoch


@internal
@view
def _index(epochs_in_future: uint32) -> uint32:
    """
    @notice Slot index of the epoch `epochs_in_future` epochs from now.
    """
    assert epochs_in_future < self.max_epochs_ahead, "too far in the future"
    return (self._current_index + epochs_in_future) % self.max_epochs_ahead


@internal
def _increase_used_capacity(epochs_in_future: uint32, amount: uint64, capacity: uint64) -> uint64:
    """
    @notice Port of Move `increase_used_capacity` on a ring slot, with the capacity check
        its callers make: the new total must not exceed `capacity`. Returns the new total.
    """
    index: uint32 = self._index(epochs_in_future)
    used: uint256 = convert(self._slots[index].used_capacity, uint256) + convert(amount, uint256)
    assert used <= convert(capacity, uint256), "storage capacity exceeded"
    self._slots[index].used_capacity = convert(used, uint64)
    return convert(used, uint64)


@internal
def _add_rewards(epochs_in_future: uint32, amount: uint256):
    """
    @notice Adds WAL to the rewards of a future epoch (Move `rewards_balance().join`).
    """
    index: uint32 = self._index(epochs_in_future)
    self._slots[index].rewards_to_distribute += amount


@internal
def _pop_expand() -> FutureAccounting:
    """
    @notice Port of Move `ring_pop_expand`: removes and returns the current epoch's
        slot, which becomes the empty slot of epoch current + length.
    """
    index: uint32 = self._current_index
    slot: _Slot = self._slots[index]
    popped: FutureAccounting = FutureAccounting(
        epoch=self._current_epoch,
        used_capacity=slot.used_capacity,
        rewards_to_distribute=slot.rewards_to_distribute,
    )
    self._slots[index] = empty(_Slot)
    self._current_index = (index + 1) % self.max_epochs_ahead
    self._current_epoch += 1
    return popped


@internal
@view
def _lookup(epochs_in_future: uint32) -> FutureAccounting:
    """
    @notice Port of Move `ring_lookup`.
    """
    slot: _Slot = self._slots[self._index(epochs_in_future)]
    return FutureAccounting(
        epoch=self._current_epoch + epochs_in_future,
        used_capacity=slot.used_capacity,
        rewards_to_distribute=slot.rewards_to_distribute,
    )


@external
@view
def future_accounting(epochs_in_future: uint32) -> FutureAccounting:
    """
    @notice The accounting of the epoch `epochs_in_future` epochs from now.
    """
    return self._lookup(epochs_in_future)
