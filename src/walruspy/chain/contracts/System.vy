# pragma version ~=0.4.3
# pragma evm-version prague
"""
@title Walrus System: storage, blobs, certificates, epochs and the storage fund
@notice Port of Move `walrus::system`, `system::system_state_inner` and `system::blob`, with
    the epoch change of `staking_inner` reduced to a fixed committee (spec/walrus-system.md
    1.2, 1.5, 2.1, 2.2, 2.5, 2.6, 2.9).

    Theory of operation. A client buys a storage resource for the encoded length of its
    blob (`reserve_space`), registers the blob on it (`register_blob`, or both at once
    with `reserve_and_register`), uploads slivers to the nodes, collects a quorum of
    signed confirmations and posts the certificate (`certify_blob`): the BlobCertified
    event is the point of availability. Certified blobs can be extended until they
    expire at their end epoch (exclusive); deletable blobs can be deleted by their owner,
    who gets the storage resource back. `advance_epoch` ends an epoch once its duration
    has passed: the epoch's storage-fund slot is settled (3% burnt, the rest credited to
    the committee by weight) and the next epoch starts with the same committee.

    Byte order. Blob IDs, root hashes and object IDs are bytes32 holding the raw 32 bytes
    exactly as Walrus serializes its BlobId and hashes (the bytes nodes sign). Move reads
    them as little-endian u256, but the chain only compares them and feeds them to
    BLAKE2b, so they are never turned into integers here; events index them as bytes32.

    Payments are in WAL (an ERC-20 with 9 decimals) pulled from the caller with
    `transferFrom`: before a paying call, approve this contract for at least the price;
    for `reserve_and_register` that is `storage_cost(encoded, epochs_ahead) +
    write_cost(encoded)` with encoded = `encoded_blob_length(size, 1, n_shards())`. A failed
    pull reverts with "unpaid". Storage costs storage_price per 1 MiB unit of encoded
    size per epoch, paid into each epoch's slot of the ring buffer; the write fee costs
    write_price per unit once, into the current epoch's slot.

    Authorization. Sui checks that the sender owns an owned object passed by reference;
    here the record's owner must be msg.sender to register with, split, fuse, transfer
    or destroy a storage resource and to delete, burn or transfer a blob. Certifying a
    blob needs only a valid certificate and extending one only the payment, so anyone
    (a publisher, a relay) may do either for the blob's owner; the blob stays where it is.

    Two ways to run epochs. With a fixed committee (no staking contract), `advance_epoch`
    is permissionless once the epoch is over, keeps the committee, credits each node's
    rewards to `node_rewards` and emits EpochChangeStart and EpochChangeDone together.
    With a Staking contract (Staking.vy, Walrus's `staking` package), the system starts
    in epoch 0 with no committee and prices at the maximum, as Walrus does; only Staking
    changes epochs (`advance_epoch_with`, Move `system_state_inner::advance_epoch`), with
    the committee and capacity it selected, receives the rewards of the ending epoch for
    its pools, and sets the prices its votes decide (`set_prices`); Staking emits
    EpochChangeDone once a quorum of the new committee has its shards.

    Storage challenges (ours; Walrus has none: spec 3.6, Walrus paper section 4.6). The
    Challenges contract named at deployment runs one challenge per epoch and records which
    members of the committee passed. When an epoch whose challenge started is settled, a
    node of its committee without a certificate gets no reward: its share is burnt with the
    3%, not shared among the others (see `_settle_epoch`). An epoch without a started
    challenge pays as Walrus does.
"""

import objects
import storage_resource
import storage_accounting
import blob as blobs
import blake2b
import redstuff
import messages
import Committee

initializes: objects
initializes: storage_resource[objects := objects]
initializes: storage_accounting
initializes: blobs[objects := objects]

exports: (
    objects.owner_of,
    objects.kind_of,
    objects.storage_count_of,
    objects.storage_ids_of,
    objects.blob_count_of,
    objects.blob_ids_of,
    storage_resource.split_by_epoch,
    storage_resource.split_by_size,
    storage_resource.fuse_periods,
    storage_resource.fuse_amount,
    storage_resource.fuse,
    storage_resource.transfer_storage,
    storage_resource.destroy_storage,
    storage_resource.storage,
    storage_accounting.max_epochs_ahead,
    storage_accounting.future_accounting,
    blobs.blob,
)


interface WalToken:
    def burn(amount: uint256): nonpayable
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable


interface StakingView:
    def n_shards() -> uint16: view


interface ChallengesView:
    def passed_members(epoch: uint32) -> (bool, uint256): view


# Move `BYTES_PER_UNIT_SIZE`: prices are per 1 MiB of encoded size.
BYTES_PER_UNIT_SIZE: constant(uint256) = 1_048_576
# Share of each ending epoch's rewards that is burnt (Move `extract_burn_balance`).
BURN_PERCENT: constant(uint256) = 3
# The deployed committee serves epoch 1: Walrus's epoch 0 has no committee, and its first
# `initiate_epoch_change` starts epoch 1 with the first selected committee.
FIRST_EPOCH: constant(uint32) = 1


event InvalidBlobID:
    epoch: uint32
    blob_id: indexed(bytes32)


event EpochChangeStart:
    epoch: uint32


event EpochChangeDone:
    epoch: uint32


# The WAL token payments are made in.
wal: public(immutable(address))
# The Challenges contract whose certificates rewards depend on (empty: no challenges).
challenges: public(immutable(address))
# The Attributes contract holding blob attributes (Attributes.vy; empty: none).
attributes: public(immutable(address))
# The SharedBlobs contract holding shared blobs (SharedBlobs.vy; empty: none).
shared_blobs: public(immutable(address))
# The current epoch (Move keeps it in the committee: `system::epoch()` reads it there).
epoch: public(uint32)
# The Committee.vy contract of the current epoch, which checks certificates.
committee: public(address)
# The previous epoch's Committee.vy: during an epoch change, reads of blobs certified before it
# still go to its members (zero before the first change). Under staking it stays readable until
# the change after next refills it.
previous_committee: public(address)
# Number of shards; fixed for the life of the system, as in Walrus.
n_shards: public(uint16)
# FROST per 1 MiB unit of encoded size per epoch.
storage_price_per_unit_size: public(uint64)
# FROST per 1 MiB unit of encoded size, once at registration.
write_price_per_unit_size: public(uint64)
# Capacity (bytes of encoded size) that may be reserved in any one epoch.
total_capacity_size: public(uint64)
# Capacity reserved in the current epoch.
used_capacity_size: public(uint64)
epoch_duration_s: public(uint64)
# block.timestamp at which the current epoch started.
epoch_start_s: public(uint64)
# WAL credited to each node at the epoch changes, not yet paid out (staking issue).
node_rewards: public(HashMap[bytes32, uint256])

# The capacity the epoch parameters give the next epoch (Move `EpochParams.capacity`).
_capacity_target: uint64
# The Staking contract that changes epochs and sets prices; empty for a fixed committee.
staking: public(address)


@deploy
def __init__(
    wal_token: address,
    first_committee: address,
    epoch_duration_s: uint64,
    max_epochs_ahead: uint32,
    total_capacity_size: uint64,
    storage_price_per_unit_size: uint64,
    write_price_per_unit_size: uint64,
    staking_contract: address,
    challenges_contract: address,
    attributes_contract: address,
    shared_blobs_contract: address,
):
    """
    @notice Port of Move `init::initialize_walrus`. With a fixed committee
        (`staking_contract` empty) the first epoch change follows at once: epoch 1 starts
        now, served by `first_committee`. With a Staking contract, epoch 0 starts with no
        committee (`first_committee` must be empty) and prices at the maximum until
        Staking's first epoch change.
    @param wal_token the WAL token (Wal.vy).
    @param first_committee a sealed Committee.vy; n_shards is its shard count.
    @param staking_contract Staking.vy, or the zero address for a fixed committee.
    @param challenges_contract Challenges.vy (deployed first, attached to this System
        after), or the zero address for a system without storage challenges.
    @param attributes_contract Attributes.vy (deployed first, attached after), or the zero
        address for a system without blob attributes.
    @param shared_blobs_contract SharedBlobs.vy (likewise), or the zero address.
    """
    assert wal_token != empty(address), "zero address"
    assert epoch_duration_s > 0, "zero epoch duration"
    assert challenges_contract == empty(address) or challenges_contract.is_contract, "challenges is not a contract"
    wal = wal_token
    challenges = challenges_contract
    attributes = attributes_contract
    shared_blobs = shared_blobs_contract
    self.epoch_duration_s = epoch_duration_s
    self.epoch_start_s = convert(block.timestamp, uint64)
    self.total_capacity_size = total_capacity_size
    self._capacity_target = total_capacity_size
    if staking_contract != empty(address):
        assert first_committee == empty(address), "staking selects the first committee"
        assert staking_contract.is_contract, "staking is not a contract"
        self.staking = staking_contract
        self.n_shards = staticcall StakingView(staking_contract).n_shards()
        storage_accounting._init(max_epochs_ahead, 0)
        self.storage_price_per_unit_size = max_value(uint64)
        self.write_price_per_unit_size = max_value(uint64)
        return
    assert first_committee.is_contract, "committee is not a contract"
    assert staticcall Committee.__interface__(first_committee).sealed(), "committee not sealed"
    self.epoch = FIRST_EPOCH
    self.committee = first_committee
    self.n_shards = staticcall Committee.__interface__(first_committee).n_shards()
    storage_accounting._init(max_epochs_ahead, FIRST_EPOCH)
    self.storage_price_per_unit_size = storage_price_per_unit_size
    self.write_price_per_unit_size = write_price_per_unit_size
    log EpochChangeStart(epoch=FIRST_EPOCH)
    log EpochChangeDone(epoch=FIRST_EPOCH)


# === Payments ===


@internal
@pure
def _storage_units(size: uint64) -> uint256:
    """
    @notice Move `storage_units_from_size`: 1 MiB units, rounded up.
    """
    return (convert(size, uint256) + BYTES_PER_UNIT_SIZE - 1) // BYTES_PER_UNIT_SIZE


@internal
def _collect(amount: uint256):
    """
    @notice Pulls `amount` WAL from the caller into this contract ("unpaid" on failure).
    """
    if amount == 0:
        return
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        wal,
        abi_encode(msg.sender, self, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32,
        revert_on_failure=False,
    )
    assert success, "unpaid"
    assert len(response) == 0 or extract32(response, 0, output_type=uint256) == 1, "unpaid"


@internal
def _process_storage_payments(storage_size: uint64, start_offset: uint32, end_offset: uint32) -> uint256:
    """
    @notice Port of Move `system_state_inner::process_storage_payments`: credits each
        epoch in [start_offset, end_offset) with its storage price; returns the total due.
    """
    per_epoch: uint256 = convert(self.storage_price_per_unit_size, uint256) * self._storage_units(storage_size)
    for offset: uint32 in range(start_offset, end_offset, bound=storage_accounting.MAX_MAX_EPOCHS_AHEAD):
        storage_accounting._add_rewards(offset, per_epoch)
    return per_epoch * convert(end_offset - start_offset, uint256)


@internal
@view
def _write_cost(encoded_size: uint64) -> uint256:
    """
    @notice Move `system_state_inner::write_price`.
    """
    return convert(self.write_price_per_unit_size, uint256) * self._storage_units(encoded_size)


# === Storage ===


@internal
def _reserve_space_without_payment(
    storage_size: uint64, start_offset: uint32, end_offset: uint32, owner: address
) -> bytes32:
    """
    @notice Port of Move `reserve_space_without_payment`: accounts `storage_size` in every
        epoch of [start_offset, end_offset) against the capacity and creates the resource.
    """
    assert end_offset > start_offset, "invalid epochs ahead"
    assert end_offset <= storage_accounting.max_epochs_ahead, "invalid epochs ahead"
    assert storage_size > 0, "invalid storage size"
    capacity: uint64 = self.total_capacity_size
    for offset: uint32 in range(start_offset, end_offset, bound=storage_accounting.MAX_MAX_EPOCHS_AHEAD):
        used: uint64 = storage_accounting._increase_used_capacity(offset, storage_size, capacity)
        if offset == 0:
            self.used_capacity_size = used
    epoch: uint32 = self.epoch
    return storage_resource._create(owner, epoch + start_offset, epoch + end_offset, storage_size)


@internal
def _reserve_space_for_epochs(storage_size: uint64, start_epoch: uint32, end_epoch: uint32) -> (bytes32, uint256):
    """
    @notice Port of Move `reserve_space_for_epochs` without the payment pull: returns the
        new resource (owned by the caller) and the price to collect.
    """
    current: uint32 = self.epoch
    start: uint32 = max(start_epoch, current)
    assert end_epoch > start, "invalid epochs ahead"
    assert end_epoch - current <= storage_accounting.max_epochs_ahead, "invalid epochs ahead"
    cost: uint256 = self._process_storage_payments(storage_size, start - current, end_epoch - current)
    storage_id: bytes32 = self._reserve_space_without_payment(
        storage_size, start - current, end_epoch - current, msg.sender
    )
    return storage_id, cost


@internal
@view
def _check_epochs_ahead(epochs_ahead: uint32):
    """
    @notice Move `reserve_space` bounds: 0 < epochs_ahead <= max_epochs_ahead.
    """
    assert epochs_ahead > 0 and epochs_ahead <= storage_accounting.max_epochs_ahead, "invalid epochs ahead"


@external
def reserve_space(storage_amount: uint64, epochs_ahead: uint32) -> bytes32:
    """
    @notice Port of Move `system::reserve_space`: buys `storage_amount` bytes of encoded
        capacity for the current epoch and the next epochs_ahead - 1 ones.
    @dev Pays storage_price x units x epochs_ahead WAL (approve first). Emits
        ObjectTransferred(storage_id, 0, caller). Returns the storage resource ID.
    """
    self._check_epochs_ahead(epochs_ahead)
    current: uint32 = self.epoch
    storage_id: bytes32 = empty(bytes32)
    cost: uint256 = 0
    storage_id, cost = self._reserve_space_for_epochs(storage_amount, current, current + epochs_ahead)
    self._collect(cost)
    return storage_id


@external
def reserve_space_for_epochs(storage_amount: uint64, start_epoch: uint32, end_epoch: uint32) -> bytes32:
    """
    @notice Port of Move `system::reserve_space_for_epochs`: buys capacity for
        [start_epoch, end_epoch); a start in the past is moved to the current epoch.
    """
    storage_id: bytes32 = empty(bytes32)
    cost: uint256 = 0
    storage_id, cost = self._reserve_space_for_epochs(storage_amount, start_epoch, end_epoch)
    self._collect(cost)
    return storage_id


# === Blobs ===


@internal
def _register_blob(
    storage_id: bytes32,
    blob_id: bytes32,
    root_hash: bytes32,
    size: uint64,
    encoding_type: uint8,
    deletable: bool,
) -> (bytes32, uint256):
    """
    @notice Port of Move `system_state_inner::register_blob` and `blob::new` without the
        payment pull: wraps the caller's storage resource into a new blob; returns the
        blob's object ID and the write fee to collect.
    """
    storage: storage_resource.Storage = storage_resource._take(storage_id, msg.sender)
    object_id: bytes32 = empty(bytes32)
    encoded_size: uint64 = 0
    object_id, encoded_size = blobs._new(
        msg.sender,
        storage_id,
        storage,
        blob_id,
        root_hash,
        size,
        encoding_type,
        deletable,
        self.epoch,
        self.n_shards,
    )
    write_cost: uint256 = self._write_cost(encoded_size)
    storage_accounting._add_rewards(0, write_cost)
    return object_id, write_cost


@external
def register_blob(
    storage_id: bytes32,
    blob_id: bytes32,
    root_hash: bytes32,
    size: uint64,
    encoding_type: uint8,
    deletable: bool,
) -> bytes32:
    """
    @notice Port of Move `system::register_blob`: registers a blob of `size` unencoded
        bytes on the caller's storage resource `storage_id`.
    @dev Checks that the storage is current, covers the encoded length and that blob_id =
        BLAKE2b-256(encoding_type || size u64 LE || root_hash). Pays the write fee (approve
        first). Emits BlobRegistered. Returns the blob's object ID.
    """
    object_id: bytes32 = empty(bytes32)
    cost: uint256 = 0
    object_id, cost = self._register_blob(storage_id, blob_id, root_hash, size, encoding_type, deletable)
    self._collect(cost)
    return object_id


@external
def reserve_and_register(
    epochs_ahead: uint32,
    blob_id: bytes32,
    root_hash: bytes32,
    size: uint64,
    encoding_type: uint8,
    deletable: bool,
) -> bytes32:
    """
    @notice `reserve_space` for exactly the blob's encoded length and `register_blob` in
        one transaction (the Walrus client's first transaction, a Sui PTB there).
    @dev Pays storage_cost(encoded, epochs_ahead) + write_cost(encoded) in one pull.
        Returns the blob's object ID.
    """
    self._check_epochs_ahead(epochs_ahead)
    encoded_size: uint64 = redstuff._encoded_blob_length(size, encoding_type, self.n_shards)
    current: uint32 = self.epoch
    storage_id: bytes32 = empty(bytes32)
    storage_cost: uint256 = 0
    storage_id, storage_cost = self._reserve_space_for_epochs(encoded_size, current, current + epochs_ahead)
    object_id: bytes32 = empty(bytes32)
    write_cost: uint256 = 0
    object_id, write_cost = self._register_blob(storage_id, blob_id, root_hash, size, encoding_type, deletable)
    self._collect(storage_cost + write_cost)
    return object_id


@external
def certify_blob(
    blob_object_id: bytes32,
    signature: Bytes[Committee.MAX_SIGNATURE_INPUT_BYTES],
    signers_bitmap: Bytes[Committee.MAX_BITMAP_INPUT_BYTES],
    message: Bytes[messages.MAX_MESSAGE_BYTES],
):
    """
    @notice Port of Move `system::certify_blob` (`verify_quorum_in_epoch` and
        `blob::certify_with_certified_msg`): the point of availability.
    @param signature aggregate BLS signature, EIP-2537 G2 encoding (256 bytes).
    @param signers_bitmap bit i (LSB first) of byte i // 8 set if member i signed.
    @param message the BLOB_CERT message every signer signed.
    @dev Checks message epoch == current epoch, blob ID, persistence type and (deletable)
        object ID, that the blob is neither certified nor expired, a quorum of signers and
        the signature. Emits BlobCertified(is_extension = false).
    """
    epoch: uint32 = self.epoch
    objects._assert_exists(blob_object_id, objects.KIND_BLOB)
    certified: messages.CertifiedBlobMessage = messages._certify_blob_message(message)
    assert certified.epoch == epoch, "wrong epoch"
    # The cheap checks come before the certificate's, so bad calls fail early.
    blobs._check_certified_msg(blob_object_id, epoch, certified)
    signer_weight: uint16 = staticcall Committee.__interface__(self.committee).verify_certificate(
        signature, signers_bitmap, message, Committee.REQUIRE_QUORUM
    )
    blobs._certify(blob_object_id, epoch)


@external
def invalidate_blob_id(
    signature: Bytes[Committee.MAX_SIGNATURE_INPUT_BYTES],
    members_bitmap: Bytes[Committee.MAX_BITMAP_INPUT_BYTES],
    message: Bytes[messages.MAX_MESSAGE_BYTES],
) -> bytes32:
    """
    @notice Port of Move `system::invalidate_blob_id`: an INVALID_BLOB_ID certificate of
        signers with f + 1 weight (3w >= n + 1, so at least one correct node) for the
        current epoch marks a blob ID invalid. Emits InvalidBlobID; returns the blob ID.
    """
    epoch: uint32 = 0
    blob_id: bytes32 = empty(bytes32)
    epoch, blob_id = messages._invalid_blob_id_message(message)
    assert epoch == self.epoch, "wrong epoch"
    signer_weight: uint16 = staticcall Committee.__interface__(self.committee).verify_certificate(
        signature, members_bitmap, message, Committee.REQUIRE_ONE_CORRECT_NODE
    )
    log InvalidBlobID(epoch=epoch, blob_id=blob_id)
    return blob_id


@external
def extend_blob(blob_object_id: bytes32, extended_epochs: uint32):
    """
    @notice Port of Move `system::extend_blob`: adds `extended_epochs` epochs to a
        certified, unexpired blob, paid by the caller at the storage price for the blob's
        storage size. Emits BlobCertified(is_extension = true).
    """
    record: blobs.Blob = blobs._get(blob_object_id)
    blobs._assert_certified_not_expired(record, self.epoch)
    assert extended_epochs > 0 and extended_epochs <= storage_accounting.max_epochs_ahead, "invalid epochs ahead"
    start_offset: uint32 = record.storage.end_epoch - self.epoch
    end_offset: uint32 = start_offset + extended_epochs
    assert end_offset <= storage_accounting.max_epochs_ahead, "invalid epochs ahead"
    storage_size: uint64 = record.storage.storage_size
    cost: uint256 = self._process_storage_payments(storage_size, start_offset, end_offset)
    capacity: uint64 = self.total_capacity_size
    for offset: uint32 in range(start_offset, end_offset, bound=storage_accounting.MAX_MAX_EPOCHS_AHEAD):
        storage_accounting._increase_used_capacity(offset, storage_size, capacity)
    blobs._extend_end_epoch(blob_object_id, extended_epochs)
    self._collect(cost)


@external
def extend_blob_with_resource(blob_object_id: bytes32, storage_id: bytes32):
    """
    @notice Port of Move `system::extend_blob_with_resource`: fuses the caller's storage
        resource (same size, starting at the blob's end epoch) into a certified, unexpired
        blob. Emits BlobCertified(is_extension = true).
    """
    extension: storage_resource.Storage = storage_resource._take(storage_id, msg.sender)
    blobs._extend_with_resource(blob_object_id, extension, self.epoch)


@external
def delete_blob(blob_object_id: bytes32) -> bytes32:
    """
    @notice Port of Move `system::delete_blob` and `blob::delete`: the owner of a
        deletable, unexpired blob destroys it and gets its storage resource back (same
        ID, owned by the caller). Emits BlobDeleted. Returns the storage resource ID.
    """
    objects._assert_owned(blob_object_id, objects.KIND_BLOB, msg.sender)
    deleted: blobs.Blob = blobs._delete(blob_object_id, self.epoch)
    storage_resource._restore(deleted.storage_id, msg.sender, deleted.storage)
    return deleted.storage_id


@external
def burn_blob(blob_object_id: bytes32):
    """
    @notice Port of Move `blob::burn`: the owner drops a blob object and its storage
        without any event (nodes keep the data until the end epoch; the blob can no longer
        be extended or deleted). Useful to clear expired blobs from the owner's index.
    """
    objects._assert_owned(blob_object_id, objects.KIND_BLOB, msg.sender)
    blobs._burn(blob_object_id)


@external
def transfer_blob(blob_object_id: bytes32, to: address):
    """
    @notice Gives a blob object to `to` (Sui `transfer::public_transfer`).
    """
    objects._assert_owned(blob_object_id, objects.KIND_BLOB, msg.sender)
    objects._transfer(blob_object_id, to)


# === Epochs ===


@internal
def _settle_epoch(
    ended: storage_accounting.FutureAccounting,
) -> (DynArray[bytes32, Committee.MAX_MEMBERS], DynArray[uint256, Committee.MAX_MEMBERS]):
    """
    @notice Port of Move `extract_burn_balance` and the reward part of
        `system_state_inner::advance_epoch`: burns 3% of the ended epoch's rewards, splits
        the rest over the (old) committee in proportion to weight x used capacity (no deny
        lists yet) and carries the rounding remainder into the new current epoch. Returns
        the old committee's node IDs and their rewards (none in epoch 0, which has no
        committee: everything is carried).
    @dev Storage challenges: if the ended epoch's challenge started, a member without a
        certificate for it gets nothing, and its share is burnt with the 3%. It is not
        shared among the members that passed: then every node would gain from others
        failing, and the signers of each certificate (a quorum of the node's peers) would
        be paid to withhold their attestations from honest nodes. Burning makes failing
        cost the failing node only.
    """
    node_ids: DynArray[bytes32, Committee.MAX_MEMBERS] = []
    weights: DynArray[uint16, Committee.MAX_MEMBERS] = []
    if self.committee != empty(address):
        node_ids, weights = staticcall Committee.__interface__(self.committee).node_weights()
    # One call for the whole committee: bit i of `passed` is member i (committee order).
    challenged: bool = False
    passed: uint256 = 0
    if challenges != empty(address) and len(node_ids) > 0:
        challenged, passed = staticcall ChallengesView(challenges).passed_members(ended.epoch)
    burnt: uint256 = ended.rewards_to_distribute * BURN_PERCENT // 100
    to_distribute: uint256 = ended.rewards_to_distribute - burnt
    used: uint256 = convert(ended.used_capacity, uint256)
    total_stored: uint256 = 0
    for weight: uint16 in weights:
        total_stored += convert(weight, uint256) * used
    total_stored = max(total_stored, 1)
    shared: uint256 = 0
    rewards: DynArray[uint256, Committee.MAX_MEMBERS] = []
    for i: uint256 in range(len(weights), bound=Committee.MAX_MEMBERS):
        reward: uint256 = convert(weights[i], uint256) * used * to_distribute // total_stored
        shared += reward
        if challenged and (passed >> i) & 1 == 0:
            burnt += reward
            reward = 0
        rewards.append(reward)
    if burnt > 0:
        extcall WalToken(wal).burn(burnt)
    storage_accounting._add_rewards(0, to_distribute - shared)
    return node_ids, rewards


@internal
def _start_epoch(
    next_committee: address, capacity: uint64
) -> (DynArray[bytes32, Committee.MAX_MEMBERS], DynArray[uint256, Committee.MAX_MEMBERS]):
    """
    @notice Port of Move `system_state_inner::advance_epoch`: pops the ending epoch's
        accounting, sets capacity (never below what is used), settles the rewards over
        the old committee, installs `next_committee` (a sealed Committee.vy with the same
        n_shards) and starts the next epoch. Emits EpochChangeStart.
    """
    assert staticcall Committee.__interface__(next_committee).sealed(), "committee not sealed"
    assert staticcall Committee.__interface__(next_committee).n_shards() == self.n_shards, "committee changes n_shards"
    new_epoch: uint32 = self.epoch + 1
    ended: storage_accounting.FutureAccounting = storage_accounting._pop_expand()
    assert ended.epoch + 1 == new_epoch, "accounting out of step"
    self.used_capacity_size = storage_accounting._lookup(0).used_capacity
    self.total_capacity_size = max(capacity, self.used_capacity_size)
    node_ids: DynArray[bytes32, Committee.MAX_MEMBERS] = []
    rewards: DynArray[uint256, Committee.MAX_MEMBERS] = []
    node_ids, rewards = self._settle_epoch(ended)
    self.previous_committee = self.committee
    self.committee = next_committee
    self.epoch = new_epoch
    self.epoch_start_s = convert(block.timestamp, uint64)
    log EpochChangeStart(epoch=new_epoch)
    return node_ids, rewards


@external
def advance_epoch():
    """
    @notice Port of Move `staking::initiate_epoch_change_v2` with
        `system_state_inner::advance_epoch`, for a fixed committee: permissionless, allowed
        once epoch_duration_s has passed since the epoch started. Settles the ending
        epoch's storage fund into `node_rewards`, moves capacity accounting to the next
        epoch and starts it. Emits EpochChangeStart and, with no shards to move,
        EpochChangeDone at once.
    """
    assert self.staking == empty(address), "epochs are changed by staking"
    assert convert(block.timestamp, uint64) >= self.epoch_start_s + self.epoch_duration_s, "epoch not over"
    node_ids: DynArray[bytes32, Committee.MAX_MEMBERS] = []
    rewards: DynArray[uint256, Committee.MAX_MEMBERS] = []
    node_ids, rewards = self._start_epoch(self.committee, self._capacity_target)
    for i: uint256 in range(len(node_ids), bound=Committee.MAX_MEMBERS):
        self.node_rewards[node_ids[i]] += rewards[i]
    log EpochChangeDone(epoch=self.epoch)


@external
def advance_epoch_with(
    next_committee: address, capacity: uint64
) -> (DynArray[bytes32, Committee.MAX_MEMBERS], DynArray[uint256, Committee.MAX_MEMBERS]):
    """
    @notice Port of Move `system::advance_epoch` as Staking calls it at
        `initiate_epoch_change`: starts the next epoch with the committee and capacity
        Staking selected, pays the ending epoch's rewards to Staking and returns them per
        node of the old committee (Staking only; Staking checks the time).
    """
    assert msg.sender == self.staking and msg.sender != empty(address), "not the staking contract"
    node_ids: DynArray[bytes32, Committee.MAX_MEMBERS] = []
    rewards: DynArray[uint256, Committee.MAX_MEMBERS] = []
    node_ids, rewards = self._start_epoch(next_committee, capacity)
    total: uint256 = 0
    for reward: uint256 in rewards:
        total += reward
    if total > 0:
        assert extcall WalToken(wal).transfer(msg.sender, total), "reward transfer failed"
    return node_ids, rewards


@external
def set_prices(storage_price_per_unit_size: uint64, write_price_per_unit_size: uint64):
    """
    @notice Port of Move `system::update_prices`' effect: the prices Staking's votes
        decide (`quorum_below` over the current committee), applied at once (Staking only).
    """
    assert msg.sender == self.staking and msg.sender != empty(address), "not the staking contract"
    self.storage_price_per_unit_size = storage_price_per_unit_size
    self.write_price_per_unit_size = write_price_per_unit_size


# === Views ===


@external
@pure
def encoded_blob_length(unencoded_length: uint64, encoding_type: uint8, n_shards: uint16) -> uint64:
    """
    @notice Port of Move `encoding::encoded_blob_length`.
    """
    return redstuff._encoded_blob_length(unencoded_length, encoding_type, n_shards)


@external
@view
def derive_blob_id(root_hash: bytes32, encoding_type: uint8, size: uint64) -> bytes32:
    """
    @notice Port of Move `blob::derive_blob_id` (raw 32-byte IDs, see the header).
    """
    return blake2b._derive_blob_id(root_hash, encoding_type, size)


@external
@view
def storage_cost(storage_size: uint64, epochs: uint32) -> uint256:
    """
    @notice WAL (FROST) that `epochs` epochs of `storage_size` bytes cost at today's price.
    """
    return convert(self.storage_price_per_unit_size, uint256) * self._storage_units(storage_size) * convert(epochs, uint256)


@external
@view
def write_cost(encoded_size: uint64) -> uint256:
    """
    @notice WAL (FROST) of the write fee for a blob of `encoded_size` encoded bytes.
    """
    return self._write_cost(encoded_size)
