# pragma version ~=0.4.3
# pragma evm-version prague
"""
@title Storage challenges: one shared random seed per epoch, and the nodes that passed
@notice Walrus itself has no storage challenges (spec/walrus-system.md 3.6); this contract adds
    the lightweight variant of the Walrus paper (arXiv 2505.05370, section 4.6): a random
    coin shared by all nodes picks a sample of blobs, every node of the committee answers for
    its slivers of them, its peers check the answers and sign a CHALLENGE_ATTESTATION, and a
    quorum of signatures (2f + 1 shards) is posted here. System.vy consults this contract when
    it settles an epoch's rewards: once an epoch's challenge started, a node without a
    certificate for that epoch is not paid (System.vy `_settle_epoch`). It is a contract of
    its own because System is close to the 24 KiB code limit; System knows it from its
    constructor and it learns System once, from its deployer (`attach`).

    Theory of operation, per epoch E (the current epoch of System):

        window opens (epoch_start_s + epoch_duration_s // 2)
          --schedule_challenge--> scheduled (seed_block = block.number + 1)
          --start_challenge, once block.number > seed_block--> started (seed)
          --certify_challenge(node), once per node--> node passed

    All three steps are permissionless: any node (or anyone) may drive them, and each fails
    with a reason when it is early or already done. The seed is
    keccak256(blockhash(seed_block) || uint256(E) || address(this)) (Solidity's
    abi.encodePacked of a bytes32, a uint256 and an address: 32 + 32 + 20 bytes).

    Why the middle of the epoch. The window opens at a constant fraction of the epoch so that
    blobs certified early in the epoch are covered, there is half an epoch for the challenge
    to run before the epoch change settles rewards, and no challenge overlaps an epoch change
    (shards move between nodes then, and the committee that is challenged must be the one
    that is paid). Staking's voting_end also comes at half an epoch; the two do not interact.

    Why the hash of a future block. The seed must be unknown to every node until the
    challenge starts, or a node could fetch just the sampled slivers it lacks. When
    `schedule_challenge` runs, seed_block is the next block, which does not exist yet, so no
    node (the caller included) can predict its hash; after it is mined, the seed is fixed and
    `start_challenge` only publishes it. This needs no commit-reveal round among the nodes,
    which a node could stall or bias by not revealing. The producer of the seed block is the
    only party with a choice: it may withhold the block (one bit of bias: the next producer
    makes it) or, as a block hash commits to the whole block, choose among the blocks it could
    publish. Biasing the seed only helps a node that lacks some blobs and also produces the
    seed block, and every epoch draws a new sample. BLOCKHASH answers only for the last 256
    blocks: if nobody started the challenge in time, `schedule_challenge` may be called again
    with a new seed block (the old seed was never published, so this gives no choice among
    published seeds).

    Limits on the devchain. The devchain mines one block per transaction and none otherwise:
    the seed block is the block of the next transaction anyone sends (or of `evm_mine`), so
    `start_challenge` succeeds only from the transaction after that one, and the sender of
    the next transaction chooses the content of the seed block. The devchain is a trusted,
    single producer for tests and devnets; the argument above is for a public chain.

    Certificates. `certify_challenge` builds the CHALLENGE_ATTESTATION message itself (intent
    7, messages.vy) from System's current epoch, the node, the stored seed and the number of
    blobs checked, and asks the current Committee to verify it at REQUIRE_QUORUM: a certificate
    for another epoch, node or seed fails its BLS check ("bad signature"), one below quorum
    its weight check ("certificate below quorum"). Each node passes at most once per epoch.
    Which members passed is also kept as a bitmap by committee index, so that System's reward
    settlement reads one slot for the whole committee.
"""

import messages
import Committee


interface SystemView:
    def epoch() -> uint32: view
    def epoch_start_s() -> uint64: view
    def epoch_duration_s() -> uint64: view
    def committee() -> address: view
    def challenges() -> address: view


# BLOCKHASH returns the hash of one of the 256 most recent blocks only.
BLOCKHASH_WINDOW: constant(uint64) = 256
# A stored certification: this bit set, blobs_checked in the 32 bits below it (0: none).
PASSED_FLAG: constant(uint64) = 4_294_967_296  # 1 << 32


event ChallengeScheduled:
    epoch: uint32
    seed_block: uint64


event ChallengeStart:
    epoch: uint32
    seed: bytes32


event ChallengeCertified:
    epoch: uint32
    node_id: bytes32
    blobs_checked: uint32


struct Challenge:
    # The block whose hash makes the seed (0: not scheduled).
    seed_block: uint64
    # The shared random coin (zero until started).
    seed: bytes32
    # Bit i set: member i of the epoch's committee (committee order) passed.
    passed_members: uint256
    # How many nodes passed (the length of the epoch's `_passed_nodes`).
    passed_count: uint256


# The deployer, who attaches this contract to its System once.
installer: public(address)
# The System contract whose epochs and committees are challenged (empty until attached).
system: public(address)

_challenges: HashMap[uint32, Challenge]
# Per epoch and node: PASSED_FLAG | blobs_checked once certified.
_certified: HashMap[uint32, HashMap[bytes32, uint64]]
# Per epoch, the nodes certified, by the order of their certificates (for `passed_nodes`:
# the committee of a past epoch may no longer be readable, so the bitmap alone cannot name
# them). A map by position rather than a DynArray: titanoboa cannot print the storage of a
# map of dynamic arrays, which the contract tests need when a call reverts.
_passed_nodes: HashMap[uint32, HashMap[uint256, bytes32]]


@deploy
def __init__():
    """
    @notice A challenges contract whose deployer attaches it to a System with `attach`.
    """
    self.installer = msg.sender


@external
def attach(system_contract: address):
    """
    @notice Names the System whose epochs are challenged (installer only, once). That
        System must have been deployed with this contract's address.
    """
    assert msg.sender == self.installer, "not the installer"
    assert self.system == empty(address), "already attached"
    assert system_contract.is_contract, "system is not a contract"
    assert staticcall SystemView(system_contract).challenges() == self, "system does not name this contract"
    self.system = system_contract


@internal
@view
def _system() -> address:
    system_contract: address = self.system
    assert system_contract != empty(address), "not attached"
    return system_contract


@internal
@view
def _window_opens_at(system_contract: address) -> uint64:
    start: uint64 = staticcall SystemView(system_contract).epoch_start_s()
    return start + staticcall SystemView(system_contract).epoch_duration_s() // 2


@external
def schedule_challenge():
    """
    @notice Fixes the seed block of the current epoch's challenge: the next block
        (permissionless, once the challenge window is open). Again only if the challenge
        has not started and the seed block left BLOCKHASH's 256-block window. Emits
        ChallengeScheduled.
    """
    system_contract: address = self._system()
    assert staticcall SystemView(system_contract).committee() != empty(address), "no committee"
    assert convert(block.timestamp, uint64) >= self._window_opens_at(system_contract), "too early"
    epoch: uint32 = staticcall SystemView(system_contract).epoch()
    assert self._challenges[epoch].seed == empty(bytes32), "already started"
    seed_block: uint64 = self._challenges[epoch].seed_block
    now: uint64 = convert(block.number, uint64)
    assert seed_block == 0 or now > seed_block + BLOCKHASH_WINDOW, "already scheduled"
    self._challenges[epoch].seed_block = now + 1
    log ChallengeScheduled(epoch=epoch, seed_block=now + 1)


@external
def start_challenge() -> bytes32:
    """
    @notice Publishes the seed of the current epoch's challenge once its seed block is mined
        (permissionless, within 256 blocks of it; later, schedule again). Emits
        ChallengeStart; returns the seed.
    """
    system_contract: address = self._system()
    epoch: uint32 = staticcall SystemView(system_contract).epoch()
    seed_block: uint64 = self._challenges[epoch].seed_block
    assert seed_block != 0, "not scheduled"
    assert self._challenges[epoch].seed == empty(bytes32), "already started"
    now: uint64 = convert(block.number, uint64)
    assert now > seed_block, "too early"
    assert now <= seed_block + BLOCKHASH_WINDOW, "seed block too old"
    seed: bytes32 = keccak256(
        concat(blockhash(convert(seed_block, uint256)), convert(epoch, bytes32), convert(self, bytes20))
    )
    self._challenges[epoch].seed = seed
    log ChallengeStart(epoch=epoch, seed=seed)
    return seed


@external
def certify_challenge(
    node_id: bytes32,
    blobs_checked: uint32,
    signers_bitmap: Bytes[Committee.MAX_BITMAP_INPUT_BYTES],
    signature: Bytes[Committee.MAX_SIGNATURE_INPUT_BYTES],
):
    """
    @notice Records that `node_id` passed the current epoch's challenge, on a quorum
        certificate of the current committee over CHALLENGE_ATTESTATION(epoch, node_id,
        seed, blobs_checked) (permissionless). Emits ChallengeCertified.
    @param signers_bitmap bit i (LSB first) of byte i // 8 set if member i signed.
    @param signature aggregate BLS signature, EIP-2537 G2 encoding (256 bytes).
    """
    system_contract: address = self._system()
    epoch: uint32 = staticcall SystemView(system_contract).epoch()
    seed: bytes32 = self._challenges[epoch].seed
    assert seed != empty(bytes32), "challenge not started"
    committee: address = staticcall SystemView(system_contract).committee()
    is_member: bool = False
    index: uint256 = 0
    is_member, index = staticcall Committee.__interface__(committee).member_index(node_id)
    assert is_member, "not a committee member"
    assert self._certified[epoch][node_id] == 0, "already certified"
    message: Bytes[messages.CHALLENGE_ATTESTATION_BYTES] = messages._challenge_attestation_message(
        epoch, node_id, seed, blobs_checked
    )
    signer_weight: uint16 = staticcall Committee.__interface__(committee).verify_certificate(
        signature, signers_bitmap, message, Committee.REQUIRE_QUORUM
    )
    self._certified[epoch][node_id] = PASSED_FLAG | convert(blobs_checked, uint64)
    self._challenges[epoch].passed_members |= 1 << index
    position: uint256 = self._challenges[epoch].passed_count
    self._passed_nodes[epoch][position] = node_id
    self._challenges[epoch].passed_count = position + 1
    log ChallengeCertified(epoch=epoch, node_id=node_id, blobs_checked=blobs_checked)


# === Views ===


@external
@view
def challenge_of(epoch: uint32) -> (uint64, bytes32, bool):
    """
    @notice The challenge of `epoch`: its seed block (0: not scheduled), its seed (zero until
        started) and whether it started.
    """
    seed: bytes32 = self._challenges[epoch].seed
    return self._challenges[epoch].seed_block, seed, seed != empty(bytes32)


@external
@view
def passed(epoch: uint32, node_id: bytes32) -> bool:
    """
    @notice Whether `node_id` holds a certificate for the challenge of `epoch`.
    """
    return self._certified[epoch][node_id] != 0


@external
@view
def blobs_checked_of(epoch: uint32, node_id: bytes32) -> uint32:
    """
    @notice How many blobs the certificate of `node_id` for `epoch` says were checked (0
        without a certificate).
    """
    return convert(self._certified[epoch][node_id] & (PASSED_FLAG - 1), uint32)


@external
@view
def passed_nodes(
    epoch: uint32,
) -> (DynArray[bytes32, Committee.MAX_MEMBERS], DynArray[uint32, Committee.MAX_MEMBERS]):
    """
    @notice The nodes certified for the challenge of `epoch`, in the order of their
        certificates, and the number of blobs each certificate says were checked.
    """
    node_ids: DynArray[bytes32, Committee.MAX_MEMBERS] = []
    counts: DynArray[uint32, Committee.MAX_MEMBERS] = []
    for position: uint256 in range(self._challenges[epoch].passed_count, bound=Committee.MAX_MEMBERS):
        node_id: bytes32 = self._passed_nodes[epoch][position]
        node_ids.append(node_id)
        counts.append(convert(self._certified[epoch][node_id] & (PASSED_FLAG - 1), uint32))
    return node_ids, counts


@external
@view
def passed_members(epoch: uint32) -> (bool, uint256):
    """
    @notice What reward settlement needs for `epoch` in one call: whether its challenge
        started, and the members of its committee that passed (bit i: member i in committee
        order).
    """
    return self._challenges[epoch].seed != empty(bytes32), self._challenges[epoch].passed_members


@external
@view
def window_opens_at() -> uint64:
    """
    @notice When (chain seconds) `schedule_challenge` may first be called in the current
        epoch: half an epoch after it started.
    """
    return self._window_opens_at(self._system())
