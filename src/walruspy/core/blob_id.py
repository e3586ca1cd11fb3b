"""The blob ID: the 32-byte content address of a blob (spec/encoding.md section 6).

    blob_id = BLAKE2b-256( encoding_type u8 ‖ unencoded_length u64 LE ‖ root_hash[32] )

which is the hash of the BCS encoding of `{encoding_type, size, root_hash}`. Its text form (CLI,
HTTP paths, JSON) is URL-safe base64 without padding, always 43 characters. On chain our contracts
keep the raw 32 bytes as `bytes32` (the Move contracts read them as a little-endian u256;
`as_u256_le` gives that number, which `convert-blob-id` prints and parses).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from walruspy.core.errors import BlobIdError
from walruspy.core.params import DIGEST_LEN

_TEXT_LENGTH = 43
_TEXT_ALPHABET = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True, order=True)
class BlobId:
    """A blob ID: 32 bytes, shown as 43 characters of URL-safe base64."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != DIGEST_LEN:
            raise BlobIdError(f"a blob ID is {DIGEST_LEN} bytes, got {self.raw!r:.80}")

    @classmethod
    def from_metadata(cls, encoding_type: int, unencoded_length: int, root_hash: bytes) -> BlobId:
        """Derive the blob ID from the metadata's encoding type, length and Merkle root."""
        if len(root_hash) != DIGEST_LEN:
            raise ValueError(f"root hash must be {DIGEST_LEN} bytes, got {len(root_hash)}")
        data = bytes((encoding_type,)) + unencoded_length.to_bytes(8, "little") + root_hash
        return cls(hashlib.blake2b(data, digest_size=DIGEST_LEN).digest())

    @classmethod
    def parse(cls, text: str) -> BlobId:
        """Parse the 43-character URL-safe base64 form, naming what is wrong on failure."""
        if not isinstance(text, str):
            raise BlobIdError(f"a blob ID must be a string, got {type(text).__name__}")
        if len(text) != _TEXT_LENGTH or not _TEXT_ALPHABET.match(text):
            raise BlobIdError(
                f"invalid blob ID {text[:60]!r}: expected {_TEXT_LENGTH} characters of URL-safe "
                "base64 without padding (A-Z a-z 0-9 - _)"
            )
        try:
            raw = base64.urlsafe_b64decode(text + "=")
        except binascii.Error as exc:  # pragma: no cover - the alphabet check rules this out
            raise BlobIdError(f"invalid blob ID {text!r}: {exc}") from exc
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
            raise BlobIdError(f"invalid blob ID {text!r}: non-canonical base64 (trailing bits)")
        return cls(raw)

    @classmethod
    def from_hex(cls, text: str) -> BlobId:
        """Parse 64 hexadecimal digits (an optional 0x prefix is allowed)."""
        digits = text[2:] if text.startswith(("0x", "0X")) else text
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise BlobIdError(f"invalid hex blob ID {text[:80]!r}") from None
        return cls(raw)

    @classmethod
    def from_u256_le(cls, value: int) -> BlobId:
        """The blob ID whose little-endian u256 reading is `value` (Move's on-chain form)."""
        if not 0 <= value < 1 << 256:
            raise BlobIdError(f"{value} is not a u256")
        return cls(value.to_bytes(DIGEST_LEN, "little"))

    def as_u256_le(self) -> int:
        """The blob ID as the little-endian u256 that Walrus's Move contracts use."""
        return int.from_bytes(self.raw, "little")

    def hex(self) -> str:
        """The 64 lowercase hex digits of the raw bytes."""
        return self.raw.hex()

    def __str__(self) -> str:
        return base64.urlsafe_b64encode(self.raw).rstrip(b"=").decode()

    def __repr__(self) -> str:
        return f"BlobId({self})"
