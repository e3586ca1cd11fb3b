# pragma version ~=0.4.3
"""
@title Parsers of Walrus's certified messages
@notice Port of Move `walrus::messages` (spec/walrus-system.md section 2.7).
    Every certified message is a BCS intent header followed by a body:
        intent_type u8 || intent_version u8 (= 0) || app_id u8 (= 3) || epoch u32 LE || body
    BLOB_CERT (intent 1) body:       blob_id (32) || 0x00                      (permanent)
                                     blob_id (32) || 0x01 || object_id (32)    (deletable)
    INVALID_BLOB_ID (intent 2) body: blob_id (32)
    PROOF_OF_POSSESSION (intent 0) body: account (32) || bls_public_key (48, compressed);
    the account is the 20-byte EVM address left-padded with zeros (Walrus: a Sui address).
    CHALLENGE_ATTESTATION (intent 7, ours: Walrus has no storage challenges; Walrus paper
    section 4.6) body: node_id (32) || seed (32) || blobs_checked u32 LE; the contract
    builds it itself (Challenges.vy), so it is never parsed here.
    Blob and object IDs stay the raw 32 bytes Walrus signs (bytes32 here); Move reads the
    blob ID as a little-endian u256 but compares it only for equality, as we do.
    As in Move, bytes after the body are ignored (room for extensions; they are signed).
"""

APP_ID: constant(uint8) = 3
INTENT_VERSION: constant(uint8) = 0
PROOF_OF_POSSESSION_MSG_TYPE: constant(uint8) = 0
BLOB_CERT_MSG_TYPE: constant(uint8) = 1
INVALID_BLOB_ID_MSG_TYPE: constant(uint8) = 2
# After Walrus's six intents (0 to 6): a peer quorum attests that a node passed its challenge.
CHALLENGE_ATTESTATION_MSG_TYPE: constant(uint8) = 7

HEADER_BYTES: constant(uint256) = 7
BLOB_ID_BYTES: constant(uint256) = 32
COMPRESSED_PUBLIC_KEY_BYTES: constant(uint256) = 48
PROOF_OF_POSSESSION_BYTES: constant(uint256) = HEADER_BYTES + 32 + COMPRESSED_PUBLIC_KEY_BYTES
CHALLENGE_ATTESTATION_BYTES: constant(uint256) = HEADER_BYTES + 32 + 32 + 4

# Generous bound on a certified message: the longest Walrus message (BLOB_CERT for a
# deletable blob) is 72 bytes; this bounds memory and the hash-to-curve input.
MAX_MESSAGE_BYTES: constant(uint256) = 1024

PERMANENT: constant(uint8) = 0
DELETABLE: constant(uint8) = 1


struct CertifiedBlobMessage:
    # Move `messages::CertifiedBlobMessage`.
    epoch: uint32
    blob_id: bytes32
    deletable: bool
    # The deletable blob's object ID; zero for permanent blobs.
    object_id: bytes32


@internal
@pure
def _byte_at(data: Bytes[MAX_MESSAGE_BYTES], index: uint256) -> uint8:
    """
    @notice The byte of `data` at `index` (the caller checks the length).
    """
    return convert(slice(data, index, 1), uint8)


@internal
@pure
def _header(message: Bytes[MAX_MESSAGE_BYTES], intent_type: uint8) -> uint32:
    """
    @notice Port of Move `messages::new_certified_message` plus the intent-type check of
        `certify_blob_message` / `invalid_blob_id_message`: checks the header and returns
        the epoch it names.
    """
    assert len(message) >= HEADER_BYTES, "message too short"
    assert self._byte_at(message, 0) == intent_type, "wrong message type"
    assert self._byte_at(message, 1) == INTENT_VERSION, "wrong intent version"
    assert self._byte_at(message, 2) == APP_ID, "wrong app id"
    epoch: uint256 = 0
    for i: uint256 in range(4):
        epoch |= convert(self._byte_at(message, 3 + i), uint256) << (8 * i)
    return convert(epoch, uint32)


@internal
@pure
def _certify_blob_message(message: Bytes[MAX_MESSAGE_BYTES]) -> CertifiedBlobMessage:
    """
    @notice Port of Move `messages::certify_blob_message` and
        `peel_blob_persistence_type`: parses a BLOB_CERT message.
    """
    epoch: uint32 = self._header(message, BLOB_CERT_MSG_TYPE)
    assert len(message) >= HEADER_BYTES + BLOB_ID_BYTES + 1, "message too short"
    blob_id: bytes32 = extract32(message, HEADER_BYTES)
    persistence: uint8 = self._byte_at(message, HEADER_BYTES + BLOB_ID_BYTES)
    if persistence == PERMANENT:
        return CertifiedBlobMessage(
            epoch=epoch, blob_id=blob_id, deletable=False, object_id=empty(bytes32)
        )
    assert persistence == DELETABLE, "bad persistence type"
    assert len(message) >= HEADER_BYTES + BLOB_ID_BYTES + 1 + 32, "message too short"
    return CertifiedBlobMessage(
        epoch=epoch,
        blob_id=blob_id,
        deletable=True,
        object_id=extract32(message, HEADER_BYTES + BLOB_ID_BYTES + 1),
    )


@internal
@pure
def _invalid_blob_id_message(message: Bytes[MAX_MESSAGE_BYTES]) -> (uint32, bytes32):
    """
    @notice Port of Move `messages::invalid_blob_id_message`: parses an INVALID_BLOB_ID
        message into (epoch, blob_id).
    """
    epoch: uint32 = self._header(message, INVALID_BLOB_ID_MSG_TYPE)
    assert len(message) >= HEADER_BYTES + BLOB_ID_BYTES, "message too short"
    return epoch, extract32(message, HEADER_BYTES)


@internal
@pure
def _u32_le(number: uint32) -> Bytes[4]:
    """
    @notice `number` as BCS writes a u32: four bytes, little-endian.
    """
    # Reverse the four low bytes of the big-endian word.
    reversed_word: uint256 = 0
    for i: uint256 in range(4):
        reversed_word |= ((convert(number, uint256) >> (8 * i)) & 255) << (8 * (3 - i))
    return slice(convert(reversed_word, bytes32), 28, 4)


@internal
@pure
def _header_bytes(intent_type: uint8, epoch: uint32) -> Bytes[HEADER_BYTES]:
    """
    @notice The BCS intent header of a message of `intent_type` for `epoch`.
    """
    return concat(
        convert(intent_type, bytes1),
        convert(INTENT_VERSION, bytes1),
        convert(APP_ID, bytes1),
        self._u32_le(epoch),
    )


@internal
@pure
def _proof_of_possession_message(
    epoch: uint32, account: address, public_key: Bytes[COMPRESSED_PUBLIC_KEY_BYTES]
) -> Bytes[PROOF_OF_POSSESSION_BYTES]:
    """
    @notice Port of Move `messages::new_proof_of_possession_msg` and its BCS encoding: the
        bytes a key's owner signs to prove possession of `public_key` (compressed, 48
        bytes) for `account` in `epoch`.
    """
    assert len(public_key) == COMPRESSED_PUBLIC_KEY_BYTES, "public key must be 48 bytes"
    return concat(
        self._header_bytes(PROOF_OF_POSSESSION_MSG_TYPE, epoch),
        convert(account, bytes32),
        public_key,
    )


@internal
@pure
def _challenge_attestation_message(
    epoch: uint32, node_id: bytes32, seed: bytes32, blobs_checked: uint32
) -> Bytes[CHALLENGE_ATTESTATION_BYTES]:
    """
    @notice The CHALLENGE_ATTESTATION message peers sign for `node_id` once it answered the
        challenge of `seed` in `epoch` for all `blobs_checked` sampled blobs (75 bytes).
    """
    return concat(
        self._header_bytes(CHALLENGE_ATTESTATION_MSG_TYPE, epoch),
        node_id,
        seed,
        self._u32_le(blobs_checked),
    )
