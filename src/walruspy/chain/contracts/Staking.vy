# pragma version ~=0.4.3
# pragma evm-version prague
# pragma optimize codesize
"""
@title Walrus Staking: storage nodes, committee selection and the epoch change
@notice Port of Move `walrus::staking`, `staking_inner`, `storage_node` and `active_set`
    (spec/walrus-system.md 2.2 to 2.6). Pools.vy keeps the staking pools and StakedWal
    objects (Move `staking_pool`, `staked_wal`); Selection.vy computes D'Hondt
    apportionment, the shard transition and the vote quantiles as pure functions. They
    are separate contracts because together they exceed the EVM's 24 KiB code limit.

    Theory of operation. Anyone registers a storage node (`register_candidate`) with a
    BLS key and its proof of possession for the sender and the current epoch; this
    creates the node's pool in Pools.vy (its ID is the node ID) and gives the operator a
    StorageNodeCap object, which gates the node's setters and `epoch_sync_done`. Pools
    report every change of a pool's stake for the next selection (`update_active_set`);
    the active set keeps the (at most 150) nodes with the most stake. Each epoch goes
    through three states, with d the epoch duration:

        EpochChangeDone(t) --voting_end, t + d/2--> NextParamsSelected(t)
        NextParamsSelected(t) --initiate_epoch_change, t + d--> EpochChangeSync(w)
        EpochChangeSync(w) --epoch_sync_done, w reaches 2f+1 shards--> EpochChangeDone(now)

    `voting_end` apportions the shards over the active set by stake (nodes with none
    drop out), keeps each node's shards in place as far as it can (Selection.transition)
    and takes the capacity vote. `initiate_epoch_change` installs the selected committee's
    BLS keys in a Committee.vy (two alternate, so the previous committee stays readable),
    asks System to start the epoch and pay the ending epoch's rewards, and advances the
    pools of the old committee (with their rewards) and of the joining nodes; the prices
    are then the vote quantile of the new committee. The new committee's members report
    with `epoch_sync_done` once they hold their shards; at 2f + 1 shards the epoch change
    is done and the next epoch's clock starts. Epoch 0 has no committee and may end at
    `first_epoch_start_s`.

    Porting notes. Sui objects are id-keyed records with an owner (objects.vy). The next
    epoch's BLS keys are read when the epoch change starts (Move copies them at
    voting_end). Node metadata, pool states (Withdrawing), governance, slashing and
    upgrade votes are not ported. Committees are kept for epochs e - 1, e and e + 1 in a
    ring of three slots, shard lists packed two bytes a shard.
"""

import objects

initializes: objects

exports: (
    objects.owner_of,
    objects.kind_of,
)


interface WalToken:
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable


interface PoolsContract:
    def create_pool(node_id: bytes32, commission_rate: uint16, receiver: address, activation_epoch: uint32, epoch: uint32): nonpayable
    def advance_pool(node_id: bytes32, reward: uint256, epoch: uint32) -> uint256: nonpayable
    def clear_blocked_commission(node_ids: DynArray[bytes32, MAX_NODES]): nonpayable
    def set_next_commission(node_id: bytes32, commission_rate: uint16, epoch: uint32): nonpayable
    def stake_for_next_vote(node_id: bytes32) -> uint256: view
    def staking() -> address: view


interface SystemContract:
    def advance_epoch_with(
        next_committee: address, capacity: uint64
    ) -> (DynArray[bytes32, MAX_NODES], DynArray[uint256, MAX_NODES]): nonpayable
    def set_prices(storage_price: uint64, write_price: uint64): nonpayable
    def staking() -> address: view


interface CommitteeContract:
    def install(
        epoch: uint32,
        node_ids: DynArray[bytes32, MAX_NODES],
        public_keys: DynArray[Bytes[128], MAX_NODES],
        shard_owners: Bytes[32 * OWNER_WORDS],
    ): nonpayable
    def staking() -> address: view
    def check_proof_of_possession(
        public_key: Bytes[G1_POINT_BYTES], proof_of_possession: Bytes[G2_POINT_BYTES], account: address, epoch: uint32
    ) -> bool: view


interface SelectionContract:
    def dhondt(n_shards: uint16, stakes: DynArray[uint256, MAX_NODES]) -> DynArray[uint16, MAX_NODES]: view
    def initialize(
        node_ids: DynArray[bytes32, MAX_NODES], counts: DynArray[uint16, MAX_NODES]
    ) -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]): view
    def transition(
        cur_ids: DynArray[bytes32, MAX_NODES],
        cur_counts: DynArray[uint16, MAX_NODES],
        cur_shards: DynArray[uint16, MAX_SHARDS],
        new_ids: DynArray[bytes32, MAX_NODES],
        new_counts: DynArray[uint16, MAX_NODES],
    ) -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]): view
    def quorum_above(values: DynArray[uint64, MAX_NODES], weights: DynArray[uint16, MAX_NODES], n_shards: uint16) -> uint64: view
    def quorum_below(values: DynArray[uint64, MAX_NODES], weights: DynArray[uint16, MAX_NODES], n_shards: uint16) -> uint64: view


# Move `TEMP_ACTIVE_SET_SIZE_LIMIT`: at most 150 nodes in the active set and a committee.
MAX_NODES: constant(uint256) = 150
# Walrus's shard count on Mainnet and Testnet bounds ours.
MAX_SHARDS: constant(uint256) = 1000
MAX_NAME_BYTES: constant(uint256) = 100
# EIP-2537 encodings of a BLS public key (G1) and signature (G2).
G1_POINT_BYTES: constant(uint256) = 128
G2_POINT_BYTES: constant(uint256) = 256
MAX_NETWORK_ADDRESS_BYTES: constant(uint256) = 259
# Walrus's network keys are Ed25519 (32 bytes); room for other schemes.
MAX_NETWORK_PUBLIC_KEY_BYTES: constant(uint256) = 64
N_BASIS_POINTS: constant(uint256) = 10_000

# Shard lists packed two bytes a value in whole words (63 words hold 1000 values).
PACKED_WORDS: constant(uint256) = (2 * MAX_SHARDS + 31) // 32
PACKED_BYTES: constant(uint256) = 32 * PACKED_WORDS
OWNER_WORDS: constant(uint256) = (MAX_SHARDS + 31) // 32

KIND_NODE_CAP: constant(uint8) = 4

# Epoch states (Move `EpochState`).
EPOCH_CHANGE_DONE: constant(uint8) = 0
NEXT_PARAMS_SELECTED: constant(uint8) = 1
EPOCH_CHANGE_SYNC: constant(uint8) = 2


struct Node:
    # Move `StorageNodeInfo` and the pool's `VotingParams`.
    cap_id: bytes32
    name: String[MAX_NAME_BYTES]
    network_address: String[MAX_NETWORK_ADDRESS_BYTES]
    public_key: Bytes[G1_POINT_BYTES]
    next_public_key: Bytes[G1_POINT_BYTES]
    network_public_key: Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES]
    storage_price: uint64
    write_price: uint64
    node_capacity: uint64


struct ActiveEntry:
    node_id: bytes32
    stake: uint256


struct SelectedCommittee:
    # Move `committee::Committee`: node IDs ascending, 2-byte big-endian shard counts and
    # the concatenation of each node's ordered shard list (2 bytes per shard index).
    node_ids: DynArray[bytes32, MAX_NODES]
    counts: Bytes[PACKED_BYTES]
    shards: Bytes[PACKED_BYTES]


event EpochParametersSelected:
    next_epoch: uint32


event EpochChangeDone:
    epoch: uint32


event ShardsReceived:
    epoch: uint32
    shards: DynArray[uint16, MAX_SHARDS]


event PricesUpdated:
    epoch: uint32
    storage_price: uint64
    write_price: uint64


event CandidateRegistered:
    node_id: indexed(bytes32)
    cap_id: bytes32


wal: public(immutable(address))
selection: public(immutable(address))
n_shards: public(immutable(uint16))
epoch_duration_s: public(immutable(uint64))
# Epoch 0 lasts until then (Move `first_epoch_start`).
first_epoch_start_s: public(immutable(uint64))

# System.vy and Pools.vy, set once by the deployer with `attach`, and the two Committee.vy
# contracts that alternate: the committee of epoch e lives in committee_contracts[e % 2].
system: public(address)
pools: public(address)
committee_contracts: public(address[2])
_deployer: address

epoch: public(uint32)
epoch_state: public(uint8)
# EpochChangeDone / NextParamsSelected: when the current epoch's change completed.
epoch_state_time_s: public(uint64)
# EpochChangeSync: the shard weight of the new committee that reported its shards.
sync_weight: public(uint16)
# The capacity voted at voting_end for the next epoch (Move `EpochParams.capacity`).
next_capacity: public(uint64)

# Registered nodes, by node ID, and in registration order.
_nodes: HashMap[bytes32, Node]
_node_count: uint256
_node_at: HashMap[uint256, bytes32]
# StorageNodeCap: its node, and the last epoch it reported its shards received.
cap_node_id: public(HashMap[bytes32, bytes32])
cap_last_epoch_sync_done: public(HashMap[bytes32, uint32])

_active: DynArray[ActiveEntry, MAX_NODES]
# Position + 1 of each node in _active (0: not in the active set).
_active_position: HashMap[bytes32, uint256]
active_total_stake: public(uint256)

# Committees of epochs e - 1, e and e + 1 at slot (epoch % 3).
_committees: HashMap[uint256, SelectedCommittee]
# Membership: node ID -> slot -> (epoch + 1) << 16 | index, for the committee of that epoch.
_membership: HashMap[bytes32, HashMap[uint256, uint256]]
_has_next_committee: bool


@deploy
def __init__(
    wal_token: address,
    selection_contract: address,
    n_shards_: uint16,
    epoch_duration_s_: uint64,
    epoch_zero_duration_s: uint64,
):
    """
    @notice Port of Move `staking_inner::new`: epoch 0, no committee, state
        EpochChangeDone(now); epoch 1 may start epoch_zero_duration_s from now.
    """
    assert wal_token != empty(address) and selection_contract.is_contract, "zero address"
    assert n_shards_ > 0 and convert(n_shards_, uint256) <= MAX_SHARDS, "invalid n_shards"
    assert epoch_duration_s_ > 0, "zero epoch duration"
    wal = wal_token
    selection = selection_contract
    n_shards = n_shards_
    epoch_duration_s = epoch_duration_s_
    first_epoch_start_s = convert(block.timestamp, uint64) + epoch_zero_duration_s
    self.epoch_state_time_s = convert(block.timestamp, uint64)
    self._deployer = msg.sender


@external
def attach(system_contract: address, pools_contract: address, committee_a: address, committee_b: address):
    """
    @notice Links System.vy, Pools.vy and two empty Committee.vy contracts handed over to
        this contract (`Committee.hand_over`); the deployer calls it once.
    """
    assert msg.sender == self._deployer, "not the deployer"
    assert self.system == empty(address), "already attached"
    assert staticcall SystemContract(system_contract).staking() == self, "system not run by this staking"
    assert staticcall PoolsContract(pools_contract).staking() == self, "pools not run by this staking"
    assert staticcall CommitteeContract(committee_a).staking() == self, "committee not handed over"
    assert staticcall CommitteeContract(committee_b).staking() == self, "committee not handed over"
    assert committee_a != committee_b, "committees must differ"
    self.system = system_contract
    self.pools = pools_contract
    self.committee_contracts = [committee_a, committee_b]


# === Active set (Move `active_set`) ===


@internal
def _update_active_set(node_id: bytes32, stake: uint256):
    """
    @notice Move `active_set::insert_or_update`: a node with no stake leaves; a new node
        enters if there is room or it has more stake than the least staked member,
        which it replaces.
    """
    position: uint256 = self._active_position[node_id]
    if position != 0:
        index: uint256 = position - 1
        self.active_total_stake = self.active_total_stake + stake - self._active[index].stake
        if stake != 0:
            self._active[index].stake = stake
            return
        # Move's swap_remove: the last entry takes the leaver's place.
        last: ActiveEntry = self._active.pop()
        self._active_position[node_id] = 0
        if last.node_id != node_id:
            self._active[index] = last
            self._active_position[last.node_id] = position
        return
    if stake == 0:
        return
    size: uint256 = len(self._active)
    if size < MAX_NODES:
        self._active.append(ActiveEntry(node_id=node_id, stake=stake))
        self._active_position[node_id] = size + 1
        self.active_total_stake += stake
        return
    # Full: replace the entry with the least stake if it has less than this one.
    min_stake: uint256 = stake
    min_index: uint256 = MAX_NODES
    for i: uint256 in range(MAX_NODES):
        if self._active[i].stake < min_stake:
            min_stake = self._active[i].stake
            min_index = i
    if min_index < MAX_NODES:
        self.active_total_stake = self.active_total_stake - min_stake + stake
        self._active_position[self._active[min_index].node_id] = 0
        self._active[min_index] = ActiveEntry(node_id=node_id, stake=stake)
        self._active_position[node_id] = min_index + 1


# === Committees ===


@internal
@pure
def _u16_at(data: Bytes[PACKED_BYTES], index: uint256) -> uint16:
    return convert(convert(slice(data, 2 * index, 2), bytes2), uint16)


@internal
@pure
def _pack_u16s(values: DynArray[uint16, MAX_SHARDS]) -> Bytes[PACKED_BYTES]:
    """
    @notice `values` as 2-byte big-endian integers (Vyper cannot grow Bytes in a loop,
        so they are assembled in words and ABI-encoded).
    """
    words: uint256[PACKED_WORDS] = empty(uint256[PACKED_WORDS])
    for i: uint256 in range(len(values), bound=MAX_SHARDS):
        words[i // 16] |= convert(values[i], uint256) << (240 - 16 * (i % 16))
    return slice(abi_encode(words), 0, 2 * len(values))


@internal
@view
def _member_index(epoch: uint32, node_id: bytes32) -> (bool, uint256):
    """
    @notice Whether `node_id` is in the committee of `epoch` (e - 1, e or e + 1), and its
        index there.
    """
    tag: uint256 = self._membership[node_id][convert(epoch, uint256) % 3]
    if tag >> 16 != convert(epoch, uint256) + 1:
        return False, 0
    return True, tag & 65535


@internal
@view
def _in_current(node_id: bytes32) -> bool:
    found: bool = False
    index: uint256 = 0
    found, index = self._member_index(self.epoch, node_id)
    return found


@internal
@view
def _in_next(node_id: bytes32) -> bool:
    if not self._has_next_committee:
        return False
    found: bool = False
    index: uint256 = 0
    found, index = self._member_index(self.epoch + 1, node_id)
    return found


@internal
@view
def _committee_view(
    slot: uint256,
) -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice The committee at `slot` unpacked: node IDs, shard counts, concatenated shards.
    """
    stored: SelectedCommittee = self._committees[slot]
    counts: DynArray[uint16, MAX_NODES] = []
    shards: DynArray[uint16, MAX_SHARDS] = []
    for i: uint256 in range(len(stored.node_ids), bound=MAX_NODES):
        counts.append(self._u16_at(stored.counts, i))
    for i: uint256 in range(len(stored.shards) // 2, bound=MAX_SHARDS):
        shards.append(self._u16_at(stored.shards, i))
    return stored.node_ids, counts, shards


@internal
def _store_committee(
    epoch: uint32,
    node_ids: DynArray[bytes32, MAX_NODES],
    counts: DynArray[uint16, MAX_NODES],
    shards: DynArray[uint16, MAX_SHARDS],
):
    slot: uint256 = convert(epoch, uint256) % 3
    self._committees[slot] = SelectedCommittee(
        node_ids=node_ids, counts=self._pack_u16s(counts), shards=self._pack_u16s(shards)
    )
    for i: uint256 in range(len(node_ids), bound=MAX_NODES):
        self._membership[node_ids[i]][slot] = ((convert(epoch, uint256) + 1) << 16) | i


@internal
def _select_committee():
    """
    @notice Port of Move `select_committee_and_calculate_votes`: apportions the shards
        over the active set (nodes with none are dropped), moves as few shards as it can
        from the current committee, and takes the capacity vote (`quorum_above` over each
        node's capacity scaled to the whole system: capacity x n_shards / its shards).
    """
    assert not self._has_next_committee, "committee already selected"
    active_ids: DynArray[bytes32, MAX_NODES] = []
    stakes: DynArray[uint256, MAX_NODES] = []
    for entry: ActiveEntry in self._active:
        active_ids.append(entry.node_id)
        stakes.append(entry.stake)
    assert self.active_total_stake > 0, "no stake"
    apportioned: DynArray[uint16, MAX_NODES] = staticcall SelectionContract(selection).dhondt(n_shards, stakes)
    new_ids: DynArray[bytes32, MAX_NODES] = []
    new_counts: DynArray[uint16, MAX_NODES] = []
    for i: uint256 in range(len(active_ids), bound=MAX_NODES):
        if apportioned[i] > 0:
            new_ids.append(active_ids[i])
            new_counts.append(apportioned[i])
    ids: DynArray[bytes32, MAX_NODES] = []
    counts: DynArray[uint16, MAX_NODES] = []
    shards: DynArray[uint16, MAX_SHARDS] = []
    current_slot: uint256 = convert(self.epoch, uint256) % 3
    if len(self._committees[current_slot].node_ids) == 0:
        ids, counts, shards = staticcall SelectionContract(selection).initialize(new_ids, new_counts)
    else:
        cur_ids: DynArray[bytes32, MAX_NODES] = []
        cur_counts: DynArray[uint16, MAX_NODES] = []
        cur_shards: DynArray[uint16, MAX_SHARDS] = []
        cur_ids, cur_counts, cur_shards = self._committee_view(current_slot)
        ids, counts, shards = staticcall SelectionContract(selection).transition(
            cur_ids, cur_counts, cur_shards, new_ids, new_counts
        )
    self._store_committee(self.epoch + 1, ids, counts, shards)
    self._has_next_committee = True
    capacities: DynArray[uint64, MAX_NODES] = []
    for i: uint256 in range(len(ids), bound=MAX_NODES):
        vote: uint256 = convert(self._nodes[ids[i]].node_capacity, uint256) * convert(n_shards, uint256) // convert(counts[i], uint256)
        capacities.append(convert(min(vote, convert(max_value(uint64), uint256)), uint64))
    self.next_capacity = staticcall SelectionContract(selection).quorum_above(capacities, counts, n_shards)


@internal
def _update_prices():
    """
    @notice Port of Move `recalculate_prices` + `update_prices`: `quorum_below` of the
        current committee's price votes, weighted by shards, applied in System at once.
    """
    if self.system == empty(address):
        return
    ids: DynArray[bytes32, MAX_NODES] = []
    counts: DynArray[uint16, MAX_NODES] = []
    shards: DynArray[uint16, MAX_SHARDS] = []
    ids, counts, shards = self._committee_view(convert(self.epoch, uint256) % 3)
    if len(ids) == 0:
        return
    storage_votes: DynArray[uint64, MAX_NODES] = []
    write_votes: DynArray[uint64, MAX_NODES] = []
    for node_id: bytes32 in ids:
        storage_votes.append(self._nodes[node_id].storage_price)
        write_votes.append(self._nodes[node_id].write_price)
    storage_price: uint64 = staticcall SelectionContract(selection).quorum_below(storage_votes, counts, n_shards)
    write_price: uint64 = staticcall SelectionContract(selection).quorum_below(write_votes, counts, n_shards)
    extcall SystemContract(self.system).set_prices(storage_price, write_price)
    log PricesUpdated(epoch=self.epoch, storage_price=storage_price, write_price=write_price)


# === Epoch change ===


@external
def voting_end():
    """
    @notice Port of Move `staking::voting_end`: permissionless, once half an epoch has
        passed since the last epoch change completed (epoch 0: once it may end). Unblocks
        the previous committee's commission, selects the next committee and capacity.
        Emits EpochParametersSelected.
    """
    assert self.system != empty(address), "not attached"
    assert self.epoch_state == EPOCH_CHANGE_DONE, "wrong epoch state"
    now: uint64 = convert(block.timestamp, uint64)
    if self.epoch == 0:
        assert now >= first_epoch_start_s, "too early"
    else:
        assert now >= self.epoch_state_time_s + epoch_duration_s // 2, "too early"
    if self.epoch > 0:
        extcall PoolsContract(self.pools).clear_blocked_commission(
            self._committees[convert(self.epoch - 1, uint256) % 3].node_ids
        )
    self._select_committee()
    self.epoch_state = NEXT_PARAMS_SELECTED
    log EpochParametersSelected(next_epoch=self.epoch + 1)


@external
def initiate_epoch_change():
    """
    @notice Port of Move `staking::initiate_epoch_change_v2`: permissionless, once a whole
        epoch has passed since the last epoch change completed (epoch 0: once it may
        end) and the next committee is selected. Installs the committee's BLS keys,
        starts the epoch in System (which pays the rewards) and advances the pools of the
        old committee (with their rewards) and of the joining nodes. System emits
        EpochChangeStart.
    """
    assert self.epoch_state == NEXT_PARAMS_SELECTED, "wrong epoch state"
    now: uint64 = convert(block.timestamp, uint64)
    if self.epoch == 0:
        assert now >= first_epoch_start_s, "too early"
    else:
        assert now >= self.epoch_state_time_s + epoch_duration_s, "too early"
    new_epoch: uint32 = self.epoch + 1
    next_slot: uint256 = convert(new_epoch, uint256) % 3
    ids: DynArray[bytes32, MAX_NODES] = self._committees[next_slot].node_ids
    keys: DynArray[Bytes[128], MAX_NODES] = []
    for node_id: bytes32 in ids:
        key: Bytes[128] = self._nodes[node_id].next_public_key
        if len(key) == 0:
            key = self._nodes[node_id].public_key
        keys.append(key)
    counts: Bytes[PACKED_BYTES] = self._committees[next_slot].counts
    shards: Bytes[PACKED_BYTES] = self._committees[next_slot].shards
    words: uint256[OWNER_WORDS] = empty(uint256[OWNER_WORDS])
    position: uint256 = 0
    for i: uint256 in range(len(ids), bound=MAX_NODES):
        count: uint256 = convert(self._u16_at(counts, i), uint256)
        for j: uint256 in range(count, bound=MAX_SHARDS):
            shard: uint256 = convert(self._u16_at(shards, position + j), uint256)
            words[shard // 32] |= i << (248 - 8 * (shard % 32))
        position += count
    owners: Bytes[32 * OWNER_WORDS] = slice(abi_encode(words), 0, convert(n_shards, uint256))
    bls_committee: address = self.committee_contracts[convert(new_epoch, uint256) % 2]
    extcall CommitteeContract(bls_committee).install(new_epoch, ids, keys, owners)
    old_ids: DynArray[bytes32, MAX_NODES] = []
    rewards: DynArray[uint256, MAX_NODES] = []
    old_ids, rewards = extcall SystemContract(self.system).advance_epoch_with(bls_committee, self.next_capacity)
    self.epoch = new_epoch
    self.epoch_state = EPOCH_CHANGE_SYNC
    self.sync_weight = 0
    self._has_next_committee = False
    total: uint256 = 0
    for reward: uint256 in rewards:
        total += reward
    if total > 0:
        assert extcall WalToken(wal).transfer(self.pools, total), "transfer failed"
    for i: uint256 in range(len(old_ids), bound=MAX_NODES):
        self._advance_node(old_ids[i], rewards[i], new_epoch)
    # Nodes that just joined have no rewards (Move `committee::diff`); both lists ascend.
    j: uint256 = 0
    for node_id: bytes32 in ids:
        for _: uint256 in range(MAX_NODES):
            if j >= len(old_ids) or convert(old_ids[j], uint256) >= convert(node_id, uint256):
                break
            j += 1
        if j >= len(old_ids) or old_ids[j] != node_id:
            self._advance_node(node_id, 0, new_epoch)
    self._update_prices()


@internal
def _advance_node(node_id: bytes32, reward: uint256, epoch: uint32):
    """
    @notice Advances the node's pool and rotates its key (Move `staking_pool::advance_epoch`).
    """
    next_key: Bytes[G1_POINT_BYTES] = self._nodes[node_id].next_public_key
    if len(next_key) != 0:
        self._nodes[node_id].public_key = next_key
        self._nodes[node_id].next_public_key = b""
    self._update_active_set(node_id, extcall PoolsContract(self.pools).advance_pool(node_id, reward, epoch))


@external
def epoch_sync_done(cap_id: bytes32, epoch: uint32):
    """
    @notice Port of Move `staking::epoch_sync_done`: the node of `cap_id` (its owner
        calls) reports that it holds all its shards of `epoch`, once per epoch. At 2f + 1
        shards of reports the epoch change is done and the next epoch's clock starts.
        Emits ShardsReceived, and EpochChangeDone at the quorum.
    """
    node_id: bytes32 = self._own_cap(cap_id)
    assert epoch == self.epoch, "wrong epoch"
    assert self.cap_last_epoch_sync_done[cap_id] < epoch, "sync already done"
    self.cap_last_epoch_sync_done[cap_id] = epoch
    slot: uint256 = convert(epoch, uint256) % 3
    found: bool = False
    index: uint256 = 0
    found, index = self._member_index(epoch, node_id)
    assert found, "not in the committee"
    # Only this node's shards are unpacked: the others' may be a thousand.
    counts: Bytes[PACKED_BYTES] = self._committees[slot].counts
    start: uint256 = 0
    for i: uint256 in range(index, bound=MAX_NODES):
        start += convert(self._u16_at(counts, i), uint256)
    count: uint256 = convert(self._u16_at(counts, index), uint256)
    packed: Bytes[PACKED_BYTES] = self._committees[slot].shards
    node_shards: DynArray[uint16, MAX_SHARDS] = []
    for j: uint256 in range(count, bound=MAX_SHARDS):
        node_shards.append(self._u16_at(packed, start + j))
    if self.epoch_state == EPOCH_CHANGE_SYNC:
        weight: uint256 = convert(self.sync_weight, uint256) + count
        if 3 * weight >= 2 * convert(n_shards, uint256) + 1:
            self.epoch_state = EPOCH_CHANGE_DONE
            self.epoch_state_time_s = convert(block.timestamp, uint64)
            log EpochChangeDone(epoch=epoch)
        else:
            self.sync_weight = convert(weight, uint16)
    log ShardsReceived(epoch=epoch, shards=node_shards)


# === Storage nodes ===


@internal
@view
def _own_cap(cap_id: bytes32) -> bytes32:
    """
    @notice Reverts unless the caller owns the StorageNodeCap `cap_id`; returns its node.
    """
    assert objects.kind_of[cap_id] == KIND_NODE_CAP, "unknown node cap"
    assert objects.owner_of[cap_id] == msg.sender, "not the owner"
    return self.cap_node_id[cap_id]


@internal
@view
def _check_pop(public_key: Bytes[G1_POINT_BYTES], proof_of_possession: Bytes[G2_POINT_BYTES]):
    """
    @notice Move `messages::verify_proof_of_possession` for the sender and this epoch,
        done by a Committee.vy, which holds the BLS code.
    """
    assert self.system != empty(address), "not attached"
    assert staticcall CommitteeContract(self.committee_contracts[0]).check_proof_of_possession(
        public_key, proof_of_possession, msg.sender, self.epoch
    ), "invalid proof of possession"


@external
def register_candidate(
    name: String[MAX_NAME_BYTES],
    network_address: String[MAX_NETWORK_ADDRESS_BYTES],
    public_key: Bytes[G1_POINT_BYTES],
    network_public_key: Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES],
    proof_of_possession: Bytes[G2_POINT_BYTES],
    commission_rate: uint16,
    storage_price: uint64,
    write_price: uint64,
    node_capacity: uint64,
) -> bytes32:
    """
    @notice Port of Move `staking::register_candidate`: creates the node's staking pool
        (its ID is the node ID) and gives the caller its StorageNodeCap.
    @param public_key the BLS key (EIP-2537 G1) with its proof of possession (G2) for the
        caller and the current epoch.
    @dev Emits CandidateRegistered and ObjectTransferred for the cap. Returns the node ID.
    """
    assert convert(commission_rate, uint256) <= N_BASIS_POINTS, "incorrect commission rate"
    self._check_pop(public_key, proof_of_possession)
    node_id: bytes32 = objects._new_id()
    cap_id: bytes32 = objects._new_id()
    activation_epoch: uint32 = self.epoch
    if self.epoch_state == NEXT_PARAMS_SELECTED:
        activation_epoch += 1
    self._nodes[node_id] = Node(
        cap_id=cap_id,
        name=name,
        network_address=network_address,
        public_key=public_key,
        next_public_key=b"",
        network_public_key=network_public_key,
        storage_price=storage_price,
        write_price=write_price,
        node_capacity=node_capacity,
    )
    extcall PoolsContract(self.pools).create_pool(node_id, commission_rate, msg.sender, activation_epoch, self.epoch)
    self._node_at[self._node_count] = node_id
    self._node_count += 1
    self.cap_node_id[cap_id] = node_id
    objects._add(cap_id, KIND_NODE_CAP, msg.sender)
    log CandidateRegistered(node_id=node_id, cap_id=cap_id)
    return node_id


@external
def set_next_public_key(
    cap_id: bytes32,
    public_key: Bytes[G1_POINT_BYTES],
    proof_of_possession: Bytes[G2_POINT_BYTES],
):
    """
    @notice Port of Move `set_next_public_key`: the key signs from the next epoch for
        which the node is selected.
    """
    node_id: bytes32 = self._own_cap(cap_id)
    self._check_pop(public_key, proof_of_possession)
    self._nodes[node_id].next_public_key = public_key


@external
def set_name(cap_id: bytes32, name: String[MAX_NAME_BYTES]):
    """
    @notice Port of Move `set_name`.
    """
    self._nodes[self._own_cap(cap_id)].name = name


@external
def set_network_address(cap_id: bytes32, network_address: String[MAX_NETWORK_ADDRESS_BYTES]):
    """
    @notice Port of Move `set_network_address`: clients use it at once.
    """
    self._nodes[self._own_cap(cap_id)].network_address = network_address


@external
def set_network_public_key(cap_id: bytes32, network_public_key: Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES]):
    """
    @notice Port of Move `set_network_public_key`.
    """
    self._nodes[self._own_cap(cap_id)].network_public_key = network_public_key


@external
def set_next_commission(cap_id: bytes32, commission_rate: uint16):
    """
    @notice Port of Move `set_next_commission`: the rate applies from epoch E + 2.
    """
    extcall PoolsContract(self.pools).set_next_commission(self._own_cap(cap_id), commission_rate, self.epoch)


@external
def set_storage_price_vote(cap_id: bytes32, storage_price: uint64):
    """
    @notice Port of Move `set_storage_price_vote` followed by `update_prices`.
    """
    self._nodes[self._own_cap(cap_id)].storage_price = storage_price
    self._update_prices()


@external
def set_write_price_vote(cap_id: bytes32, write_price: uint64):
    """
    @notice Port of Move `set_write_price_vote` followed by `update_prices`.
    """
    self._nodes[self._own_cap(cap_id)].write_price = write_price
    self._update_prices()


@external
def set_node_capacity_vote(cap_id: bytes32, node_capacity: uint64):
    """
    @notice Port of Move `set_node_capacity_vote`: counted at the next voting_end.
    """
    self._nodes[self._own_cap(cap_id)].node_capacity = node_capacity


@external
def update_prices():
    """
    @notice Port of Move `staking::update_prices` (permissionless).
    """
    self._update_prices()


@external
def try_join_active_set(cap_id: bytes32):
    """
    @notice Port of Move `try_join_active_set`: re-enters a node left out of a full set.
    """
    node_id: bytes32 = self._own_cap(cap_id)
    self._update_active_set(node_id, staticcall PoolsContract(self.pools).stake_for_next_vote(node_id))


@external
def update_active_set(node_id: bytes32, stake: uint256):
    """
    @notice A pool's stake for the next selection changed (Pools.vy only).
    """
    assert msg.sender == self.pools and msg.sender != empty(address), "not the pools contract"
    self._update_active_set(node_id, stake)


@external
def transfer_node_cap(cap_id: bytes32, to: address):
    """
    @notice Gives a StorageNodeCap to `to` (Sui `transfer::public_transfer`).
    """
    self._own_cap(cap_id)
    objects._transfer(cap_id, to)


# === Views ===


@external
@view
def node_cap_ids_of(owner: address, start: uint256, count: uint256) -> DynArray[bytes32, objects.MAX_PAGE]:
    """
    @notice A page of the StorageNodeCap IDs `owner` holds.
    """
    return objects._page(KIND_NODE_CAP, owner, start, count)


@external
@view
def node_count() -> uint256:
    """
    @notice Number of registered nodes.
    """
    return self._node_count


@external
@view
def node_ids(start: uint256, count: uint256) -> DynArray[bytes32, objects.MAX_PAGE]:
    """
    @notice A page of the registered node IDs, in registration order.
    """
    ids: DynArray[bytes32, objects.MAX_PAGE] = []
    total: uint256 = self._node_count
    if start >= total:
        return ids
    for i: uint256 in range(start, min(total, start + min(count, objects.MAX_PAGE)), bound=objects.MAX_PAGE):
        ids.append(self._node_at[i])
    return ids


@external
@view
def node_info(node_id: bytes32) -> Node:
    """
    @notice A node's record (its pool's balances are in Pools.vy).
    """
    assert self._nodes[node_id].cap_id != empty(bytes32), "unknown node"
    return self._nodes[node_id]


@external
@view
def pool_context(node_id: bytes32) -> (uint32, bool, bool, bool):
    """
    @notice What Pools.vy needs of a node (Move `WalrusContext`): the epoch, whether the
        next committee is selected, and whether the node is in the current and in the
        next committee.
    """
    return self.epoch, self._has_next_committee, self._in_current(node_id), self._in_next(node_id)


@external
@view
def network_address(node_id: bytes32) -> String[MAX_NETWORK_ADDRESS_BYTES]:
    """
    @notice A node's network address (Committee.vy reads it for its members).
    """
    return self._nodes[node_id].network_address


@external
@view
def network_public_key(node_id: bytes32) -> Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES]:
    """
    @notice A node's network (TLS) public key (Committee.vy reads it for its members).
    """
    return self._nodes[node_id].network_public_key


@external
@view
def active_set() -> (DynArray[bytes32, MAX_NODES], DynArray[uint256, MAX_NODES]):
    """
    @notice The active set's node IDs and their stake for the next selection.
    """
    ids: DynArray[bytes32, MAX_NODES] = []
    stakes: DynArray[uint256, MAX_NODES] = []
    for entry: ActiveEntry in self._active:
        ids.append(entry.node_id)
        stakes.append(entry.stake)
    return ids, stakes


@external
@view
def committee() -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice The current committee: node IDs ascending, shard counts, and each node's
        shards concatenated in that order.
    """
    return self._committee_view(convert(self.epoch, uint256) % 3)


@external
@view
def previous_committee() -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice The previous epoch's committee (empty in epochs 0 and 1).
    """
    if self.epoch == 0:
        return [], [], []
    return self._committee_view(convert(self.epoch - 1, uint256) % 3)


@external
@view
def next_committee() -> (DynArray[bytes32, MAX_NODES], DynArray[uint16, MAX_NODES], DynArray[uint16, MAX_SHARDS]):
    """
    @notice The committee selected for the next epoch (empty before voting_end).
    """
    if not self._has_next_committee:
        return [], [], []
    return self._committee_view(convert(self.epoch + 1, uint256) % 3)
