"""The wire form of a storage-challenge proof page, shared by the challenged node and its verifiers.

Theory of operation (walruspy's storage challenges, node/challenges.py; the Walrus paper, arXiv
2505.05370, section 4.6). A verifier asks a challenged node for the symbols at positions both can
compute from the challenge's seed (`walruspy.core.challenge.challenge_positions`), a page of at
most `MAX_PROOF_PAGE` positions at a time. The answer is BCS `Vec<Vec<u8>>`: one
`ChallengeProof` (walruspy.core.challenge: blob ID and recovery symbols with their Merkle proofs)
per run of consecutive positions of one blob, in position order. Pages bound one answer whatever
the symbol size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from walruspy.core.bcs import Reader, Writer
from walruspy.core.challenge import ChallengeProof
from walruspy.core.errors import DecodeError

__all__ = ["MAX_PROOF_PAGE", "MAX_PROOF_PAGE_BYTES", "proof_page_from_bcs", "proof_page_to_bcs"]

#: Positions per page: at the largest symbol size (64 KiB) a page is about 17 MiB; at the sizes
#: of typical blobs a few hundred KiB.
MAX_PROOF_PAGE: Final = 256
#: The largest page a verifier reads: per position a symbol of at most 65,534 bytes and a proof
#: of at most 16 levels of 33 bytes, per blob an ID, with their length prefixes.
MAX_PROOF_PAGE_BYTES: Final = 16 + MAX_PROOF_PAGE * (8 + 32 + 8 + 65_534 + 4 + 16 * 33 + 8)
#: Most bytes of one blob's proof within a page.
_MAX_PROOF_BYTES: Final = MAX_PROOF_PAGE_BYTES


def proof_page_to_bcs(proofs: Sequence[ChallengeProof]) -> bytes:
    """The BCS form of a page."""
    if sum(len(p.symbols) for p in proofs) > MAX_PROOF_PAGE:
        raise ValueError(f"a page answers at most {MAX_PROOF_PAGE} positions")
    writer = Writer().uleb128(len(proofs))
    for proof in proofs:
        writer.bytes(proof.to_bcs())
    return writer.finish()


def proof_page_from_bcs(data: bytes) -> list[ChallengeProof]:
    """Parse a page strictly (`DecodeError` on anything else)."""
    reader = Reader(data)
    count = reader.uleb128("number of blob proofs", MAX_PROOF_PAGE)
    proofs = [
        ChallengeProof.from_bcs(reader.bytes("blob proof", _MAX_PROOF_BYTES), MAX_PROOF_PAGE)
        for _ in range(count)
    ]
    reader.finish("challenge proof page")
    if sum(len(p.symbols) for p in proofs) > MAX_PROOF_PAGE:
        raise DecodeError(f"a page answers at most {MAX_PROOF_PAGE} positions")
    return proofs
