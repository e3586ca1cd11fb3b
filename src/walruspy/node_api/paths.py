"""Routes of the node REST API: templates, path and query builders, and their strict parsers.

Theory of operation (spec/walrus-system.md 3.1; Walrus `walrus-service/src/node/server/routes.rs`
for the templates and `walrus-storage-node-client/src/client.rs` for the query strings): the
server registers `ROUTES` and parses parameters with the `parse_*` functions; the client builds
the same paths and queries with the builders. Templates use `{name}` placeholders, the syntax of
both axum and aiohttp, spelled exactly as in Walrus (`recoverySymbols`, `inconsistencyProof`,
`sync_shard`, `wait_for_registration`, `targetSliver`, ...).

Path parameters: `{blob_id}` is the 43-character URL-safe base64 blob ID; `{sliver_pair_index}`
is a u16 sliver *pair* index (not a shard index); `{sliver_type}` is `primary` or `secondary`;
`{object_id}` is `0x` + 64 hex digits (Sui's `ObjectID` display form; our `Blob` object IDs are
32 bytes too). Numbers must be canonical decimals (no sign, no leading zero).

Queries come in as `(key, value)` pairs, repeats included (aiohttp's `request.query.items()`).
Booleans are `true`/`false` as serde_urlencoded reads them. Unknown keys are ignored except on the
upload routes, where Walrus's `UploadIntentQuery` denies them. Every parser raises
`InvalidInputError` with a message naming the parameter; the server answers it with
`InvalidRequestError` (or `InvalidFilterError` for symbol filters).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import quote_plus

from walruspy.core.blob_id import BlobId
from walruspy.core.errors import InvalidInputError
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType

API_DOCS_ROUTE = "/v1/api"
METADATA_ROUTE = "/v1/blobs/{blob_id}/metadata"
METADATA_STATUS_ROUTE = "/v1/blobs/{blob_id}/metadata/status"
SLIVER_ROUTE = "/v1/blobs/{blob_id}/slivers/{sliver_pair_index}/{sliver_type}"
SLIVER_STATUS_ROUTE = "/v1/blobs/{blob_id}/slivers/{sliver_pair_index}/{sliver_type}/status"
#: walruspy's batch routes (Walrus has none): many slivers of one blob in one BCS `Vec<Sliver>`,
#: uploaded with PUT, read with GET (`SliversQuery`).
SLIVERS_ROUTE = "/v1/blobs/{blob_id}/slivers"
PERMANENT_CONFIRMATION_ROUTE = "/v1/blobs/{blob_id}/confirmation/permanent"
DELETABLE_CONFIRMATION_ROUTE = "/v1/blobs/{blob_id}/confirmation/deletable/{object_id}"
RECOVERY_SYMBOLS_ROUTE = "/v1/blobs/{blob_id}/recoverySymbols"
DECODING_SYMBOLS_ROUTE = "/v1/blobs/{blob_id}/decodingSymbols"
INCONSISTENCY_PROOF_ROUTE = "/v1/blobs/{blob_id}/inconsistencyProof/{sliver_type}"
BLOB_STATUS_ROUTE = "/v1/blobs/{blob_id}/status"
HEALTH_ROUTE = "/v1/health"
SYNC_SHARD_ROUTE = "/v1/migrate/sync_shard"
#: walruspy's storage challenges (Walrus has none): a challenged node's proof for one verifier,
#: a page of positions at a time, and the attestation a verifier gives a challenged node.
CHALLENGE_PROOF_ROUTE = "/v1/challenges/{epoch}/proof/{node_id}"
CHALLENGE_ATTESTATION_ROUTE = "/v1/challenges/{epoch}/attestation/{node_id}"

#: Most symbol IDs one recovery-symbol request may name. Recovering any sliver needs at most
#: n - f symbols (667 at n = 1000), and aiohttp's default 8,190-byte request line holds about 680
#: `id=` parameters anyway.
MAX_SYMBOL_IDS = 1024
#: Most target slivers of one decoding-symbol request: more than any node holds at n = 1000.
MAX_TARGET_SLIVERS = 1024
#: Most query parameters a parser looks at before refusing the query.
MAX_QUERY_PAIRS = MAX_SYMBOL_IDS + 8
#: Largest u16, the range of sliver and sliver-pair indices.
_U16_MAX = (1 << 16) - 1
_U64_MAX = (1 << 64) - 1
_OBJECT_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class Route:
    """One route: its HTTP method, its template, and a short name for logs and metrics."""

    name: str
    method: str
    template: str


#: Every route of the node API, in Walrus's order.
ROUTES: tuple[Route, ...] = (
    Route("api_docs", "GET", API_DOCS_ROUTE),
    Route("get_metadata", "GET", METADATA_ROUTE),
    Route("put_metadata", "PUT", METADATA_ROUTE),
    Route("get_metadata_status", "GET", METADATA_STATUS_ROUTE),
    Route("get_sliver", "GET", SLIVER_ROUTE),
    Route("put_sliver", "PUT", SLIVER_ROUTE),
    Route("get_sliver_status", "GET", SLIVER_STATUS_ROUTE),
    Route("get_permanent_confirmation", "GET", PERMANENT_CONFIRMATION_ROUTE),
    Route("get_deletable_confirmation", "GET", DELETABLE_CONFIRMATION_ROUTE),
    Route("list_recovery_symbols", "GET", RECOVERY_SYMBOLS_ROUTE),
    Route("list_decoding_symbols", "GET", DECODING_SYMBOLS_ROUTE),
    Route("inconsistency_proof", "POST", INCONSISTENCY_PROOF_ROUTE),
    Route("get_blob_status", "GET", BLOB_STATUS_ROUTE),
    Route("health_info", "GET", HEALTH_ROUTE),
    Route("sync_shard", "POST", SYNC_SHARD_ROUTE),
)
#: walruspy's routes beyond Walrus's: storage challenges (Walrus has none).
CHALLENGE_ROUTES: tuple[Route, ...] = (
    Route("get_challenge_proof", "GET", CHALLENGE_PROOF_ROUTE),
    Route("get_challenge_attestation", "GET", CHALLENGE_ATTESTATION_ROUTE),
)

#: walruspy's routes beyond Walrus's that clients use when a node has them: batch upload, read.
BATCH_ROUTES: tuple[Route, ...] = (
    Route("get_slivers", "GET", SLIVERS_ROUTE),
    Route("put_slivers", "PUT", SLIVERS_ROUTE),
)
#: Most slivers one batch read may name (aiohttp's 8,190-byte request line holds about 680).
MAX_BATCH_READ_SLIVERS = 512

#: A query string as ordered `(key, value)` pairs.
QueryPairs: TypeAlias = list[tuple[str, str]]


# --- path builders ----------------------------------------------------------------------------


def _blob(blob_id: BlobId, rest: str) -> str:
    return f"/v1/blobs/{blob_id}/{rest}"


def metadata_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/metadata`."""
    return _blob(blob_id, "metadata")


def metadata_status_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/metadata/status`."""
    return _blob(blob_id, "metadata/status")


def sliver_path(blob_id: BlobId, pair: SliverPairIndex, sliver_type: SliverType) -> str:
    """`/v1/blobs/{blob_id}/slivers/{pair}/{type}`."""
    _check_u16(pair, "sliver pair index")
    return _blob(blob_id, f"slivers/{pair}/{sliver_type.value}")


def slivers_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/slivers` (walruspy's batch upload)."""
    return _blob(blob_id, "slivers")


def sliver_status_path(blob_id: BlobId, pair: SliverPairIndex, sliver_type: SliverType) -> str:
    """`/v1/blobs/{blob_id}/slivers/{pair}/{type}/status`."""
    return sliver_path(blob_id, pair, sliver_type) + "/status"


def permanent_confirmation_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/confirmation/permanent`."""
    return _blob(blob_id, "confirmation/permanent")


def deletable_confirmation_path(blob_id: BlobId, object_id: bytes) -> str:
    """`/v1/blobs/{blob_id}/confirmation/deletable/0x…` for the `Blob` object `object_id`."""
    return _blob(blob_id, f"confirmation/deletable/{format_object_id(object_id)}")


def recovery_symbols_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/recoverySymbols` (add a `RecoverySymbolsFilter` query)."""
    return _blob(blob_id, "recoverySymbols")


def decoding_symbols_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/decodingSymbols` (add a `DecodingSymbolsQuery`)."""
    return _blob(blob_id, "decodingSymbols")


def inconsistency_proof_path(blob_id: BlobId, sliver_type: SliverType) -> str:
    """`/v1/blobs/{blob_id}/inconsistencyProof/{type}`."""
    return _blob(blob_id, f"inconsistencyProof/{sliver_type.value}")


def blob_status_path(blob_id: BlobId) -> str:
    """`/v1/blobs/{blob_id}/status`."""
    return _blob(blob_id, "status")


def with_query(path: str, pairs: QueryPairs) -> str:
    """`path?k=v&...` in the given order, or `path` alone when there are no pairs (as
    `urlencode`, which quotes every key and value: a batch of 300 sliver numbers took 2 ms)."""
    if not pairs:
        return path
    return path + "?" + "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in pairs)


#: Characters `quote_plus` leaves as they are.
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def _quoted(text: str) -> str:
    return text if _UNRESERVED.issuperset(text) else quote_plus(text)


# --- path parameter parsers -------------------------------------------------------------------


def _check_u16(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U16_MAX:
        raise ValueError(f"{what} must be a u16, got {value!r}")


def _parse_uint(text: str, what: str, max_value: int) -> int:
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise InvalidInputError(f"invalid {what} {text[:40]!r}: expected a decimal integer")
    value = int(text) if len(text) <= 20 else max_value + 1
    if value > max_value:
        raise InvalidInputError(f"invalid {what} {text[:40]!r}: larger than {max_value}")
    return value


def parse_blob_id(text: str) -> BlobId:
    """The `{blob_id}` parameter."""
    return BlobId.parse(text)


def parse_sliver_pair_index(text: str) -> SliverPairIndex:
    """The `{sliver_pair_index}` parameter: a u16 (the node checks it against n_shards)."""
    return SliverPairIndex(_parse_uint(text, "sliver pair index", _U16_MAX))


def parse_sliver_type(text: str) -> SliverType:
    """The `{sliver_type}` parameter: `primary` or `secondary`."""
    return SliverType.parse(text)


def format_object_id(object_id: bytes) -> str:
    """An object ID as `0x` + 64 lowercase hex digits."""
    if not isinstance(object_id, bytes) or len(object_id) != 32:
        raise ValueError(f"an object ID is 32 bytes, got {object_id!r:.80}")
    return "0x" + object_id.hex()


def parse_object_id(text: str) -> bytes:
    """The `{object_id}` parameter: `0x` + 64 hex digits, either case."""
    if not _OBJECT_ID.match(text):
        raise InvalidInputError(f"invalid object ID {text[:80]!r}: expected 0x and 64 hex digits")
    return bytes.fromhex(text[2:])


# --- queries ----------------------------------------------------------------------------------


def _collect(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group query pairs by key, refusing more than `MAX_QUERY_PAIRS` of them."""
    grouped: dict[str, list[str]] = {}
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_QUERY_PAIRS:
            raise InvalidInputError(f"more than {MAX_QUERY_PAIRS} query parameters")
        grouped.setdefault(key, []).append(value)
    return grouped


def _single(grouped: dict[str, list[str]], key: str) -> str | None:
    values = grouped.get(key)
    if values is None:
        return None
    if len(values) != 1:
        raise InvalidInputError(f"query parameter {key!r} given {len(values)} times")
    return values[0]


def _parse_bool(text: str | None, key: str) -> bool:
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise InvalidInputError(f"query parameter {key!r} must be 'true' or 'false', got {text[:40]!r}")


def upload_intent_query(pending: bool) -> QueryPairs:
    """`pending=true` asks the node to buffer an upload that precedes its registration."""
    return [("pending", "true")] if pending else []


def parse_upload_intent(pairs: Iterable[tuple[str, str]]) -> bool:
    """The `pending` flag of a metadata or sliver PUT; other keys are refused, as in Walrus."""
    grouped = _collect(pairs)
    unknown = sorted(set(grouped) - {"pending"})
    if unknown:
        raise InvalidInputError(
            f"unknown query parameters {unknown[:5]}: only 'pending' is allowed"
        )
    return _parse_bool(_single(grouped, "pending"), "pending")


@dataclass(frozen=True, slots=True)
class ConfirmationWait:
    """Long-poll options of a confirmation request: wait for the registration to arrive."""

    wait_for_registration: bool = False
    wait_ms: int | None = None

    def __post_init__(self) -> None:
        if self.wait_ms is not None and not 0 <= self.wait_ms <= _U64_MAX:
            raise ValueError(f"wait_ms must be a u64, got {self.wait_ms}")

    def to_query(self) -> QueryPairs:
        """`wait_for_registration=true&wait_millis=N`, as Walrus's client sends it."""
        pairs: QueryPairs = []
        if self.wait_for_registration:
            pairs.append(("wait_for_registration", "true"))
        if self.wait_ms is not None:
            pairs.append(("wait_millis", str(self.wait_ms)))
        return pairs

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> ConfirmationWait:
        """Parse the confirmation query."""
        grouped = _collect(pairs)
        millis = _single(grouped, "wait_millis")
        return cls(
            wait_for_registration=_parse_bool(
                _single(grouped, "wait_for_registration"), "wait_for_registration"
            ),
            wait_ms=None if millis is None else _parse_uint(millis, "wait_millis", _U64_MAX),
        )


def challenge_proof_path(epoch: int, verifier: bytes, start: int, count: int) -> str:
    """`/v1/challenges/{epoch}/proof/0x…?start=S&count=C`: positions S..S+C-1 of the proof the
    node gives the verifier `verifier` (a node ID)."""
    path = f"/v1/challenges/{epoch}/proof/{format_object_id(verifier)}"
    return with_query(path, [("start", str(start)), ("count", str(count))])


def challenge_attestation_path(epoch: int, node_id: bytes) -> str:
    """`/v1/challenges/{epoch}/attestation/0x…`: the node's attestation for `node_id`."""
    return f"/v1/challenges/{epoch}/attestation/{format_object_id(node_id)}"


def parse_epoch(text: str) -> int:
    """An epoch path parameter (u32)."""
    return _parse_uint(text, "epoch", (1 << 32) - 1)


def parse_proof_page(pairs: Iterable[tuple[str, str]], max_count: int) -> tuple[int, int]:
    """`start` and `count` of a challenge-proof page (`count` at most `max_count`)."""
    query = _collect(pairs)
    start = _parse_uint(_single(query, "start") or "0", "start", (1 << 32) - 1)
    count = _parse_uint(_single(query, "count") or str(max_count), "count", max_count)
    if count == 0:
        raise InvalidInputError("count must be positive")
    return start, count


def health_query(detailed: bool) -> QueryPairs:
    """`detailed=true` asks for the per-shard status."""
    return [("detailed", "true")] if detailed else []


def parse_health_query(pairs: Iterable[tuple[str, str]]) -> bool:
    """The `detailed` flag of the health route."""
    return _parse_bool(_single(_collect(pairs), "detailed"), "detailed")


@dataclass(frozen=True, slots=True, order=True)
class SymbolId:
    """A recovery symbol named by its primary and secondary sliver indices, `"p-s"` in text."""

    primary: SliverIndex
    secondary: SliverIndex

    def __post_init__(self) -> None:
        _check_u16(self.primary, "primary sliver index")
        _check_u16(self.secondary, "secondary sliver index")

    def __str__(self) -> str:
        return f"{self.primary}-{self.secondary}"

    @classmethod
    def parse(cls, text: str) -> SymbolId:
        """Parse `"p-s"`."""
        primary, sep, secondary = text.partition("-")
        if not sep:
            raise InvalidInputError(
                f"invalid symbol ID {text[:40]!r}: expected 'primary-secondary'"
            )
        return cls(
            SliverIndex(_parse_uint(primary, "primary index of a symbol ID", _U16_MAX)),
            SliverIndex(_parse_uint(secondary, "secondary index of a symbol ID", _U16_MAX)),
        )


@dataclass(frozen=True, slots=True)
class RecoverySymbolsByIds:
    """Recovery symbols named one by one (sorted and deduplicated, as the server does)."""

    ids: tuple[SymbolId, ...]
    proof_axis: SliverType | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.ids) <= MAX_SYMBOL_IDS:
            raise ValueError(f"between 1 and {MAX_SYMBOL_IDS} symbol IDs, got {len(self.ids)}")
        object.__setattr__(self, "ids", tuple(sorted(set(self.ids))))

    def to_query(self) -> QueryPairs:
        """`proofAxis=…&id=p-s&id=…`, Walrus's order."""
        pairs = _proof_axis_pairs(self.proof_axis)
        pairs.extend(("id", str(symbol_id)) for symbol_id in self.ids)
        return pairs


@dataclass(frozen=True, slots=True)
class RecoverySymbolsForSliver:
    """Every symbol this node holds that helps recover the `target_type` sliver `target_sliver`."""

    target_sliver: SliverIndex
    target_type: SliverType
    proof_axis: SliverType | None = None

    def __post_init__(self) -> None:
        _check_u16(self.target_sliver, "target sliver index")

    def to_query(self) -> QueryPairs:
        """`proofAxis=…&targetSliver=i&targetType=t`, Walrus's order."""
        pairs = _proof_axis_pairs(self.proof_axis)
        pairs.append(("targetSliver", str(self.target_sliver)))
        pairs.append(("targetType", self.target_type.value))
        return pairs


#: The two forms of the recovery-symbols query.
RecoverySymbolsFilter: TypeAlias = RecoverySymbolsByIds | RecoverySymbolsForSliver


def _proof_axis_pairs(proof_axis: SliverType | None) -> QueryPairs:
    return [] if proof_axis is None else [("proofAxis", proof_axis.value)]


def parse_recovery_symbols_query(pairs: Iterable[tuple[str, str]]) -> RecoverySymbolsFilter:
    """Parse either `id=…` (repeatable) or `targetSliver=…&targetType=…`, plus `proofAxis`."""
    grouped = _collect(pairs)
    axis_text = _single(grouped, "proofAxis")
    proof_axis = None if axis_text is None else SliverType.parse(axis_text)
    ids = grouped.get("id")
    target = _single(grouped, "targetSliver")
    target_type = _single(grouped, "targetType")
    if ids is not None:
        if target is not None or target_type is not None:
            raise InvalidInputError("give either 'id' or 'targetSliver' and 'targetType', not both")
        if len(ids) > MAX_SYMBOL_IDS:
            raise InvalidInputError(f"{len(ids)} symbol IDs exceed the limit of {MAX_SYMBOL_IDS}")
        return RecoverySymbolsByIds(tuple(SymbolId.parse(text) for text in ids), proof_axis)
    if target is None or target_type is None:
        raise InvalidInputError("give either 'id' or both 'targetSliver' and 'targetType'")
    return RecoverySymbolsForSliver(
        SliverIndex(_parse_uint(target, "targetSliver", _U16_MAX)),
        SliverType.parse(target_type),
        proof_axis,
    )


@dataclass(frozen=True, slots=True)
class SliversQuery:
    """A batch read: the `sliver_type` slivers of `pairs` (walruspy's `GET .../slivers`)."""

    pairs: tuple[SliverPairIndex, ...]
    sliver_type: SliverType

    def __post_init__(self) -> None:
        if not 0 < len(self.pairs) <= MAX_BATCH_READ_SLIVERS:
            raise ValueError(f"between 1 and {MAX_BATCH_READ_SLIVERS} slivers per batch read")
        for pair in self.pairs:
            _check_u16(pair, "sliver pair index")

    def to_query(self) -> QueryPairs:
        """`pair=i&pair=j&sliverType=t`."""
        pairs: QueryPairs = [("pair", str(pair)) for pair in self.pairs]
        pairs.append(("sliverType", self.sliver_type.value))
        return pairs

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> SliversQuery:
        """Parse the query: one `sliverType`, 1 to `MAX_BATCH_READ_SLIVERS` distinct `pair`s."""
        grouped = _collect(pairs)
        texts = grouped.get("pair", [])
        sliver_type = _single(grouped, "sliverType")
        if sliver_type is None:
            raise InvalidInputError("missing query parameter 'sliverType'")
        if not 0 < len(texts) <= MAX_BATCH_READ_SLIVERS:
            raise InvalidInputError(
                f"give 1 to {MAX_BATCH_READ_SLIVERS} 'pair' parameters, got {len(texts)}"
            )
        indices = [parse_sliver_pair_index(text) for text in texts]
        if len(set(indices)) != len(indices):
            raise InvalidInputError("a sliver pair is named twice")
        return cls(tuple(indices), SliverType.parse(sliver_type))


@dataclass(frozen=True, slots=True)
class DecodingSymbolsQuery:
    """Decoding symbols (no proofs) for the `target_type` slivers `target_slivers`."""

    target_slivers: tuple[SliverIndex, ...]
    target_type: SliverType

    def __post_init__(self) -> None:
        if not 0 < len(self.target_slivers) <= MAX_TARGET_SLIVERS:
            raise ValueError(f"between 1 and {MAX_TARGET_SLIVERS} target slivers")
        for index in self.target_slivers:
            _check_u16(index, "target sliver index")

    def to_query(self) -> QueryPairs:
        """`targetSlivers=i&targetSlivers=j&targetType=t`, Walrus's order."""
        pairs: QueryPairs = [("targetSlivers", str(index)) for index in self.target_slivers]
        pairs.append(("targetType", self.target_type.value))
        return pairs

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> DecodingSymbolsQuery:
        """Parse the query; at least one target sliver is required."""
        grouped = _collect(pairs)
        targets = grouped.get("targetSlivers", [])
        target_type = _single(grouped, "targetType")
        if not targets or target_type is None:
            raise InvalidInputError("'targetSlivers' (one or more) and 'targetType' are required")
        if len(targets) > MAX_TARGET_SLIVERS:
            raise InvalidInputError(f"{len(targets)} target slivers exceed {MAX_TARGET_SLIVERS}")
        return cls(
            tuple(SliverIndex(_parse_uint(text, "targetSlivers", _U16_MAX)) for text in targets),
            SliverType.parse(target_type),
        )
