"""Storage challenges: which blobs a node must prove, and the symbols that prove them.

Theory of operation. Walrus has no storage challenges (spec/walrus-system.md section 3.6); we add
the lightweight variant of the Walrus paper (arXiv 2505.05370, section 4.6): a shared random coin
picks the blobs each node must prove, instead of challenging every blob.

1. **Sample.** A challenge of epoch e has a 32-byte `seed` (the shared coin, from the chain).
   Every node derives, for each challenged node A, the same `challenge_sample(seed, A.node_id,
   blob_ids, sample_size(len(blob_ids)))` from the set of blobs to prove (which set, for example
   the blobs certified and live at the challenge start, is the node side's rule: nodes that
   disagree on it derive different samples). `sample_size` is the calculation below.
2. **Answer.** For each sampled blob and each peer B, A sends `challenge_answer(...)`: the
   symbols at crossings of A's sliver pairs and B's (`shared_symbol_ids` lists them all;
   `challenge_positions` picks the `checks_per_verifier` that B checks, since all of them would
   cost a verifier about a blob per blob), each with its Merkle proof. These are
   exactly the recovery symbols A would send B to rebuild B's slivers
   (spec/encoding.md section 9, spec/walrus-system.md section 3.4), so they reuse
   `walruspy.core.symbols`. Only A (from its slivers) and B hold them; while the challenge runs,
   nodes stop serving recovery symbols (paper 4.6), so A cannot rebuild what it dropped.
3. **Check.** B runs `verify_challenge_answer`: exactly the expected symbols, each proof valid
   against A's sliver hashes in the (verified) metadata, each symbol equal to the one at that
   position of B's own sliver. A wrong answer is a `ChallengeVerificationError`; a symbol that
   verifies against A's commitment but differs from B's verified copy is not A's fault (the blob
   was encoded inconsistently at that crossing) and raises `InconsistentBlobError`.
4. **Attest.** B signs `ChallengeAttestationMessage(epoch, A.node_id, seed, blobs_checked)`
   (`walruspy.core.messages`, intent 7); 2f+1 weight of attestations is A's certificate.

**Sample size** (`sample_size`). A node that lost its slivers of M of the N blobs passes only if
none of the k sampled blobs is among them. Drawn without replacement (what `challenge_sample`
does) the pass probability is hypergeometric, `C(N-M, k) / C(N, k) = prod_{t<k} (N-M-t)/(N-t)`,
and each factor is at most (N-M)/N, so with M >= missing·N it is at most `(1 - missing)^k`, the
with-replacement probability. The smallest k with `(1 - missing)^k <= failure` is
`k = ceil(ln(failure) / ln(1 - missing))`; `sample_size` returns `min(N, k)` (with k >= N every
blob is checked and a node missing any blob fails). For `failure = 1e-9`:

    missing   ln(1e-9)/ln(1-missing)   k      (1-missing)^k
    1 %       2061.95                  2062   9.995e-10   (the defaults; 2061 gives 1.0096e-9)
    5 %        404.02                   405   9.507e-10
    10 %       196.69                   197   9.678e-10

Exact pass probability of a node missing 1 % (M = ceil(N/100)) of N blobs at k = min(N, 2062),
and the smallest k the exact hypergeometric bound would allow:

    N            pass probability   smallest exact k
    <= 2062      0 (all checked)    -
    3,000        5.2e-16            1490
    10,000       8.2e-11            1863
    100,000      8.0e-10            2041
    1,000,000    9.8e-10            2060

(The paper's own example, 640 to 7000 files for a node holding 90 to 99 % of blobs, is the same
formula at failure 1e-30: 0.9^640 ~ 5e-30, 0.99^7000 ~ 3e-31.)

**Checks per verifier** (`checks_per_verifier`). A certificate needs a quorum q = 2f+1 of
shards (`params.quorum_weight`); at most f of them are Byzantine, the challenged node's own
attestation included, so every certificate holds attestations of honest verifiers of weight at
least h = q - f. A cheater passes only if some set S of honest verifiers with weight(S) >= h
all pass. Verifier v checks k_v positions drawn independently of the others (its own PRF
stream), each hitting a lost sliver with probability m, so S all pass with probability at most
prod_{v in S} (1 - m)^{k_v}. With K = `joint_checks(V)` for V possible verifiers and
k_v = min(K, ceil(K·w_v / h)), every S with weight(S) >= h has sum k_v >= K, and the union
bound over the at most 2^V such sets gives

    P(pass) <= 2^V · (1 - m)^K <= failure   for   K = ceil((ln(1/failure) + V·ln 2) / -ln(1 - m)).

Each verifier thus checks in proportion to its weight, and the checks of a whole committee
grow with V rather than with V·2062 (one full 2,062 per verifier). For m = 1%, failure 10^-9:

    members  n      w each  h    K      k_v    all verifiers   one 2,062 each
    4        100    25      34   2269   1669   5,007           6,186
    7        70     10      24   2476   1032   6,192           12,372
    10       1000   100     334  2683   804    7,236           18,558
    100      1000   10      334  8890   267    26,433          204,138

The ceiling of K is computed in floating point; for every V up to 5,000 the quotient is at
least 8e-5 from an integer, far beyond any rounding error, so all nodes agree on it (a test
checks this).

**Traffic per blob** (`max_challenge_proof_bytes`). A holding shards S_A sends peer B
`2·|S_A|·|S_B|` symbols, each a BCS `GeneralRecoverySymbol`: 1 (variant) + 2 (source index) +
ULEB128(ss) + ss + 2 (target index) + 1 + 33·ceil(log2 n) (proof, at most), plus a 32-byte blob ID
and a count per answer. A stores `|S_A|·(p + s)·ss` bytes of slivers for the blob (p = n-2f,
s = n-f, ss the symbol size; `walruspy.core.params`). Per peer the ratio is
`2·|S_B|·(ss + proof + 8) / ((p + s)·ss)`; over all peers replace |S_B| with n - |S_A|. For a
1 MiB blob:

    n      nodes  ss   |S_A|=|S_B|  A stores    symbols/peer  bytes/peer  ratio/peer  all peers
    100    4      462  25           1,166,550   1,250         876,250     0.75        2.25
    1000   10     6    100          600,600     20,000        6,860,000   11.4        103

Symbol data alone is `2·|S_B|/(p + s)` of A's bytes per peer (0.50 and 0.20 here); at n = 1000 the
proofs (331 bytes for a 6-byte symbol) are 96 % of the traffic. This is why the challenge samples
blobs rather than proving all of them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from walruspy.core import params
from walruspy.core.bcs import Reader, Writer, uleb128
from walruspy.core.committee import NODE_ID_BYTES
from walruspy.core.errors import (
    ChallengeVerificationError,
    InconsistentBlobError,
    VerificationError,
)
from walruspy.core.merkle import max_path_length
from walruspy.core.messages import CHALLENGE_SEED_BYTES
from walruspy.core.metadata import VerifiedBlobMetadataWithId
from walruspy.core.params import DIGEST_LEN
from walruspy.core.slivers import SliverData, VerifiedSliver
from walruspy.core.symbols import RecoverySymbol, SymbolSource
from walruspy.core.types import (
    ShardIndex,
    SliverIndex,
    SliverPairIndex,
    SliverType,
    pair_of_shard,
    sliver_index_of_pair,
)

#: Default fraction of its blobs a node may have lost and still be caught with high probability.
DEFAULT_MISSING_FRACTION = 0.01
#: Default largest probability that such a node passes the challenge.
DEFAULT_FAILURE_PROBABILITY = 1e-9
#: `sample_size` for the defaults (when there are at least this many blobs).
DEFAULT_SAMPLE_SIZE = 2062
#: Length of the challenge seed (the shared coin), as in the attestation message.
SEED_BYTES = CHALLENGE_SEED_BYTES
#: Most symbols in one answer: n^2/2 at n = 1000 shards, the worst case of two nodes splitting
#: every shard between them (2·500·500). It bounds what `ChallengeProof.from_bcs` will announce.
MAX_CHALLENGE_SYMBOLS = 500_000

#: Domain separation of the sampling PRF from every other BLAKE2b use.
SAMPLE_DOMAIN = b"walruspy/challenge-sample/v1"
_WORD_BYTES = 8
_WORD_RANGE = 1 << 64
_AXIS_RANK = {SliverType.PRIMARY: 0, SliverType.SECONDARY: 1}

#: A sliver of a node, keyed by its pair and axis.
SliverKey = tuple[SliverPairIndex, SliverType]


# --- sample size -------------------------------------------------------------------------------


def sample_size(
    n_blobs: int,
    missing: float = DEFAULT_MISSING_FRACTION,
    failure: float = DEFAULT_FAILURE_PROBABILITY,
) -> int:
    """How many of `n_blobs` blobs to challenge: `min(n_blobs, ceil(ln(failure)/ln(1-missing)))`.

    A node missing a fraction `missing` of its blobs then passes with probability at most
    `failure` (module docstring: 2062 for the defaults).
    """
    if isinstance(n_blobs, bool) or not isinstance(n_blobs, int) or n_blobs < 0:
        raise ValueError(f"n_blobs must be a non-negative int, got {n_blobs!r}")
    if not 0.0 < missing < 1.0 or not 0.0 < failure < 1.0:
        raise ValueError(f"missing and failure must be in (0, 1), got {missing!r}, {failure!r}")
    log_keep = math.log1p(-missing)
    log_failure = math.log(failure)
    k = max(1, math.ceil(log_failure / log_keep))
    # Correct a rounding error of the division at either end: k is the smallest such integer.
    while k > 1 and (k - 1) * log_keep <= log_failure:
        k -= 1
    while k * log_keep > log_failure:
        k += 1
    return min(n_blobs, k)


def pass_probability(n_blobs: int, n_missing: int, k: int) -> float:
    """Probability that k blobs drawn without replacement from `n_blobs` avoid `n_missing` ones."""
    if not 0 <= n_missing <= n_blobs or not 0 <= k <= n_blobs:
        raise ValueError(f"need 0 <= n_missing, k <= n_blobs, got {n_missing}, {k}, {n_blobs}")
    if k > n_blobs - n_missing:
        return 0.0
    log_p = sum(math.log((n_blobs - n_missing - t) / (n_blobs - t)) for t in range(k))
    return math.exp(log_p)


# --- sampling ----------------------------------------------------------------------------------


def _prf_words(seed: bytes, node_id: bytes) -> Iterator[int]:
    """The PRF stream: block t = BLAKE2b-256(SAMPLE_DOMAIN ‖ seed ‖ node_id ‖ t as u64 LE), each
    block read as four u64 LE words, blocks in order t = 0, 1, 2, ..."""
    prefix = hashlib.blake2b(SAMPLE_DOMAIN + seed + node_id, digest_size=DIGEST_LEN)
    counter = 0
    while True:
        block = prefix.copy()
        block.update(counter.to_bytes(_WORD_BYTES, "little"))
        digest = block.digest()
        for offset in range(0, DIGEST_LEN, _WORD_BYTES):
            yield int.from_bytes(digest[offset : offset + _WORD_BYTES], "little")
        counter += 1


def _uniform_below(words: Iterator[int], bound: int) -> int:
    """A uniform integer in [0, bound): rejection sampling, so no modulo bias.

    Words at or above the largest multiple of `bound` that fits in 2^64 are skipped.
    """
    if not 1 <= bound <= _WORD_RANGE:
        raise ValueError(f"bound {bound} out of range")
    limit = _WORD_RANGE - _WORD_RANGE % bound
    while True:
        word = next(words)
        if word < limit:
            return word % bound


def challenge_sample(
    seed: bytes, node_id: bytes, blob_ids: Sequence[bytes], size: int
) -> list[bytes]:
    """The `size` blob IDs that node `node_id` must prove for the challenge `seed`.

    Uniform without replacement and the same for every caller and every order of `blob_ids`:
    the IDs are sorted (bytewise), then a partial Fisher-Yates shuffle swaps position t
    (t = 0 .. size-1) with position t + `_uniform_below(N - t)` drawn from the PRF stream of
    (seed, node_id); the first `size` IDs are the sample. Returned sorted. With
    `size >= len(blob_ids)` that is every ID. Duplicate IDs are refused (`ValueError`): two callers
    passing the "same" set with and without a duplicate must not silently agree on a sample of
    something else. Blob IDs, the seed and the node ID are 32 bytes each.
    """
    _check_bytes(seed, SEED_BYTES, "challenge seed")
    _check_bytes(node_id, NODE_ID_BYTES, "node ID")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"sample size must be a non-negative int, got {size!r}")
    ordered = sorted(blob_ids)
    for blob_id in ordered:
        _check_bytes(blob_id, DIGEST_LEN, "blob ID")
    for previous, current in itertools.pairwise(ordered):
        if previous == current:
            raise ValueError(f"duplicate blob ID {current.hex()} in the challenged set")
    if size >= len(ordered):
        return ordered
    words = _prf_words(seed, node_id)
    for t in range(size):
        j = t + _uniform_below(words, len(ordered) - t)
        ordered[t], ordered[j] = ordered[j], ordered[t]
    return sorted(ordered[:size])


def _check_bytes(value: object, length: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise ValueError(f"{what} must be {length} bytes, got {value!r}")


# --- shared symbols ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedSymbolId:
    """One symbol A and B share: A's `source_axis` sliver of pair `source_pair`, at the position
    of B's `target_axis` sliver of pair `target_pair` (the axes are orthogonal).

    It is the recovery symbol A would send B to rebuild that sliver of B: symbol
    `target_index(n)` of the expansion of A's sliver `source_index(n)`.
    """

    source_pair: SliverPairIndex
    source_axis: SliverType
    target_pair: SliverPairIndex
    target_axis: SliverType

    def __post_init__(self) -> None:
        for pair in (self.source_pair, self.target_pair):
            if isinstance(pair, bool) or not isinstance(pair, int) or pair < 0:
                raise ValueError(f"a sliver pair index is a non-negative int, got {pair!r}")
        if not isinstance(self.source_axis, SliverType) or self.target_axis is not (
            self.source_axis.orthogonal
        ):
            raise ValueError("a shared symbol joins a sliver with one of the orthogonal axis")

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """The canonical order: source pair, source axis (primary first), target pair."""
        return (self.source_pair, _AXIS_RANK[self.source_axis], self.target_pair)

    def source_index(self, n_shards: int) -> SliverIndex:
        """The sliver index of A's source sliver."""
        return sliver_index_of_pair(self.source_pair, self.source_axis, n_shards)

    def target_index(self, n_shards: int) -> SliverIndex:
        """The sliver index of B's target sliver: the symbol's position in A's expansion."""
        return sliver_index_of_pair(self.target_pair, self.target_axis, n_shards)

    def matrix_position(self, n_shards: int) -> tuple[int, int]:
        """(row, column) of the symbol in the expanded n x n matrix: (primary, secondary index)."""
        source = self.source_index(n_shards)
        target = self.target_index(n_shards)
        return (source, target) if self.source_axis is SliverType.PRIMARY else (target, source)


def _pairs(blob_id: bytes, n_shards: int, shards: Iterable[int], who: str) -> set[SliverPairIndex]:
    pairs = set()
    for shard in shards:
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < n_shards:
            raise ValueError(f"{who}'s shard {shard!r} is out of range for {n_shards} shards")
        pairs.add(pair_of_shard(ShardIndex(shard), blob_id, n_shards))
    return pairs


def shared_symbol_ids(
    blob_id: bytes, n_shards: int, shards_a: Iterable[int], shards_b: Iterable[int]
) -> list[SharedSymbolId]:
    """Every symbol of blob `blob_id` at a crossing of A's and B's sliver pairs, canonical order.

    For each pair i of A and j of B (pairs from shards by the blob's rotation, `pair_of_shard`):
    A's primary sliver i at B's secondary sliver of pair j, and A's secondary sliver of pair i at
    B's primary sliver j; `2·|S_A|·|S_B|` ids. Repeated shards count once; A and B must hold
    disjoint shards (`ValueError`), as two members of one committee do.
    """
    _check_bytes(blob_id, DIGEST_LEN, "blob ID")
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be a positive int, got {n_shards!r}")
    pairs_a = _pairs(blob_id, n_shards, shards_a, "A")
    pairs_b = _pairs(blob_id, n_shards, shards_b, "B")
    if pairs_a & pairs_b:
        raise ValueError("A and B hold a shard in common; a node does not challenge itself")
    return [
        SharedSymbolId(i, axis, j, axis.orthogonal)
        for i in sorted(pairs_a)
        for axis in (SliverType.PRIMARY, SliverType.SECONDARY)
        for j in sorted(pairs_b)
    ]


def joint_checks(
    n_verifiers: int,
    missing: float = DEFAULT_MISSING_FRACTION,
    failure: float = DEFAULT_FAILURE_PROBABILITY,
) -> int:
    """Checks that any honest set of verifiers able to certify a node must hold between them.

    `K = ceil((ln(1/failure) + n_verifiers·ln 2) / -ln(1 - missing))`: the union bound over the
    2^n_verifiers sets of verifiers (module docstring, "Checks per verifier").
    """
    if isinstance(n_verifiers, bool) or not isinstance(n_verifiers, int) or n_verifiers < 0:
        raise ValueError(f"n_verifiers must be a non-negative int, got {n_verifiers!r}")
    if not 0.0 < missing < 1.0 or not 0.0 < failure < 1.0:
        raise ValueError(f"missing and failure must be in (0, 1), got {missing!r}, {failure!r}")
    return math.ceil((-math.log(failure) + n_verifiers * math.log(2)) / -math.log1p(-missing))


def checks_per_verifier(
    verifier_weight: int,
    *,
    n_shards: int,
    n_verifiers: int,
    missing: float = DEFAULT_MISSING_FRACTION,
    failure: float = DEFAULT_FAILURE_PROBABILITY,
) -> int:
    """How many shared symbols a verifier holding `verifier_weight` shards checks of one node.

    `min(K, ceil(K·w / h))` with K = `joint_checks(n_verifiers)` and h = quorum - f, the honest
    weight any certificate contains (module docstring, "Checks per verifier").
    """
    if verifier_weight <= 0:
        return 0
    joint = joint_checks(n_verifiers, missing, failure)
    honest = params.quorum_weight(n_shards) - params.max_n_faulty(n_shards)
    return min(joint, -(-joint * verifier_weight // honest))


_POSITION_DOMAIN = b"walruspy/challenge-position/v1"


def challenge_positions(
    seed: bytes,
    challenged: bytes,
    verifier: bytes,
    *,
    sample: Sequence[bytes],
    shards_challenged: Iterable[int],
    shards_verifier: Iterable[int],
    n_shards: int,
    count: int,
) -> list[tuple[bytes, SharedSymbolId]]:
    """The shared symbols `verifier` checks of `challenged`: (blob ID, symbol) in canonical order.

    Sending every shared symbol of every sampled blob costs about a blob per verifier and blob
    (the traffic table above). The verifier's share of the checks, `count`
    (`checks_per_verifier`), is drawn over the whole sample, wherever the loss lies: every
    crossing if there are at most `count`, else `count` distinct ones drawn by a PRF of the
    seed and both node IDs (64-bit words: the modulo bias is below 2^-40). Order: blob ID, then
    `SharedSymbolId.sort_key`.
    """
    own, other = sorted(set(shards_challenged)), sorted(set(shards_verifier))
    blobs = sorted(set(sample))
    if not blobs or not own or not other or count <= 0:
        return []
    axes = (SliverType.PRIMARY, SliverType.SECONDARY)

    def position(blob: bytes, axis: SliverType, a: int, b: int) -> tuple[bytes, SharedSymbolId]:
        source = pair_of_shard(ShardIndex(a), blob, n_shards)
        target = pair_of_shard(ShardIndex(b), blob, n_shards)
        return blob, SharedSymbolId(source, axis, target, axis.orthogonal)

    chosen: set[tuple[bytes, SharedSymbolId]] = set()
    if len(blobs) * len(own) * len(other) * 2 <= count:
        chosen = {position(b, x, i, j) for b in blobs for x in axes for i in own for j in other}
        return sorted(chosen, key=lambda item: (item[0], item[1].sort_key))
    counter = 0
    while len(chosen) < count:
        digest = hashlib.blake2b(
            _POSITION_DOMAIN + seed + challenged + verifier + counter.to_bytes(8, "little"),
            digest_size=32,
        ).digest()
        counter += 1
        word = [int.from_bytes(digest[i : i + 8], "little") for i in (0, 8, 16, 24)]
        chosen.add(
            position(
                blobs[word[0] % len(blobs)],
                axes[word[1] & 1],
                own[word[2] % len(own)],
                other[word[3] % len(other)],
            )
        )
    return sorted(chosen, key=lambda item: (item[0], item[1].sort_key))


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeProof:
    """A's answer for one blob and one peer: the shared symbols with their Merkle proofs.

    BCS: `blob_id [32] ‖ ULEB128(count) ‖ count × GeneralRecoverySymbol` (`RecoverySymbol`), the
    symbols in the order of the ids they answer.
    """

    blob_id: bytes
    symbols: tuple[RecoverySymbol, ...]

    def __post_init__(self) -> None:
        _check_bytes(self.blob_id, DIGEST_LEN, "blob ID")
        object.__setattr__(self, "symbols", tuple(self.symbols))
        if len(self.symbols) > MAX_CHALLENGE_SYMBOLS:
            raise ValueError(f"{len(self.symbols)} symbols exceed {MAX_CHALLENGE_SYMBOLS}")
        if not all(isinstance(symbol, RecoverySymbol) for symbol in self.symbols):
            raise TypeError("a challenge proof holds RecoverySymbols")

    def to_bcs(self) -> bytes:
        """The BCS bytes."""
        writer = Writer().fixed(self.blob_id).uleb128(len(self.symbols))
        for symbol in self.symbols:
            symbol.write(writer)
        return writer.finish()

    @classmethod
    def from_bcs(cls, data: bytes, max_symbols: int = MAX_CHALLENGE_SYMBOLS) -> ChallengeProof:
        """Parse strictly (`DecodeError`); a count over `max_symbols` is refused before reading.

        A checker that knows how many ids it asked for passes that count as `max_symbols`.
        """
        reader = Reader(bytes(data))
        blob_id = reader.fixed(DIGEST_LEN, "blob ID")
        bound = min(max_symbols, MAX_CHALLENGE_SYMBOLS)
        count = reader.uleb128("number of challenge symbols", bound)
        symbols = tuple(RecoverySymbol.read(reader) for _ in range(count))
        reader.finish("challenge proof")
        return cls(blob_id, symbols)


def max_challenge_proof_bytes(n_shards: int, symbol_size: int, n_symbols: int) -> int:
    """An upper bound on `len(ChallengeProof.to_bcs())` for `n_symbols` symbols.

    Exact when no proof holds a padding (`Empty`) node; a transport can use it as a body limit.
    """
    depth = max_path_length(n_shards)
    per_symbol = 1 + 2 + len(uleb128(symbol_size)) + symbol_size + 2
    per_symbol += len(uleb128(depth)) + depth * (1 + DIGEST_LEN)
    return DIGEST_LEN + len(uleb128(n_symbols)) + n_symbols * per_symbol


def _sliver_data(sliver: SliverData | VerifiedSliver) -> SliverData:
    return sliver.sliver if isinstance(sliver, VerifiedSliver) else sliver


def challenge_answer(
    metadata: VerifiedBlobMetadataWithId,
    slivers_of_a: Mapping[SliverKey, SliverData | VerifiedSliver],
    ids: Sequence[SharedSymbolId],
) -> ChallengeProof:
    """A's answer to `ids`: each symbol cut from A's own sliver, with its proof, in `ids` order.

    Each source sliver is expanded and hashed once (`SymbolSource`). A sliver missing from
    `slivers_of_a`, or one that is not the sliver its key names, is a `ValueError` (A cannot
    answer; the caller decides what to report).
    """
    if len(ids) > MAX_CHALLENGE_SYMBOLS:
        raise ValueError(f"{len(ids)} ids exceed {MAX_CHALLENGE_SYMBOLS}")
    n = metadata.n_shards
    sources: dict[SliverKey, SymbolSource] = {}
    symbols = []
    for symbol_id in ids:
        key = (symbol_id.source_pair, symbol_id.source_axis)
        source = sources.get(key)
        if source is None:
            sliver = _sliver_data(_lookup(slivers_of_a, key, "A"))
            _check_sliver(metadata, key, sliver, "A")
            source = sources[key] = SymbolSource(sliver, n)
        symbols.append(source.symbol_for(symbol_id.target_index(n)))
    return ChallengeProof(metadata.blob_id.raw, tuple(symbols))


def _lookup(
    slivers: Mapping[SliverKey, SliverData | VerifiedSliver], key: SliverKey, who: str
) -> SliverData | VerifiedSliver:
    try:
        return slivers[key]
    except KeyError:
        raise ValueError(f"{who} has no {key[1].value} sliver of pair {key[0]}") from None


def _check_sliver(
    metadata: VerifiedBlobMetadataWithId, key: SliverKey, sliver: SliverData, who: str
) -> None:
    pair, axis = key
    index = sliver_index_of_pair(pair, axis, metadata.n_shards)
    if sliver.sliver_type is not axis or sliver.index != index:
        raise ValueError(
            f"{who}'s sliver under {axis.value} pair {pair} is {sliver.sliver_type.value} "
            f"sliver {sliver.index}, not {axis.value} sliver {index}"
        )
    if sliver.symbol_size != metadata.symbol_size:
        raise ValueError(f"{who}'s sliver has symbol size {sliver.symbol_size}, not the blob's")


class _OwnSymbols:
    """B's symbols by (target sliver, position), each own sliver checked and expanded once."""

    __slots__ = ("_expanded", "_metadata", "_slivers")

    def __init__(
        self,
        metadata: VerifiedBlobMetadataWithId,
        slivers: Mapping[SliverKey, SliverData | VerifiedSliver],
    ) -> None:
        self._metadata = metadata
        self._slivers = slivers
        self._expanded: dict[SliverKey, list[bytes]] = {}

    def symbol(self, key: SliverKey, position: int) -> bytes:
        """Symbol `position` of the expansion of B's sliver `key`."""
        expanded = self._expanded.get(key)
        if expanded is None:
            expanded = self._expanded[key] = self._expand(key)
        return expanded[position]

    def _expand(self, key: SliverKey) -> list[bytes]:
        given = _lookup(self._slivers, key, "B")
        metadata = self._metadata
        if isinstance(given, VerifiedSliver):
            if given.blob_id != metadata.blob_id.raw:
                raise ValueError(f"B's sliver under pair {key[0]} is of another blob")
            sliver = given.sliver
        else:
            try:
                sliver = given.verify(metadata).sliver
            except VerificationError as error:
                reason = f"B's own sliver is damaged or of another blob: {error}"
                raise ValueError(reason) from error
        _check_sliver(metadata, key, sliver, "B")
        return sliver.expanded_symbols(metadata.n_shards)


def verify_challenge_answer(
    metadata: VerifiedBlobMetadataWithId,
    answer: ChallengeProof,
    ids: Sequence[SharedSymbolId],
    own_slivers_of_b: Mapping[SliverKey, SliverData | VerifiedSliver],
) -> None:
    """B's check of A's answer to `ids`; returns None when A passes for this blob.

    Raises `ChallengeVerificationError` (A failed) for an answer for another blob, a missing,
    extra or misplaced symbol, or a symbol or proof that does not verify against A's sliver hash
    in `metadata`; `InconsistentBlobError` when a symbol verifies against A's commitment yet
    differs from B's own copy (the blob, not A, is at fault); `ValueError` when B lacks a target
    sliver or its own sliver fails the metadata (a `SliverData` is checked here, once).
    """
    if answer.blob_id != metadata.blob_id.raw:
        raise ChallengeVerificationError(
            f"the answer is for blob {answer.blob_id.hex()}, not {metadata.blob_id.raw.hex()}"
        )
    if len(answer.symbols) != len(ids):
        raise ChallengeVerificationError(
            f"the answer has {len(answer.symbols)} symbols, the challenge asks for {len(ids)}"
        )
    n = metadata.n_shards
    own = _OwnSymbols(metadata, own_slivers_of_b)
    for position, (symbol, symbol_id) in enumerate(zip(answer.symbols, ids, strict=True)):
        source_index = symbol_id.source_index(n)
        target_index = symbol_id.target_index(n)
        expected = (symbol_id.target_axis, source_index, target_index)
        if (symbol.target_type, symbol.source_index, symbol.target_index) != expected:
            raise ChallengeVerificationError(
                f"symbol {position} is {symbol.source_index}->{symbol.target_index} for a "
                f"{symbol.target_type.value} target, expected {symbol_id}"
            )
        try:
            symbol.verify(metadata, target_index, symbol_id.target_axis)
        except VerificationError as error:
            raise ChallengeVerificationError(f"symbol {position} ({symbol_id}): {error}") from error
        key = (symbol_id.target_pair, symbol_id.target_axis)
        if symbol.data != own.symbol(key, source_index):
            raise InconsistentBlobError(
                f"symbol {position} ({symbol_id}) verifies against A's sliver hash but differs "
                "from B's verified sliver: the blob is inconsistent at this crossing"
            )
