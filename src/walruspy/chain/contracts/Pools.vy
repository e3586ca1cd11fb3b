# pragma version ~=0.4.3
# pragma evm-version prague
# pragma optimize codesize
"""
@title Walrus staking pools and staked WAL
@notice Port of Move `walrus::staking_pool`, `staked_wal`, `pool_exchange_rate` and
    `pending_values`, with the staker-facing entry functions of `walrus::staking`
    (spec/walrus-system.md 2.3, 2.5, 2.6). Staking.vy owns the nodes, the committees and
    the epoch; it creates a pool when a node registers, advances the pools at every epoch
    change and is told of every change of a pool's stake for its active set. The two are
    separate contracts because together they exceed the EVM's 24 KiB code limit.

    Theory of operation. Each node has one pool; its ID is the node ID. Anyone stakes
    WAL with a pool (`stake_with_pool`) and receives a StakedWal object, active from the
    next epoch, or from the one after once the next committee is selected. A pool counts
    in shares: its WAL balance over its share count is its exchange rate, recorded at
    every epoch the pool advances, so a StakedWal that keeps only its principal and
    activation epoch is worth principal x rate(withdrawal) / rate(activation). At an
    epoch change the rewards of a node of the old committee, minus the commission, raise
    its pool's balance and so the share price; pending stake and withdrawals take effect
    then. The commission added by an epoch change can be collected after the next
    voting_end. Withdrawing takes two steps (`request_withdraw_stake`, then
    `withdraw_stake` once the withdrawal epoch has come) unless the stake is not yet
    counted for a selected committee or the node is in no committee (one step).

    Pending values (Move `PendingValues`, a map epoch -> amount flushed up to an epoch)
    are only ever written for the current epoch E, E + 1 or E + 2, so each is a window
    packed into one word: the amount due by `base` and the amounts for base + 1 and
    base + 2. Rolling a window forward to the current epoch adds what became due, which
    is what Move's flush sums. Pre-active withdrawals are converted to shares when they
    become due, at the rate of the epoch their stake was active in (final by then).
    Amounts stay below 2**72 FROST (WAL's supply is 5 * 10**18).

    WAL held here: every StakedWal's principal, the pools' rewards and commission. None
    is created or lost: withdrawals pay principal plus rewards (capped by the pool's
    rewards, as Move does against rounding).
"""

import objects

initializes: objects

exports: (
    objects.owner_of,
    objects.kind_of,
)


interface WalToken:
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable
    def transferFrom(sender: address, receiver: address, amount: uint256) -> bool: nonpayable


interface StakingContract:
    def pool_context(node_id: bytes32) -> (uint32, bool, bool, bool): view
    def update_active_set(node_id: bytes32, stake: uint256): nonpayable


MAX_NODES: constant(uint256) = 150
N_BASIS_POINTS: constant(uint256) = 10_000
# Move `staked_wal::MIN_STAKING_THRESHOLD`: 1 WAL, for a stake and both halves of a split.
MIN_STAKING_THRESHOLD: constant(uint256) = 10**9
AMOUNT_MASK: constant(uint256) = 2**72 - 1
EPOCH_MASK: constant(uint256) = 2**32 - 1
# Binary search over a pool's recorded exchange rates: 2**40 epochs is plenty.
MAX_SEARCH_STEPS: constant(uint256) = 40

KIND_STAKED_WAL: constant(uint8) = 3

# A pool's meta word: exists (bit 0) | commission rate << 8 | activation epoch << 32 |
# latest epoch << 64 | number of recorded exchange rates << 96.
RATE_SHIFT: constant(uint256) = 8
ACTIVATION_SHIFT: constant(uint256) = 32
LATEST_SHIFT: constant(uint256) = 64
COUNT_SHIFT: constant(uint256) = 96


struct Pool:
    # Move `StakingPool` (its accounting half; Staking.vy keeps the node's record). The small
    # fields share one word, `meta` (see _meta), so that advancing a pool rewrites one slot.
    meta: uint256
    wal_balance: uint256
    num_shares: uint256
    rewards_pool: uint256
    commission: uint256
    # Commission added at the last epoch change, collectable after the next voting_end.
    blocked_commission: uint256
    commission_receiver: address


struct PoolInfo:
    # A pool as clients read it.
    exists: bool
    commission_rate: uint16
    activation_epoch: uint32
    latest_epoch: uint32
    wal_balance: uint256
    num_shares: uint256
    rewards_pool: uint256
    commission: uint256
    blocked_commission: uint256
    commission_receiver: address


struct StakedWal:
    # Move `StakedWal`; withdraw_epoch is 0 while staked.
    node_id: bytes32
    principal: uint256
    activation_epoch: uint32
    withdrawing: bool
    withdraw_epoch: uint32


struct Context:
    # Move `WalrusContext` for one pool: the epoch, whether the next committee is
    # selected, and whether the pool's node is in the current / next committee.
    epoch: uint32
    committee_selected: bool
    in_current: bool
    in_next: bool


wal: public(immutable(address))
staking: public(immutable(address))

_pools: HashMap[bytes32, Pool]
_pending_stake: HashMap[bytes32, uint256]
_pending_shares_withdraw: HashMap[bytes32, uint256]
_pre_active_withdrawals: HashMap[bytes32, uint256]
# Commission rates pending for an epoch, stored as rate + 1 (0: nothing pending).
_pending_commission_rate: HashMap[bytes32, uint256]
# Exchange rates in epoch order: epoch | wal amount << 32 | share amount << 104 (their count
# is in the pool's meta word).
_rates: HashMap[bytes32, HashMap[uint256, uint256]]

_staked_wal: HashMap[bytes32, StakedWal]


@deploy
def __init__(wal_token: address, staking_contract: address):
    """
    @notice The pools of `staking_contract` (Staking.vy), paid in `wal_token`.
    """
    assert wal_token != empty(address) and staking_contract != empty(address), "zero address"
    wal = wal_token
    staking = staking_contract


# === Packed values ===


@internal
@pure
def _pack(base: uint32, due: uint256, next1: uint256, next2: uint256) -> uint256:
    """
    @notice A window word; with nothing pending it is 0 whatever its base (an empty window
        rolls to any epoch unchanged), so that clearing a window clears its slot.
    """
    assert due <= AMOUNT_MASK and next1 <= AMOUNT_MASK and next2 <= AMOUNT_MASK, "amount too large"
    if due == 0 and next1 == 0 and next2 == 0:
        return 0
    return convert(base, uint256) | (due << 32) | (next1 << 104) | (next2 << 176)


@internal
@pure
def _unpack(packed: uint256) -> (uint32, uint256, uint256, uint256):
    return (
        convert(packed & EPOCH_MASK, uint32),
        (packed >> 32) & AMOUNT_MASK,
        (packed >> 104) & AMOUNT_MASK,
        (packed >> 176) & AMOUNT_MASK,
    )


@internal
@pure
def _roll(packed: uint256, epoch: uint32, replace: bool) -> uint256:
    """
    @notice The window moved forward to `epoch`: amounts whose epoch is due join the due
        amount (summed; for `replace`, as commission rates, the latest one wins).
    """
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(packed)
    for step: uint32 in range(2):
        if epoch > base + step:
            if not replace:
                due += next1
            elif next1 != 0:
                due = next1
            next1 = next2
            next2 = 0
    return self._pack(max(epoch, base), due, next1, next2)


@internal
@pure
def _add_at(packed: uint256, epoch: uint32, at: uint32, amount: uint256, replace: bool) -> uint256:
    """
    @notice Move `insert_or_add` (or `insert_or_replace`) for epoch `at` in E..E+2.
    """
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._roll(packed, epoch, replace))
    assert at >= epoch and at <= epoch + 2, "pending epoch out of range"
    if at == epoch:
        due = amount if replace else due + amount
    elif at == epoch + 1:
        next1 = amount if replace else next1 + amount
    else:
        next2 = amount if replace else next2 + amount
    return self._pack(epoch, due, next1, next2)


@internal
@pure
def _reduce_at(packed: uint256, epoch: uint32, at: uint32, amount: uint256) -> uint256:
    """
    @notice Move `pending_values::reduce` at epoch `at` (E + 1 or E + 2).
    """
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._roll(packed, epoch, False))
    if at == epoch + 1:
        assert next1 >= amount, "reduce value too large"
        next1 -= amount
    else:
        assert at == epoch + 2 and next2 >= amount, "reduce value too large"
        next2 -= amount
    return self._pack(epoch, due, next1, next2)


@internal
@pure
def _value_at(packed: uint256, epoch: uint32, at: uint32) -> uint256:
    """
    @notice Move `value_at`: the sum of the amounts pending up to epoch `at` (>= epoch).
    """
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._roll(packed, epoch, False))
    total: uint256 = due
    if at >= epoch + 1:
        total += next1
    if at >= epoch + 2:
        total += next2
    return total


# === The meta word ===


@internal
@pure
def _meta(exists: bool, rate: uint16, activation: uint32, latest: uint32, count: uint256) -> uint256:
    return (
        convert(exists, uint256)
        | (convert(rate, uint256) << RATE_SHIFT)
        | (convert(activation, uint256) << ACTIVATION_SHIFT)
        | (convert(latest, uint256) << LATEST_SHIFT)
        | (count << COUNT_SHIFT)
    )


@internal
@pure
def _unmeta(meta: uint256) -> (bool, uint16, uint32, uint32, uint256):
    """
    @notice exists, commission rate, activation epoch, latest epoch, rates recorded.
    """
    return (
        meta & 1 == 1,
        convert((meta >> RATE_SHIFT) & 65535, uint16),
        convert((meta >> ACTIVATION_SHIFT) & EPOCH_MASK, uint32),
        convert((meta >> LATEST_SHIFT) & EPOCH_MASK, uint32),
        meta >> COUNT_SHIFT,
    )


@internal
@view
def _exists(node_id: bytes32) -> bool:
    return self._pools[node_id].meta & 1 == 1


# === Exchange rates (Move `pool_exchange_rate`) ===


@internal
@pure
def _rate_word(epoch: uint32, wal_amount: uint256, share_amount: uint256) -> uint256:
    """
    @notice Move `pool_exchange_rate::new`: flat (no amounts) when either is 0.
    """
    assert share_amount <= wal_amount, "invalid exchange rate"
    if wal_amount == 0 or share_amount == 0:
        return convert(epoch, uint256)
    assert wal_amount <= AMOUNT_MASK, "amount too large"
    return convert(epoch, uint256) | (wal_amount << 32) | (share_amount << 104)


@internal
@pure
def _to_shares(rate: uint256, amount: uint256) -> uint256:
    wal_amount: uint256 = (rate >> 32) & AMOUNT_MASK
    share_amount: uint256 = rate >> 104
    if wal_amount == 0 or share_amount == 0:
        return amount
    return amount * share_amount // wal_amount


@internal
@pure
def _to_wal(rate: uint256, amount: uint256) -> uint256:
    wal_amount: uint256 = (rate >> 32) & AMOUNT_MASK
    share_amount: uint256 = rate >> 104
    if wal_amount == 0 or share_amount == 0:
        return amount
    return amount * wal_amount // share_amount


@internal
@view
def _rate_at(node_id: bytes32, epoch: uint32) -> uint256:
    """
    @notice Move `exchange_rate_at_epoch`: the rate recorded at the latest epoch <=
        `epoch`, flat before the pool's first record.
    """
    meta: uint256 = self._pools[node_id].meta
    if convert(epoch, uint256) < (meta >> ACTIVATION_SHIFT) & EPOCH_MASK:
        return 0
    low: uint256 = 0
    high: uint256 = meta >> COUNT_SHIFT
    for _: uint256 in range(MAX_SEARCH_STEPS):
        if low >= high:
            break
        middle: uint256 = (low + high) // 2
        if self._rates[node_id][middle] & EPOCH_MASK <= convert(epoch, uint256):
            low = middle + 1
        else:
            high = middle
    if low == 0:
        return 0
    return self._rates[node_id][low - 1]


# === Pool accounting ===


@internal
@view
def _context(node_id: bytes32) -> Context:
    assert self._exists(node_id), "unknown node"
    epoch: uint32 = 0
    selected: bool = False
    in_current: bool = False
    in_next: bool = False
    epoch, selected, in_current, in_next = staticcall StakingContract(staking).pool_context(node_id)
    return Context(epoch=epoch, committee_selected=selected, in_current=in_current, in_next=in_next)


@internal
def _roll_pool(node_id: bytes32, epoch: uint32):
    """
    @notice Moves the pool's pending windows to `epoch`; pre-active withdrawals that
        became due turn into shares to withdraw.
    """
    shares: uint256 = self._roll(self._pending_shares_withdraw[node_id], epoch, False)
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._pre_active_withdrawals[node_id])
    if epoch > base and (next1 != 0 or next2 != 0):
        # Entries are keyed by withdraw epoch = activation epoch + 1.
        converted: uint256 = self._to_shares(self._rate_at(node_id, base), next1)
        if base + 2 <= epoch:
            converted += self._to_shares(self._rate_at(node_id, base + 1), next2)
            next2 = 0
        shares = self._add_at(shares, epoch, epoch, converted, False)
        self._pre_active_withdrawals[node_id] = self._pack(epoch, 0, next2, 0)
    self._pending_shares_withdraw[node_id] = shares
    self._pending_stake[node_id] = self._roll(self._pending_stake[node_id], epoch, False)


@internal
@view
def _wal_balance_at(node_id: bytes32, epoch: uint32, at: uint32) -> uint256:
    """
    @notice Move `wal_balance_at_epoch` for `at` in E..E+2: balance plus pending stake
        minus pending withdrawals, at today's rate.
    """
    rate: uint256 = self._rate_word(epoch, self._pools[node_id].wal_balance, self._pools[node_id].num_shares)
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._pre_active_withdrawals[node_id])
    pre_active_shares: uint256 = 0
    if base + 1 <= at:
        pre_active_shares += self._to_shares(self._rate_at(node_id, base), next1)
    if base + 2 <= at:
        pre_active_shares += self._to_shares(self._rate_at(node_id, base + 1), next2)
    withdrawing: uint256 = self._to_wal(
        rate, self._value_at(self._pending_shares_withdraw[node_id], epoch, at) + pre_active_shares
    )
    return self._pools[node_id].wal_balance + self._value_at(self._pending_stake[node_id], epoch, at) - withdrawing


@internal
@view
def _stake_for_next_vote(node_id: bytes32, context: Context) -> uint256:
    """
    @notice The pool's stake as of the next committee selection: E + 2 once the next
        committee is selected, else E + 1 (what the active set holds).
    """
    at: uint32 = context.epoch + 1
    if context.committee_selected:
        at += 1
    return self._wal_balance_at(node_id, context.epoch, at)


@internal
@view
def _calculate_rewards(node_id: bytes32, principal: uint256, activation_epoch: uint32, withdraw_epoch: uint32) -> uint256:
    """
    @notice Move `staking_pool::calculate_rewards`.
    """
    shares: uint256 = self._to_shares(self._rate_at(node_id, activation_epoch), principal)
    value: uint256 = self._to_wal(self._rate_at(node_id, withdraw_epoch), shares)
    if value >= principal:
        return value - principal
    return 0


@internal
@view
def _can_withdraw_early(staked: StakedWal, context: Context) -> bool:
    """
    @notice Move `staked_wal::can_withdraw_early`: the stake is not yet counted for a
        selected committee.
    """
    if staked.withdrawing:
        return False
    return staked.activation_epoch == context.epoch + 2 or (
        staked.activation_epoch == context.epoch + 1 and not context.in_next
    )


# === Called by Staking ===


@internal
@view
def _only_staking():
    assert msg.sender == staking, "not the staking contract"


@external
def create_pool(node_id: bytes32, commission_rate: uint16, receiver: address, activation_epoch: uint32, epoch: uint32):
    """
    @notice Port of the accounting half of Move `staking_pool::new` (Staking only).
    """
    self._only_staking()
    assert not self._exists(node_id), "pool exists"
    assert convert(commission_rate, uint256) <= N_BASIS_POINTS, "incorrect commission rate"
    self._pools[node_id] = Pool(
        meta=self._meta(True, commission_rate, activation_epoch, epoch, 0),
        wal_balance=0,
        num_shares=0,
        rewards_pool=0,
        commission=0,
        blocked_commission=0,
        commission_receiver=receiver,
    )


@external
def advance_pool(node_id: bytes32, reward: uint256, epoch: uint32) -> uint256:
    """
    @notice Port of Move `staking_pool::advance_epoch` and `process_pending_stake` for
        the new epoch `epoch` (Staking only, which has sent the reward here). Returns the
        pool's stake for the next selection (at epoch + 1).
    """
    self._only_staking()
    exists: bool = False
    commission_rate: uint16 = 0
    activation: uint32 = 0
    latest: uint32 = 0
    count: uint256 = 0
    exists, commission_rate, activation, latest, count = self._unmeta(self._pools[node_id].meta)
    assert epoch > latest, "pool already advanced"
    self._roll_pool(node_id, epoch)
    wal_balance: uint256 = self._pools[node_id].wal_balance
    assert reward == 0 or wal_balance > 0, "rewards for an empty pool"
    commission: uint256 = reward * convert(commission_rate, uint256) // N_BASIS_POINTS
    if commission != 0:
        self._pools[node_id].commission += commission
        self._pools[node_id].blocked_commission += commission
    base: uint32 = 0
    due: uint256 = 0
    next1: uint256 = 0
    next2: uint256 = 0
    base, due, next1, next2 = self._unpack(self._roll(self._pending_commission_rate[node_id], epoch, True))
    if due != 0:
        commission_rate = convert(due - 1, uint16)
        self._pending_commission_rate[node_id] = self._pack(epoch, 0, next1, next2)
    wal_balance += reward - commission
    if reward != commission:
        self._pools[node_id].rewards_pool += reward - commission
    # Move `process_pending_stake`: record today's rate, then apply stake and withdrawals.
    rate: uint256 = self._rate_word(epoch, wal_balance, self._pools[node_id].num_shares)
    self._rates[node_id][count] = rate
    self._pools[node_id].meta = self._meta(True, commission_rate, activation, epoch, count + 1)
    stake: uint256 = 0
    base, stake, next1, next2 = self._unpack(self._pending_stake[node_id])
    self._pending_stake[node_id] = self._pack(epoch, 0, next1, next2)
    shares: uint256 = 0
    base, shares, next1, next2 = self._unpack(self._pending_shares_withdraw[node_id])
    self._pending_shares_withdraw[node_id] = self._pack(epoch, 0, next1, next2)
    wal_balance += stake
    withdrawal: uint256 = self._to_wal(rate, shares)
    assert wal_balance >= withdrawal, "calculation error"
    wal_balance -= withdrawal
    self._pools[node_id].wal_balance = wal_balance
    self._pools[node_id].num_shares = self._to_shares(rate, wal_balance)
    return self._wal_balance_at(node_id, epoch, epoch + 1)


@external
def clear_blocked_commission(node_ids: DynArray[bytes32, MAX_NODES]):
    """
    @notice Move `clear_previous_committee_blocked_commission` (Staking only, at
        voting_end).
    """
    self._only_staking()
    for node_id: bytes32 in node_ids:
        self._pools[node_id].blocked_commission = 0


@external
def set_next_commission(node_id: bytes32, commission_rate: uint16, epoch: uint32):
    """
    @notice Port of Move `staking_pool::set_next_commission`: from epoch + 2 (Staking
        only, for the node's operator).
    """
    self._only_staking()
    assert convert(commission_rate, uint256) <= N_BASIS_POINTS, "incorrect commission rate"
    self._pending_commission_rate[node_id] = self._add_at(
        self._pending_commission_rate[node_id], epoch, epoch + 2, convert(commission_rate, uint256) + 1, True
    )


# === Staking and withdrawing ===


@internal
@view
def _own_staked_wal(staked_wal_id: bytes32) -> StakedWal:
    assert objects.kind_of[staked_wal_id] == KIND_STAKED_WAL, "unknown staked wal"
    assert objects.owner_of[staked_wal_id] == msg.sender, "not the owner"
    return self._staked_wal[staked_wal_id]


@internal
def _new_staked_wal(owner: address, staked: StakedWal) -> bytes32:
    staked_wal_id: bytes32 = objects._new_id()
    self._staked_wal[staked_wal_id] = staked
    objects._add(staked_wal_id, KIND_STAKED_WAL, owner)
    return staked_wal_id


@internal
def _destroy_staked_wal(staked_wal_id: bytes32):
    objects._remove(staked_wal_id)
    self._staked_wal[staked_wal_id] = empty(StakedWal)


@internal
def _report_stake(node_id: bytes32, context: Context):
    extcall StakingContract(staking).update_active_set(node_id, self._stake_for_next_vote(node_id, context))


@external
def stake_with_pool(amount: uint256, node_id: bytes32) -> bytes32:
    """
    @notice Port of Move `staking::stake_with_pool`: pulls `amount` WAL (approve this
        contract first) into the pool of `node_id`; the stake counts from E + 1, or E + 2
        once the next committee is selected. Returns the StakedWal ID.
    """
    context: Context = self._context(node_id)
    assert amount >= MIN_STAKING_THRESHOLD, "stake below threshold"
    assert extcall WalToken(wal).transferFrom(msg.sender, self, amount), "unpaid"
    self._roll_pool(node_id, context.epoch)
    activation_epoch: uint32 = context.epoch + 1
    if context.committee_selected:
        activation_epoch += 1
    self._pending_stake[node_id] = self._add_at(self._pending_stake[node_id], context.epoch, activation_epoch, amount, False)
    staked_wal_id: bytes32 = self._new_staked_wal(
        msg.sender,
        StakedWal(node_id=node_id, principal=amount, activation_epoch=activation_epoch, withdrawing=False, withdraw_epoch=0),
    )
    self._report_stake(node_id, context)
    return staked_wal_id


@external
def request_withdraw_stake(staked_wal_id: bytes32):
    """
    @notice Port of Move `staking::request_withdraw_stake`: the stake leaves at E + 2 if
        its node is in the next committee, at E + 1 if only in the current one; stake
        counted for the next committee but not yet active leaves one epoch after its
        activation. Stake that can be withdrawn at once must use `withdraw_stake`.
    """
    staked: StakedWal = self._own_staked_wal(staked_wal_id)
    node_id: bytes32 = staked.node_id
    context: Context = self._context(node_id)
    assert not staked.withdrawing, "not staked"
    assert not self._can_withdraw_early(staked, context), "withdraw directly"
    epoch: uint32 = context.epoch
    self._roll_pool(node_id, epoch)
    withdraw_epoch: uint32 = 0
    if staked.activation_epoch == epoch + 1:
        withdraw_epoch = epoch + 2
        self._pre_active_withdrawals[node_id] = self._add_at(
            self._pre_active_withdrawals[node_id], epoch, withdraw_epoch, staked.principal, False
        )
    else:
        assert staked.activation_epoch <= epoch, "activation epoch not reached"
        assert context.in_next or context.in_current, "withdraw directly"
        withdraw_epoch = epoch + 1
        if context.in_next:
            withdraw_epoch = epoch + 2
        shares: uint256 = self._to_shares(self._rate_at(node_id, staked.activation_epoch), staked.principal)
        assert shares != 0, "zero shares"
        self._pending_shares_withdraw[node_id] = self._add_at(
            self._pending_shares_withdraw[node_id], epoch, withdraw_epoch, shares, False
        )
    self._staked_wal[staked_wal_id].withdrawing = True
    self._staked_wal[staked_wal_id].withdraw_epoch = withdraw_epoch
    self._report_stake(node_id, context)


@external
def withdraw_stake(staked_wal_id: bytes32) -> uint256:
    """
    @notice Port of Move `staking::withdraw_stake`: pays the owner principal + rewards
        once the withdrawal epoch has come, the principal at once for stake not yet
        counted for a selected committee, or everything at once when the node is in
        neither the current nor the next committee. Returns the amount paid.
    """
    staked: StakedWal = self._own_staked_wal(staked_wal_id)
    node_id: bytes32 = staked.node_id
    context: Context = self._context(node_id)
    epoch: uint32 = context.epoch
    self._roll_pool(node_id, epoch)
    rewards: uint256 = 0
    if self._can_withdraw_early(staked, context) or (
        not context.in_current and not context.in_next and not staked.withdrawing and staked.activation_epoch > epoch
    ):
        self._pending_stake[node_id] = self._reduce_at(
            self._pending_stake[node_id], epoch, staked.activation_epoch, staked.principal
        )
    elif not context.in_current and not context.in_next and not staked.withdrawing:
        # One step for an inactive node: withdraw now, with today as the withdraw epoch.
        shares: uint256 = self._to_shares(self._rate_at(node_id, staked.activation_epoch), staked.principal)
        self._pending_shares_withdraw[node_id] = self._add_at(
            self._pending_shares_withdraw[node_id], epoch, epoch, shares, False
        )
        rewards = self._calculate_rewards(node_id, staked.principal, staked.activation_epoch, epoch)
    else:
        assert staked.withdrawing, "not withdrawing"
        assert staked.withdraw_epoch <= epoch, "withdraw epoch not reached"
        assert staked.activation_epoch <= epoch, "activation epoch not reached"
        rewards = self._calculate_rewards(node_id, staked.principal, staked.activation_epoch, staked.withdraw_epoch)
    rewards = min(rewards, self._pools[node_id].rewards_pool)
    self._pools[node_id].rewards_pool -= rewards
    self._destroy_staked_wal(staked_wal_id)
    self._report_stake(node_id, context)
    amount: uint256 = staked.principal + rewards
    assert extcall WalToken(wal).transfer(msg.sender, amount), "transfer failed"
    return amount


@external
def split_staked_wal(staked_wal_id: bytes32, amount: uint256) -> bytes32:
    """
    @notice Port of Move `staked_wal::split`: moves `amount` of the principal into a new
        StakedWal in the same state; both parts keep at least 1 WAL. Returns its ID.
    """
    staked: StakedWal = self._own_staked_wal(staked_wal_id)
    assert staked.principal > amount, "invalid amount"
    assert amount >= MIN_STAKING_THRESHOLD and staked.principal - amount >= MIN_STAKING_THRESHOLD, "stake below threshold"
    self._staked_wal[staked_wal_id].principal = staked.principal - amount
    part: StakedWal = staked
    part.principal = amount
    return self._new_staked_wal(msg.sender, part)


@external
def join_staked_wal(staked_wal_id: bytes32, other_id: bytes32):
    """
    @notice Port of Move `staked_wal::join`: merges `other_id` into `staked_wal_id`
        (same node; both staked with the same activation epoch, or both withdrawing at
        the same epoch).
    """
    staked: StakedWal = self._own_staked_wal(staked_wal_id)
    other: StakedWal = self._own_staked_wal(other_id)
    assert staked_wal_id != other_id and staked.node_id == other.node_id, "metadata mismatch"
    assert staked.activation_epoch == other.activation_epoch, "metadata mismatch"
    assert staked.withdrawing == other.withdrawing, "metadata mismatch"
    assert staked.withdraw_epoch == other.withdraw_epoch, "metadata mismatch"
    self._staked_wal[staked_wal_id].principal = staked.principal + other.principal
    self._destroy_staked_wal(other_id)


@external
def transfer_staked_wal(staked_wal_id: bytes32, to: address):
    """
    @notice Gives a StakedWal to `to`.
    """
    self._own_staked_wal(staked_wal_id)
    objects._transfer(staked_wal_id, to)


@external
def collect_commission(node_id: bytes32) -> uint256:
    """
    @notice Port of Move `collect_commission`: pays the pool's collectable commission
        (all but what the last epoch change added, until the next voting_end) to its
        receiver, who calls. Returns the amount.
    """
    assert self._exists(node_id), "unknown node"
    assert msg.sender == self._pools[node_id].commission_receiver, "not the commission receiver"
    total: uint256 = self._pools[node_id].commission
    blocked: uint256 = self._pools[node_id].blocked_commission
    if total <= blocked:
        return 0
    self._pools[node_id].commission = blocked
    assert extcall WalToken(wal).transfer(msg.sender, total - blocked), "transfer failed"
    return total - blocked


@external
def set_commission_receiver(node_id: bytes32, receiver: address):
    """
    @notice Port of Move `set_commission_receiver` (the current receiver calls).
    """
    assert self._exists(node_id), "unknown node"
    assert msg.sender == self._pools[node_id].commission_receiver, "not the commission receiver"
    assert receiver != empty(address), "zero address"
    self._pools[node_id].commission_receiver = receiver


# === Views ===


@external
@view
def pools(node_id: bytes32) -> PoolInfo:
    """
    @notice The node's pool (all zero for an unknown node).
    """
    pool: Pool = self._pools[node_id]
    exists: bool = False
    commission_rate: uint16 = 0
    activation: uint32 = 0
    latest: uint32 = 0
    count: uint256 = 0
    exists, commission_rate, activation, latest, count = self._unmeta(pool.meta)
    return PoolInfo(
        exists=exists,
        commission_rate=commission_rate,
        activation_epoch=activation,
        latest_epoch=latest,
        wal_balance=pool.wal_balance,
        num_shares=pool.num_shares,
        rewards_pool=pool.rewards_pool,
        commission=pool.commission,
        blocked_commission=pool.blocked_commission,
        commission_receiver=pool.commission_receiver,
    )


@external
@view
def stake_for_next_vote(node_id: bytes32) -> uint256:
    """
    @notice The pool's stake as of the next committee selection.
    """
    return self._stake_for_next_vote(node_id, self._context(node_id))


@external
@view
def wal_balance_at_epoch(node_id: bytes32, epoch: uint32) -> uint256:
    """
    @notice Port of Move `wal_balance_at_epoch` for `epoch` in E..E+2.
    """
    current: uint32 = self._context(node_id).epoch
    assert epoch >= current and epoch <= current + 2, "epoch out of range"
    return self._wal_balance_at(node_id, current, epoch)


@external
@view
def calculate_rewards(node_id: bytes32, principal: uint256, activation_epoch: uint32, withdraw_epoch: uint32) -> uint256:
    """
    @notice Port of Move `staking::calculate_rewards`.
    """
    assert self._exists(node_id), "unknown node"
    return self._calculate_rewards(node_id, principal, activation_epoch, withdraw_epoch)


@external
@view
def exchange_rate_at(node_id: bytes32, epoch: uint32) -> (uint256, uint256):
    """
    @notice The pool's (WAL, shares) exchange rate at `epoch`; (0, 0) is one to one.
    """
    rate: uint256 = self._rate_at(node_id, epoch)
    return (rate >> 32) & AMOUNT_MASK, rate >> 104


@external
@view
def staked_wal(staked_wal_id: bytes32) -> StakedWal:
    """
    @notice The StakedWal record (zeros for an unknown ID).
    """
    return self._staked_wal[staked_wal_id]


@external
@view
def can_withdraw_staked_wal_early(staked_wal_id: bytes32) -> bool:
    """
    @notice Port of Move `can_withdraw_staked_wal_early`.
    """
    staked: StakedWal = self._staked_wal[staked_wal_id]
    return self._can_withdraw_early(staked, self._context(staked.node_id))


@external
@view
def staked_wal_count_of(owner: address) -> uint256:
    """
    @notice Number of StakedWal objects `owner` holds.
    """
    return objects._owned_count[KIND_STAKED_WAL][owner]


@external
@view
def staked_wal_ids_of(owner: address, start: uint256, count: uint256) -> DynArray[bytes32, objects.MAX_PAGE]:
    """
    @notice A page of the StakedWal IDs `owner` holds; order changes on removal.
    """
    return objects._page(KIND_STAKED_WAL, owner, start, count)
