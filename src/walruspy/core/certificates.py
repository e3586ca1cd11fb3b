"""Certificates: one aggregate signature from committee members over one message.

Theory of operation (spec/walrus-system.md sections 2.7 and 5). A client collects storage
confirmations (or invalid-blob attestations) from nodes, checks each, and adds their signatures
into a `Certificate` {signers: sorted member indices, serialized_message, aggregate signature}.
On chain the signers travel as a bitmap: bit `i % 8` (least significant first) of byte `i // 8`
marks member `i` in committee order; the bitmap has at most ⌈members / 8⌉ bytes (missing bytes
mean "did not sign") and bits past the member count must be 0, so each signer set has exactly one
shortest-or-full encoding the contract accepts.

`verify_signers_bitmap` is a line-by-line port of Move's `verify_certificate_and_weight` followed
by `messages::new_certified_message` (`contracts/walrus/sources/system/bls_aggregate.move` and
`messages.move` in MystenLabs/walrus):

1. walk the bitmap; bits past the member count must be 0; sum the non-signers' weights and keys;
2. signer weight = n_shards - non-signer weight; it must pass the quorum (3w >= 2n+1) or the
   validity (3w >= n+1) test;
3. aggregate key = the committee's total key - the non-signers' keys; one BLS verify;
4. the message header must have intent version 0, app id 3 and the committee's epoch.

We check the cheap header and weight tests before the pairing (the outcome is the same), and then
decode the body strictly (`walruspy.core.messages`), which the Move code leaves to the caller.
Every failure is a `VerificationError` whose message says what was wrong, with the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, Self

from walruspy.core.committee import Committee
from walruspy.core.crypto import (
    BlsPublicKey,
    BlsSignature,
    aggregate_signatures,
    verify_aggregate_excluding,
)
from walruspy.core.errors import DecodeError, VerificationError
from walruspy.core.messages import (
    MessageHeader,
    ProtocolMessage,
    SignedMessage,
    decode_message,
)

#: Which weight a certificate must reach: a quorum (blob certification) or validity (invalid blob).
Threshold = Literal["quorum", "validity"]

#: Signer indices are u16 in Walrus's certificates.
MAX_SIGNER_INDEX = (1 << 16) - 1


def signers_to_bitmap(signers: Iterable[int], n_members: int) -> bytes:
    """The ⌈n_members / 8⌉-byte bitmap of `signers` (Walrus's `signers_to_bitmap`).

    A signer index outside the committee cannot be encoded: `VerificationError`.
    """
    bitmap = bytearray(-(-n_members // 8))
    for signer in signers:
        if not 0 <= signer < n_members:
            raise VerificationError(
                f"bad signers bitmap: signer index {signer} but the committee has "
                f"{n_members} members"
            )
        bitmap[signer // 8] |= 1 << (signer % 8)
    return bytes(bitmap)


def bitmap_to_signers(bitmap: bytes, n_members: int) -> tuple[int, ...]:
    """The sorted member indices marked in `bitmap`, checked as the contract checks it."""
    max_bytes = -(-n_members // 8)
    if len(bitmap) > max_bytes:
        raise VerificationError(
            f"bad signers bitmap: {len(bitmap)} bytes, at most {max_bytes} for {n_members} members"
        )
    signers = []
    for index in range(8 * len(bitmap)):
        if bitmap[index // 8] >> (index % 8) & 1:
            if index >= n_members:
                raise VerificationError(
                    f"bad signers bitmap: bit {index} is set but the committee has "
                    f"{n_members} members"
                )
            signers.append(index)
    return tuple(signers)


@dataclass(frozen=True, slots=True)
class Certificate:
    """An aggregate signature by the members at `signers` (sorted, distinct) over one message.

    Constructing one checks only its shape; `verify_certificate` checks it against a committee.
    """

    signers: tuple[int, ...]
    serialized_message: bytes
    signature: BlsSignature

    def __post_init__(self) -> None:
        signers = tuple(self.signers)
        if any(isinstance(s, bool) or not isinstance(s, int) for s in signers):
            raise TypeError(f"signer indices must be ints, got {self.signers!r}")
        if any(not 0 <= s <= MAX_SIGNER_INDEX for s in signers):
            raise ValueError(f"signer indices must be u16, got {self.signers!r}")
        if any(a >= b for a, b in pairwise(signers)):
            raise ValueError(f"signer indices must be sorted and distinct, got {signers!r}")
        if not isinstance(self.serialized_message, bytes):
            raise TypeError("serialized_message must be bytes")
        if not isinstance(self.signature, BlsSignature):
            raise TypeError("signature must be a BlsSignature")
        object.__setattr__(self, "signers", signers)

    @classmethod
    def from_signatures(
        cls, serialized_message: bytes, signatures: Iterable[tuple[int, BlsSignature]]
    ) -> Self:
        """Aggregate (member index, signature) pairs over `serialized_message`.

        The signatures are not checked here; each should have been verified when it arrived.
        """
        by_signer: dict[int, BlsSignature] = {}
        for index, signature in signatures:
            if index in by_signer:
                raise ValueError(f"member {index} appears twice")
            by_signer[index] = signature
        if not by_signer:
            raise ValueError("a certificate needs at least one signature")
        signers = tuple(sorted(by_signer))
        aggregate = aggregate_signatures(by_signer[index] for index in signers)
        return cls(signers, serialized_message, aggregate)

    @classmethod
    def from_signed_messages(cls, signed: Iterable[tuple[int, SignedMessage]]) -> Self:
        """Aggregate (member index, signed message) pairs, which must all sign one message."""
        pairs = list(signed)
        if not pairs:
            raise ValueError("a certificate needs at least one signature")
        message = pairs[0][1].serialized_message
        if any(item.serialized_message != message for _, item in pairs):
            raise ValueError("the signed messages differ")
        return cls.from_signatures(message, ((index, item.signature) for index, item in pairs))

    @classmethod
    def from_bitmap(
        cls, bitmap: bytes, n_members: int, serialized_message: bytes, signature: BlsSignature
    ) -> Self:
        """A certificate from the on-chain form (the bitmap checked as the contract does)."""
        return cls(bitmap_to_signers(bitmap, n_members), serialized_message, signature)

    def signers_bitmap(self, n_members: int) -> bytes:
        """The signers as the ⌈n_members / 8⌉-byte bitmap the contract takes."""
        return signers_to_bitmap(self.signers, n_members)


@dataclass(frozen=True, slots=True)
class CertifiedMessage:
    """A message a certificate proved, with the weight that signed it (Move `CertifiedMessage`)."""

    message: ProtocolMessage
    signer_weight: int


def _passes(committee: Committee, weight: int, threshold: Threshold) -> bool:
    if threshold == "quorum":
        return committee.is_quorum(weight)
    if threshold == "validity":
        return committee.is_above_validity(weight)
    raise ValueError(f"unknown threshold {threshold!r}")


def _threshold_text(committee: Committee, threshold: Threshold) -> str:
    if threshold == "quorum":
        return f"a quorum needs {committee.quorum_weight} (3w >= 2n + 1)"
    return f"validity needs {committee.validity_weight} (3w >= n + 1)"


def verify_signers_bitmap(
    committee: Committee,
    signers_bitmap: bytes,
    serialized_message: bytes,
    signature: BlsSignature,
    threshold: Threshold = "quorum",
) -> CertifiedMessage:
    """Check a certificate in its on-chain form exactly as the Move contract does.

    Returns the decoded message and the signers' weight; raises `VerificationError` with the
    reason otherwise (bad bitmap, wrong epoch or header, weight below the threshold, bad
    signature, undecodable body).
    """
    if threshold not in ("quorum", "validity"):
        raise ValueError(f"unknown threshold {threshold!r}")
    signers = set(bitmap_to_signers(signers_bitmap, committee.n_members))
    try:
        header = MessageHeader.peek(serialized_message)
    except DecodeError as error:
        raise VerificationError(f"certificate message header is invalid: {error}") from error
    if header.epoch != committee.epoch:
        raise VerificationError(
            f"certificate message is for epoch {header.epoch}, "
            f"the committee is for epoch {committee.epoch}"
        )
    non_signer_keys: list[BlsPublicKey] = []
    non_signer_weight = 0
    for index, member in enumerate(committee.members):
        if index not in signers:
            non_signer_weight += member.weight
            non_signer_keys.append(member.public_key)
    weight = committee.n_shards - non_signer_weight
    if not _passes(committee, weight, threshold):
        raise VerificationError(
            f"signers hold {weight} of {committee.n_shards} shards; "
            f"{_threshold_text(committee, threshold)}"
        )
    if not verify_aggregate_excluding(
        committee.total_aggregated_key, non_signer_keys, serialized_message, signature
    ):
        raise VerificationError(
            f"aggregate signature of members {sorted(signers)} does not verify over the "
            f"{header.intent_type.name} message for epoch {header.epoch}"
        )
    try:
        message = decode_message(serialized_message)
    except DecodeError as error:
        raise VerificationError(f"certified message does not decode: {error}") from error
    return CertifiedMessage(message, weight)


def verify_certificate(
    committee: Committee, certificate: Certificate, threshold: Threshold = "quorum"
) -> CertifiedMessage:
    """Verify `certificate` against `committee` as the contract will (see the module docstring).

    Use "quorum" for blob certification and "validity" for invalid-blob certificates.
    """
    bitmap = certificate.signers_bitmap(committee.n_members)
    return verify_signers_bitmap(
        committee, bitmap, certificate.serialized_message, certificate.signature, threshold
    )
