# pragma version ~=0.4.3
# pragma evm-version prague
"""
@title A BLS storage committee and its certificates
@notice Port of Move `walrus::bls_aggregate` (`BlsCommittee`) with the member data Walrus
    keeps in `staking` (network address, shard assignment); spec/walrus-system.md 2.1,
    2.7, 2.9. System holds the address of the committee of the current epoch and asks it
    to check certificates.

    Life cycle. The deployer (the installer) adds members in committee order with
    `add_members`, in as many transactions as it needs, then calls `seal` with the shard
    assignment; from then on the committee never changes. Batches exist because a
    deployment transaction is capped at 48 KiB of code plus arguments (EIP-3860), which
    holds far fewer than Walrus's 150 members. A later staking contract can create and
    fill one committee per epoch the same way, so the previous epoch's committee stays
    readable during an epoch change.

    Under staking (Staking.vy), the deployer hands the empty committee over to the
    Staking contract (`hand_over`), which then `install`s each epoch's committee in it:
    Staking keeps two committees and rewrites the one of two epochs ago, so the previous
    committee stays readable while installing costs little gas (unchanged slots are
    cheap to rewrite). Keys installed this way had their proof of possession checked by
    Staking when they were registered; network addresses are not copied but read from
    Staking's node records, where operators may change them.

    Proofs of possession (Move `staking_pool::new` checks one when a node registers, spec
    2.9): certificates are checked against sums of member keys, so a member registering a
    rogue key (g1^x minus the other keys) could sign for the whole committee alone. Each
    member therefore comes with its key's signature over the PROOF_OF_POSSESSION message
    for the installer's address (the account that registers the committee, as the Sui
    sender does in Move) and FIRST_EPOCH, the epoch this committee serves; the message is
    rebuilt here from the key (messages.vy) and checked with one min-pk verification.

    Members are kept in committee order, strictly increasing node ID (Walrus builds its
    committee from a map sorted by node ID); certificate bitmaps index members in this
    order. A member's weight is the number of shards it holds; weights sum to n_shards.
    The sum of all member keys is kept, so a certificate only sums the keys of its
    non-signers and subtracts them (Move's trick, spec 2.9 item 1).

    Certificates (Move `verify_certificate_and_weight`): the signers bitmap has at most
    ceil(members / 8) bytes; bit i of byte i // 8 (least significant first) marks member
    i; missing bytes mean "did not sign" and bits past the last member must be zero.
    Signer weight = n_shards - non-signer weight must reach a quorum (3w >= 2n + 1) or,
    for invalid-blob certificates, include one correct node (3w >= n + 1). Then one BLS
    min-pk verification against total key - sum of non-signer keys (bls12381.vy). The
    message is opaque here: System checks its intent, epoch and content.
"""

import bls12381
import messages

# Move `staking_inner::TEMP_ACTIVE_SET_SIZE_LIMIT`: at most 150 nodes in a committee.
MAX_MEMBERS: constant(uint256) = 150
MAX_BITMAP_BYTES: constant(uint256) = (MAX_MEMBERS + 7) // 8
# Halvings that take a binary search over MAX_MEMBERS members to an empty range: 150 members
# leave at most 75, 37, 18, 9, 4, 2, 1 and then 0 candidates.
MEMBER_SEARCH_STEPS: constant(uint256) = 8
# The shard count of Walrus Mainnet and Testnet; bounds the shard assignment.
MAX_SHARDS: constant(uint256) = 1000
# Move `staking_pool` limit on a node's network address (host:port).
MAX_NETWORK_ADDRESS_BYTES: constant(uint256) = 259
# Staking.vy MAX_NETWORK_PUBLIC_KEY_BYTES: a TLS public key as registered.
MAX_NETWORK_PUBLIC_KEY_BYTES: constant(uint256) = 64
# Longest bitmap / signature a call may pass, so over-long inputs get a readable reason.
MAX_BITMAP_INPUT_BYTES: constant(uint256) = 256
MAX_SIGNATURE_INPUT_BYTES: constant(uint256) = 512

# The epoch whose PROOF_OF_POSSESSION messages members sign: the first epoch, which System
# starts (System.vy FIRST_EPOCH), as Move signs for the epoch of the registration.
FIRST_EPOCH: constant(uint32) = 1

interface NodeDirectory:
    def network_address(node_id: bytes32) -> String[MAX_NETWORK_ADDRESS_BYTES]: view
    def network_public_key(node_id: bytes32) -> Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES]: view


REQUIRE_QUORUM: constant(uint8) = 0
REQUIRE_ONE_CORRECT_NODE: constant(uint8) = 1


struct Member:
    # Move `BlsCommitteeMember` plus the node's network address.
    node_id: bytes32
    public_key: bls12381.G1Point
    weight: uint16
    network_address: String[MAX_NETWORK_ADDRESS_BYTES]


struct MemberInfo:
    # A member as clients read it: keys in EIP-2537 (128 B) and compressed (48 B) form.
    node_id: bytes32
    public_key: Bytes[128]
    public_key_compressed: Bytes[48]
    network_address: String[MAX_NETWORK_ADDRESS_BYTES]
    weight: uint16
    # The node's TLS key as registered with Staking (empty for a fixed committee: plain HTTP).
    network_public_key: Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES]


# The account that may add members and seal (the deployer).
installer: public(address)
# True once the shard assignment is set; the committee is then complete and immutable.
sealed: public(bool)
# Number of shards, the sum of the member weights (0 until sealed).
n_shards: public(uint16)

# The Staking contract that installs this committee each epoch; empty for a fixed one.
staking: public(address)
# The epoch this committee serves under staking (0 for a fixed committee).
epoch: public(uint32)

_members: DynArray[Member, MAX_MEMBERS]
_total_key: bls12381.G1Point
# Byte i is the index (in committee order) of the member holding shard i.
_shard_owners: Bytes[MAX_SHARDS]


@deploy
def __init__():
    """
    @notice An empty committee whose deployer may fill and seal it.
    """
    self.installer = msg.sender


@internal
@view
def _checked_key(
    public_key: Bytes[bls12381.G1_POINT_BYTES],
    proof_of_possession: Bytes[bls12381.G2_POINT_BYTES],
    account: address,
    epoch: uint32,
) -> bls12381.G1Point:
    """
    @notice Move `messages::verify_proof_of_possession`: `public_key` (EIP-2537 G1) must
        be a point of the prime-order subgroup other than infinity, and
        `proof_of_possession` its signature over the PROOF_OF_POSSESSION message for
        `account` and `epoch`. Returns the key.
    """
    key: bls12381.G1Point = bls12381._g1_from_bytes(public_key)
    assert not bls12381._g1_is_infinity(key), "public key is the point at infinity"
    assert bls12381._g1_in_subgroup(key), "public key not in G1"
    message: Bytes[messages.PROOF_OF_POSSESSION_BYTES] = messages._proof_of_possession_message(
        epoch, account, bls12381._g1_compress(key)
    )
    assert bls12381._verify(key, proof_of_possession, message), "invalid proof of possession"
    return key


@external
@view
def check_proof_of_possession(
    public_key: Bytes[bls12381.G1_POINT_BYTES],
    proof_of_possession: Bytes[bls12381.G2_POINT_BYTES],
    account: address,
    epoch: uint32,
) -> bool:
    """
    @notice True, or a revert with the reason, unless `proof_of_possession` proves possession of
        `public_key` for `account` in `epoch` (Staking.vy checks registrations here, so
        the BLS code lives in one contract).
    """
    self._checked_key(public_key, proof_of_possession, account, epoch)
    return True


@external
def add_members(
    node_ids: DynArray[bytes32, MAX_MEMBERS],
    public_keys: DynArray[Bytes[128], MAX_MEMBERS],
    network_addresses: DynArray[String[MAX_NETWORK_ADDRESS_BYTES], MAX_MEMBERS],
    proofs_of_possession: DynArray[Bytes[bls12381.G2_POINT_BYTES], MAX_MEMBERS],
):
    """
    @notice Port of the member half of Move `bls_aggregate::new_bls_committee`: appends
        members in committee order (installer only, before sealing).
    @param public_keys BLS keys in EIP-2537 G1 encoding (128 bytes each).
    @param network_addresses "host:port" of each node's REST API.
    @param proofs_of_possession each key's signature (EIP-2537 G2, 256 bytes) over the
        PROOF_OF_POSSESSION message for the installer's address and FIRST_EPOCH.
    @dev Checks: equal array lengths, at most 150 members in all, node IDs strictly
        increasing (across batches too), every key a G1 point of the prime-order
        subgroup other than infinity, every proof of possession valid.
    """
    assert msg.sender == self.installer, "not the installer"
    assert not self.sealed, "committee sealed"
    assert self.staking == empty(address), "installed by staking"
    n_new: uint256 = len(node_ids)
    assert (
        len(public_keys) == n_new
        and len(network_addresses) == n_new
        and len(proofs_of_possession) == n_new
    ), "committee arrays differ in length"
    assert len(self._members) + n_new <= MAX_MEMBERS, "too many members"
    last_node_id: uint256 = 0
    has_last: bool = len(self._members) > 0
    if has_last:
        last_node_id = convert(self._members[len(self._members) - 1].node_id, uint256)
    total: bls12381.G1Point = self._total_key
    for i: uint256 in range(n_new, bound=MAX_MEMBERS):
        node_id: uint256 = convert(node_ids[i], uint256)
        assert not has_last or last_node_id < node_id, "node ids not strictly increasing"
        key: bls12381.G1Point = self._checked_key(public_keys[i], proofs_of_possession[i], msg.sender, FIRST_EPOCH)
        total = bls12381._g1_add(total, key)
        self._members.append(
            Member(node_id=node_ids[i], public_key=key, weight=0, network_address=network_addresses[i])
        )
        last_node_id = node_id
        has_last = True
    self._total_key = total


@external
def seal(shard_owners: Bytes[MAX_SHARDS]):
    """
    @notice Port of the weight half of Move `bls_aggregate::new_bls_committee`: assigns
        the shards and makes the committee immutable (installer only).
    @param shard_owners byte i = committee index of the member holding shard i; the
        number of shards is its length.
    @dev Checks: at least one member and one shard, every shard held by a member, every
        member holding at least one shard (Move: no zero weights).
    """
    assert msg.sender == self.installer, "not the installer"
    assert not self.sealed, "committee sealed"
    assert self.staking == empty(address), "installed by staking"
    n_members: uint256 = len(self._members)
    assert n_members > 0, "empty committee"
    assert len(shard_owners) > 0, "no shards"
    weights: uint16[MAX_MEMBERS] = empty(uint16[MAX_MEMBERS])
    for shard: uint256 in range(len(shard_owners), bound=MAX_SHARDS):
        holder: uint256 = convert(slice(shard_owners, shard, 1), uint256)
        assert holder < n_members, "shard assigned to no member"
        weights[holder] += 1
    for i: uint256 in range(n_members, bound=MAX_MEMBERS):
        assert weights[i] > 0, "member without shards"
        self._members[i].weight = weights[i]
    self._shard_owners = shard_owners
    self.n_shards = convert(len(shard_owners), uint16)
    self.sealed = True


@external
def reserve(count: uint256):
    """
    @notice Writes `count` placeholder members and a full shard assignment to storage, then
        drops the members again (installer only, on an empty committee, before `hand_over`).
    @dev Creating a storage slot costs 22,100 gas, rewriting one 2,900-5,000: Staking's
        first `install` of 100 members into a fresh committee would write 600 new slots
        (15M gas) inside `initiate_epoch_change`. The deployer pays that here instead, in
        batches, so the epoch change fits in a block whatever the committee.
    """
    assert msg.sender == self.installer, "not the installer"
    assert self.staking == empty(address) and not self.sealed, "committee already filled"
    assert len(self._members) + count <= MAX_MEMBERS, "too many members"
    placeholder: Member = Member(
        node_id=convert(1, bytes32),
        public_key=bls12381.G1Point(x_hi=1, x_lo=1, y_hi=1, y_lo=1),
        weight=1,
        network_address="",
    )
    for _: uint256 in range(count, bound=MAX_MEMBERS):
        self._members.append(placeholder)


@external
def hand_over(staking: address):
    """
    @notice Makes the Staking contract `staking` the only one that fills this committee,
        with `install`, from now on (installer only, before sealing); placeholders of
        `reserve` are dropped (their storage stays written).
    """
    assert msg.sender == self.installer, "not the installer"
    assert not self.sealed and self.staking == empty(address), "committee already filled"
    assert staking.is_contract, "staking is not a contract"
    self._members = []
    self.installer = staking
    self.staking = staking


@external
def install(
    epoch: uint32,
    node_ids: DynArray[bytes32, MAX_MEMBERS],
    public_keys: DynArray[Bytes[128], MAX_MEMBERS],
    shard_owners: Bytes[MAX_SHARDS],
):
    """
    @notice Port of Move `staking_inner::next_bls_committee`: replaces the members with
        the committee Staking selected for `epoch` (Staking only).
    @param node_ids strictly increasing; public_keys their BLS keys (EIP-2537 G1), whose
        proofs of possession Staking checked at registration.
    @param shard_owners byte i = index in `node_ids` of the member holding shard i.
    """
    assert msg.sender == self.staking and msg.sender != empty(address), "not the staking contract"
    n_members: uint256 = len(node_ids)
    assert n_members > 0 and len(public_keys) == n_members, "committee arrays differ in length"
    weights: uint16[MAX_MEMBERS] = empty(uint16[MAX_MEMBERS])
    for shard: uint256 in range(len(shard_owners), bound=MAX_SHARDS):
        holder: uint256 = convert(slice(shard_owners, shard, 1), uint256)
        assert holder < n_members, "shard assigned to no member"
        weights[holder] += 1
    members: DynArray[Member, MAX_MEMBERS] = []
    total: bls12381.G1Point = empty(bls12381.G1Point)
    for i: uint256 in range(n_members, bound=MAX_MEMBERS):
        assert i == 0 or convert(node_ids[i - 1], uint256) < convert(node_ids[i], uint256), "node ids not strictly increasing"
        assert weights[i] > 0, "member without shards"
        key: bls12381.G1Point = bls12381._g1_from_bytes(public_keys[i])
        total = bls12381._g1_add(total, key)
        members.append(Member(node_id=node_ids[i], public_key=key, weight=weights[i], network_address=""))
    self._members = members
    self._total_key = total
    self._shard_owners = shard_owners
    self.n_shards = convert(len(shard_owners), uint16)
    self.epoch = epoch
    self.sealed = True


@external
@view
def verify_certificate(
    signature: Bytes[MAX_SIGNATURE_INPUT_BYTES],
    signers_bitmap: Bytes[MAX_BITMAP_INPUT_BYTES],
    message: Bytes[bls12381.MAX_MESSAGE_BYTES],
    required_weight: uint8,
) -> uint16:
    """
    @notice Port of Move `bls_aggregate::verify_certificate_and_weight`: checks the
        bitmap, the signers' weight against `required_weight` (REQUIRE_QUORUM = 0,
        REQUIRE_ONE_CORRECT_NODE = 1) and the aggregate signature (EIP-2537 G2, 256 bytes)
        over `message`; returns the signers' weight or reverts with the reason.
    """
    assert self.sealed, "committee not sealed"
    n_members: uint256 = len(self._members)
    bitmap_bytes: uint256 = (n_members + 7) // 8
    assert len(signers_bitmap) <= bitmap_bytes, "signers bitmap too long"

    non_signer_weight: uint256 = 0
    aggregate_key: bls12381.G1Point = self._total_key
    for byte_index: uint256 in range(bitmap_bytes, bound=MAX_BITMAP_BYTES):
        bits: uint256 = 0
        if byte_index < len(signers_bitmap):
            bits = convert(slice(signers_bitmap, byte_index, 1), uint256)
        for bit: uint256 in range(8):
            index: uint256 = byte_index * 8 + bit
            is_signer: bool = (bits >> bit) & 1 == 1
            if index >= n_members:
                # Unused bits must be zero so that each signer set has one bitmap.
                assert not is_signer, "signers bitmap names a non-member"
                continue
            if not is_signer:
                non_signer_weight += convert(self._members[index].weight, uint256)
                aggregate_key = bls12381._g1_add(
                    aggregate_key, bls12381._g1_neg(self._members[index].public_key)
                )

    n_shards: uint256 = convert(self.n_shards, uint256)
    signer_weight: uint256 = n_shards - non_signer_weight
    if required_weight == REQUIRE_QUORUM:
        assert 3 * signer_weight >= 2 * n_shards + 1, "certificate below quorum"
    else:
        assert 3 * signer_weight >= n_shards + 1, "certificate below validity"
    assert len(signature) == bls12381.G2_POINT_BYTES, "bad signature"
    assert bls12381._verify(aggregate_key, slice(signature, 0, 256), message), "bad signature"
    return convert(signer_weight, uint16)


@external
@view
def committee_size() -> uint256:
    """
    @notice Number of members.
    """
    return len(self._members)


@external
@view
def committee_members() -> DynArray[MemberInfo, MAX_MEMBERS]:
    """
    @notice All members in committee (bitmap) order.
    """
    infos: DynArray[MemberInfo, MAX_MEMBERS] = []
    directory: address = self.staking
    for member: Member in self._members:
        network_address: String[MAX_NETWORK_ADDRESS_BYTES] = member.network_address
        network_key: Bytes[MAX_NETWORK_PUBLIC_KEY_BYTES] = b""
        if directory != empty(address):
            network_address = staticcall NodeDirectory(directory).network_address(member.node_id)
            network_key = staticcall NodeDirectory(directory).network_public_key(member.node_id)
        infos.append(
            MemberInfo(
                node_id=member.node_id,
                public_key=bls12381._g1_to_bytes(member.public_key),
                public_key_compressed=bls12381._g1_compress(member.public_key),
                network_address=network_address,
                weight=member.weight,
                network_public_key=network_key,
            )
        )
    return infos


@external
@view
def node_weights() -> (DynArray[bytes32, MAX_MEMBERS], DynArray[uint16, MAX_MEMBERS]):
    """
    @notice Node IDs and weights in committee order (what reward settlement needs).
    """
    node_ids: DynArray[bytes32, MAX_MEMBERS] = []
    weights: DynArray[uint16, MAX_MEMBERS] = []
    for member: Member in self._members:
        node_ids.append(member.node_id)
        weights.append(member.weight)
    return node_ids, weights


@external
@view
def member_index(node_id: bytes32) -> (bool, uint256):
    """
    @notice Whether `node_id` is a member, and if so its index in committee (bitmap) order.
    @dev A binary search over the members, kept in strictly increasing node ID order: at
        most MEMBER_SEARCH_STEPS reads of one storage slot each, where copying the members
        out (`node_weights`) reads every slot of every member.
    """
    target: uint256 = convert(node_id, uint256)
    low: uint256 = 0
    high: uint256 = len(self._members)
    for _: uint256 in range(MEMBER_SEARCH_STEPS):
        if low >= high:
            break
        middle: uint256 = (low + high) // 2
        found: uint256 = convert(self._members[middle].node_id, uint256)
        if found == target:
            return True, middle
        if found < target:
            low = middle + 1
        else:
            high = middle
    return False, 0


@external
@view
def committee_member_shards(index: uint256) -> DynArray[uint16, MAX_SHARDS]:
    """
    @notice The shard indices member `index` holds, ascending.
    """
    assert index < len(self._members), "no such member"
    owners: Bytes[MAX_SHARDS] = self._shard_owners
    shards: DynArray[uint16, MAX_SHARDS] = []
    for shard: uint256 in range(len(owners), bound=MAX_SHARDS):
        if convert(slice(owners, shard, 1), uint256) == index:
            shards.append(convert(shard, uint16))
    return shards


@external
@view
def shard_assignment() -> Bytes[MAX_SHARDS]:
    """
    @notice Byte i is the committee index of the member holding shard i.
    """
    return self._shard_owners


@external
@view
def total_aggregated_key() -> Bytes[128]:
    """
    @notice The sum of all member keys (EIP-2537 G1 encoding).
    """
    return bls12381._g1_to_bytes(self._total_key)
