"""Tests of the node API wire contract (walruspy.node_api): paths, queries, errors, JSON bodies.

Golden strings come from Walrus's own source and tests (routes.rs, the storage-node client's URL
and query tests, errors.rs's example) so a divergence from Walrus shows up here first.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walruspy.core.blob_id import BlobId
from walruspy.core.errors import DecodeError, InvalidInputError
from walruspy.core.types import SliverIndex, SliverPairIndex, SliverType
from walruspy.node_api import errors, paths
from walruspy.node_api import json_fields as jf
from walruspy.node_api.health import (
    EventProgress,
    OwnedShardStatus,
    ServiceHealthInfo,
    ShardHealthInfo,
    ShardStatus,
    ShardStatusDetail,
    ShardStatusSummary,
)
from walruspy.node_api.schemas import (
    BlobStatus,
    Deletable,
    DeletableCounts,
    EventId,
    Invalid,
    Nonexistent,
    Permanent,
    SignedMessage,
    StoredOnNodeStatus,
    blob_status_from_json,
    blob_status_sort_key,
    blob_status_to_json,
    parse_service_response,
    storage_confirmation_from_json,
    storage_confirmation_to_json,
    success_body,
)

PRIMARY = SliverType.PRIMARY
SECONDARY = SliverType.SECONDARY
BLOB_ID = BlobId(bytes(range(32)))
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


# --- routes and paths -------------------------------------------------------------------------

# The constants of crates/walrus-service/src/node/server/routes.rs at Walrus 3c1cacc1.
WALRUS_ROUTES = {
    "API_DOCS_ENDPOINT": "/v1/api",
    "METADATA_ENDPOINT": "/v1/blobs/{blob_id}/metadata",
    "METADATA_STATUS_ENDPOINT": "/v1/blobs/{blob_id}/metadata/status",
    "SLIVER_ENDPOINT": "/v1/blobs/{blob_id}/slivers/{sliver_pair_index}/{sliver_type}",
    "SLIVER_STATUS_ENDPOINT": (
        "/v1/blobs/{blob_id}/slivers/{sliver_pair_index}/{sliver_type}/status"
    ),
    "PERMANENT_BLOB_CONFIRMATION_ENDPOINT": "/v1/blobs/{blob_id}/confirmation/permanent",
    "DELETABLE_BLOB_CONFIRMATION_ENDPOINT": (
        "/v1/blobs/{blob_id}/confirmation/deletable/{object_id}"
    ),
    "LIST_RECOVERY_SYMBOL_ENDPOINT": "/v1/blobs/{blob_id}/recoverySymbols",
    "LIST_DECODING_SYMBOL_ENDPOINT": "/v1/blobs/{blob_id}/decodingSymbols",
    "INCONSISTENCY_PROOF_ENDPOINT": "/v1/blobs/{blob_id}/inconsistencyProof/{sliver_type}",
    "BLOB_STATUS_ENDPOINT": "/v1/blobs/{blob_id}/status",
    "HEALTH_ENDPOINT": "/v1/health",
    "SYNC_SHARD_ENDPOINT": "/v1/migrate/sync_shard",
}


def test_route_templates_are_walrus_spellings() -> None:
    ours = {
        paths.API_DOCS_ROUTE,
        paths.METADATA_ROUTE,
        paths.METADATA_STATUS_ROUTE,
        paths.SLIVER_ROUTE,
        paths.SLIVER_STATUS_ROUTE,
        paths.PERMANENT_CONFIRMATION_ROUTE,
        paths.DELETABLE_CONFIRMATION_ROUTE,
        paths.RECOVERY_SYMBOLS_ROUTE,
        paths.DECODING_SYMBOLS_ROUTE,
        paths.INCONSISTENCY_PROOF_ROUTE,
        paths.BLOB_STATUS_ROUTE,
        paths.HEALTH_ROUTE,
        paths.SYNC_SHARD_ROUTE,
    }
    assert ours == set(WALRUS_ROUTES.values())
    assert {route.template for route in paths.ROUTES} == ours
    methods = {(r.method, r.template) for r in paths.ROUTES}
    assert ("PUT", paths.METADATA_ROUTE) in methods
    assert ("GET", paths.METADATA_ROUTE) in methods
    assert ("PUT", paths.SLIVER_ROUTE) in methods
    assert ("POST", paths.INCONSISTENCY_PROOF_ROUTE) in methods
    assert ("POST", paths.SYNC_SHARD_ROUTE) in methods
    assert len({r.name for r in paths.ROUTES}) == len(paths.ROUTES)
    # walruspy's own routes stay apart from Walrus's, under a prefix Walrus does not use.
    assert all(r.template.startswith("/v1/challenges/") for r in paths.CHALLENGE_ROUTES)


def test_paths_match_walrus_client_tests() -> None:
    # walrus-storage-node-client/src/client.rs, test_blob_url_endpoint
    base = f"/v1/blobs/{BLOB_ID}/"
    assert paths.metadata_path(BLOB_ID) == base + "metadata"
    assert paths.metadata_status_path(BLOB_ID) == base + "metadata/status"
    assert paths.permanent_confirmation_path(BLOB_ID) == base + "confirmation/permanent"
    assert paths.deletable_confirmation_path(BLOB_ID, bytes([42] * 32)) == (
        base + "confirmation/deletable/0x" + "2a" * 32
    )
    assert paths.sliver_path(BLOB_ID, SliverPairIndex(1), PRIMARY) == base + "slivers/1/primary"
    assert paths.sliver_status_path(BLOB_ID, SliverPairIndex(1), SECONDARY) == (
        base + "slivers/1/secondary/status"
    )
    assert paths.inconsistency_proof_path(BLOB_ID, PRIMARY) == base + "inconsistencyProof/primary"
    assert paths.recovery_symbols_path(BLOB_ID) == base + "recoverySymbols"
    assert paths.decoding_symbols_path(BLOB_ID) == base + "decodingSymbols"
    assert paths.blob_status_path(BLOB_ID) == base + "status"
    assert (
        paths.with_query(paths.HEALTH_ROUTE, paths.health_query(True)) == "/v1/health?detailed=true"
    )
    assert paths.with_query(paths.HEALTH_ROUTE, paths.health_query(False)) == "/v1/health"


@given(pairs=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_a_query_is_urlencoded(pairs: list[tuple[str, str]]) -> None:
    # Plain keys and values are joined as they are; anything else is quoted as urlencode does.
    expected = f"/p?{urlencode(pairs)}" if pairs else "/p"
    assert paths.with_query("/p", pairs) == expected


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


@given(
    raw=st.binary(min_size=32, max_size=32),
    pair=st.integers(0, 65535),
    sliver_type=st.sampled_from(list(SliverType)),
    object_id=st.binary(min_size=32, max_size=32),
)
def test_built_paths_match_templates_and_parse_back(
    raw: bytes, pair: int, sliver_type: SliverType, object_id: bytes
) -> None:
    blob_id = BlobId(raw)
    built = {
        paths.SLIVER_ROUTE: paths.sliver_path(blob_id, SliverPairIndex(pair), sliver_type),
        paths.SLIVER_STATUS_ROUTE: paths.sliver_status_path(
            blob_id, SliverPairIndex(pair), sliver_type
        ),
        paths.DELETABLE_CONFIRMATION_ROUTE: paths.deletable_confirmation_path(blob_id, object_id),
        paths.INCONSISTENCY_PROOF_ROUTE: paths.inconsistency_proof_path(blob_id, sliver_type),
        paths.METADATA_ROUTE: paths.metadata_path(blob_id),
        paths.BLOB_STATUS_ROUTE: paths.blob_status_path(blob_id),
    }
    for template, path in built.items():
        match = _template_regex(template).match(path)
        assert match, (template, path)
        params = match.groupdict()
        assert paths.parse_blob_id(params["blob_id"]) == blob_id
        if "sliver_pair_index" in params:
            assert paths.parse_sliver_pair_index(params["sliver_pair_index"]) == pair
        if "sliver_type" in params:
            assert paths.parse_sliver_type(params["sliver_type"]) is sliver_type
        if "object_id" in params:
            assert paths.parse_object_id(params["object_id"]) == object_id


@pytest.mark.parametrize(
    "text", ["", "01", "-1", "+1", "65536", "1e3", " 1", "١", "99999999999999999999999"]
)
def test_bad_sliver_pair_index(text: str) -> None:
    with pytest.raises(InvalidInputError, match="sliver pair index"):
        paths.parse_sliver_pair_index(text)


def test_bad_path_parameters() -> None:
    with pytest.raises(InvalidInputError, match="blob ID"):
        paths.parse_blob_id("not-a-blob-id")
    with pytest.raises(InvalidInputError, match="sliver type"):
        paths.parse_sliver_type("Primary")
    for text in ("2a" * 32, "0x" + "2a" * 31, "0x" + "zz" * 32, "0x" + "2a" * 33):
        with pytest.raises(InvalidInputError, match="object ID"):
            paths.parse_object_id(text)
    assert paths.parse_object_id("0x" + "AB" * 32) == bytes([0xAB] * 32)
    with pytest.raises(ValueError, match="u16"):
        paths.sliver_path(BLOB_ID, SliverPairIndex(65536), PRIMARY)
    with pytest.raises(ValueError, match="32 bytes"):
        paths.deletable_confirmation_path(BLOB_ID, b"short")


# --- queries ----------------------------------------------------------------------------------


def _query(pairs: paths.QueryPairs) -> str:
    return paths.with_query("", pairs).lstrip("?")


def test_query_strings_match_walrus_client_tests() -> None:
    # walrus-storage-node-client/src/client.rs, recovery_symbols_filter_to_query and
    # decoding_symbols_filter_to_query
    sid = paths.SymbolId
    cases = [
        (
            paths.RecoverySymbolsByIds((sid(SliverIndex(1), SliverIndex(2)),), PRIMARY),
            "proofAxis=primary&id=1-2",
        ),
        (
            paths.RecoverySymbolsByIds(
                (sid(SliverIndex(1), SliverIndex(2)), sid(SliverIndex(3), SliverIndex(4))),
                SECONDARY,
            ),
            "proofAxis=secondary&id=1-2&id=3-4",
        ),
        (
            paths.RecoverySymbolsForSliver(SliverIndex(72), PRIMARY),
            "targetSliver=72&targetType=primary",
        ),
        (
            paths.RecoverySymbolsForSliver(SliverIndex(18), SECONDARY, PRIMARY),
            "proofAxis=primary&targetSliver=18&targetType=secondary",
        ),
    ]
    for query, expected in cases:
        assert _query(query.to_query()) == expected
        assert paths.parse_recovery_symbols_query(query.to_query()) == query
    decoding = paths.DecodingSymbolsQuery((SliverIndex(1), SliverIndex(2), SliverIndex(3)), PRIMARY)
    assert (
        _query(decoding.to_query())
        == "targetSlivers=1&targetSlivers=2&targetSlivers=3&targetType=primary"
    )
    assert paths.DecodingSymbolsQuery.parse(decoding.to_query()) == decoding
    wait = paths.ConfirmationWait(wait_for_registration=True, wait_ms=1500)
    assert _query(wait.to_query()) == "wait_for_registration=true&wait_millis=1500"
    assert paths.ConfirmationWait.parse(wait.to_query()) == wait
    assert paths.ConfirmationWait.parse([]) == paths.ConfirmationWait()
    assert _query(paths.upload_intent_query(True)) == "pending=true"
    assert paths.upload_intent_query(False) == []
    assert paths.parse_upload_intent([("pending", "true")]) is True
    assert paths.parse_upload_intent([("pending", "false")]) is False
    assert paths.parse_upload_intent([]) is False
    assert paths.parse_health_query([("detailed", "true")]) is True


def test_symbol_ids_are_sorted_and_deduplicated() -> None:
    query = paths.parse_recovery_symbols_query([("id", "3-4"), ("id", "1-2"), ("id", "3-4")])
    assert isinstance(query, paths.RecoverySymbolsByIds)
    assert [str(s) for s in query.ids] == ["1-2", "3-4"]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], "either 'id' or both"),
        ([("targetSliver", "1")], "either 'id' or both"),
        ([("id", "1-2"), ("targetSliver", "1"), ("targetType", "primary")], "not both"),
        ([("id", "1")], "symbol ID"),
        ([("id", "1-")], "secondary index"),
        ([("id", "-1")], "primary index"),
        ([("id", "1-65536")], "larger than"),
        ([("id", "01-2")], "decimal"),
        ([("targetSliver", "x"), ("targetType", "primary")], "targetSliver"),
        ([("targetSliver", "1"), ("targetType", "both")], "sliver type"),
        ([("targetSliver", "1"), ("targetSliver", "2"), ("targetType", "primary")], "2 times"),
        ([("id", "1-2"), ("proofAxis", "diagonal")], "sliver type"),
        ([("id", "1-2")] * (paths.MAX_SYMBOL_IDS + 1), "exceed"),
        ([("id", "1-2")] * (paths.MAX_QUERY_PAIRS + 1), "more than"),
    ],
)
def test_bad_recovery_symbol_queries(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        paths.parse_recovery_symbols_query(pairs)


def test_bad_other_queries() -> None:
    with pytest.raises(InvalidInputError, match="only 'pending'"):
        paths.parse_upload_intent([("pending", "true"), ("extra", "1")])
    with pytest.raises(InvalidInputError, match="'true' or 'false'"):
        paths.parse_upload_intent([("pending", "1")])
    with pytest.raises(InvalidInputError, match="2 times"):
        paths.parse_upload_intent([("pending", "true"), ("pending", "true")])
    with pytest.raises(InvalidInputError, match="wait_millis"):
        paths.ConfirmationWait.parse([("wait_millis", "18446744073709551616")])
    with pytest.raises(InvalidInputError, match="'true' or 'false'"):
        paths.ConfirmationWait.parse([("wait_for_registration", "yes")])
    with pytest.raises(InvalidInputError, match="required"):
        paths.DecodingSymbolsQuery.parse([("targetType", "primary")])
    with pytest.raises(InvalidInputError, match="exceed"):
        paths.DecodingSymbolsQuery.parse(
            [("targetSlivers", "1")] * (paths.MAX_TARGET_SLIVERS + 1) + [("targetType", "primary")]
        )
    # unknown keys are ignored where Walrus ignores them
    assert paths.parse_health_query([("detailed", "false"), ("x", "y")]) is False


query_pairs = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "id",
                "targetSliver",
                "targetType",
                "proofAxis",
                "targetSlivers",
                "pending",
                "wait_millis",
                "wait_for_registration",
                "detailed",
                "x",
            ]
        ),
        st.text(max_size=12)
        | st.sampled_from(["1-2", "0", "primary", "secondary", "true", "false"]),
    ),
    max_size=8,
)


@settings(max_examples=500)
@given(pairs=query_pairs)
def test_query_parsers_only_raise_invalid_input(pairs: list[tuple[str, str]]) -> None:
    parsers = [
        paths.parse_recovery_symbols_query,
        paths.DecodingSymbolsQuery.parse,
        paths.ConfirmationWait.parse,
        paths.parse_upload_intent,
        paths.parse_health_query,
    ]
    for parse in parsers:
        try:
            parsed = parse(pairs)
        except InvalidInputError:
            continue
        if hasattr(parsed, "to_query"):  # what parses, re-encodes to something that parses the same
            assert parse(parsed.to_query()) == parsed


# --- errors -----------------------------------------------------------------------------------

# spec/walrus-system.md 3.1 and Walrus's `status_codes!` table
STATUS_HTTP = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "SIZE_EXCEEDED": 403,
    "UNAUTHENTICATED": 401,
    "UNAVAILABLE_FOR_LEGAL_REASONS": 451,
    "RANGE_NOT_SATISFIABLE": 416,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

# (reason, HTTP code) of every error of walrus-service/src/node/errors.rs and extract.rs
WALRUS_REASONS = {
    ("SHARD_NOT_ASSIGNED", 400),
    ("INDEX_OUT_OF_RANGE", 400),
    ("UNAVAILABLE", 503),
    ("METADATA_NOT_FOUND", 404),
    ("METADATA_NOT_FOUND", 400),
    ("FORBIDDEN_BLOB", 451),
    ("SLIVER_NOT_FOUND", 404),
    ("NOT_REGISTERED", 400),
    ("MISSING_SLIVERS", 400),
    ("CACHE_SATURATED", 400),
    ("INVALID_METADATA", 400),
    ("INVALID_BLOB", 400),
    ("UNSUPPORTED_ENCODING_TYPE", 400),
    ("SYMBOL_NOT_PRESENT_AT_SHARDS", 400),
    ("NO_SYMBOLS_SPECIFIED", 400),
    ("INVALID_FILTER", 400),
    ("NO_TARGET_SLIVERS_SPECIFIED", 400),
    ("RECOVERY_SYMBOL_OUT_OF_RANGE", 400),
    ("INVALID_SLIVER", 400),
    ("SLIVER_INDEX_MISMATCH", 400),
    ("SLIVER_TOO_LARGE", 400),
    ("INVALID_PROOF", 400),
    ("INVALID_EPOCH", 400),
    ("REQUEST_UNAUTHORIZED", 403),
    ("SLIVER_COUNT_EXCEEDS_LIMIT", 400),
    ("MESSAGE_VERIFICATION_FAILED", 400),
    ("INVALID_CONTENT_TYPE", 400),
    ("INTERNAL_ERROR", 500),
}


def test_status_table() -> None:
    assert {s.text: s.http_code for s in errors.ApiStatus} == STATUS_HTTP
    assert errors.ApiStatus.from_fields("NOT_FOUND", 404) is errors.ApiStatus.NOT_FOUND
    with pytest.raises(DecodeError, match="do not correspond"):
        errors.ApiStatus.from_fields("NOT_FOUND", 400)


def test_every_walrus_reason_has_a_class() -> None:
    ours = {(reason, status.http_code) for reason, status in errors.KNOWN_ERRORS}
    assert ours >= WALRUS_REASONS
    assert ours - WALRUS_REASONS == {
        ("INVALID_REQUEST", 400),
        ("BODY_TOO_LARGE", 403),
        ("RESOURCE_EXHAUSTED", 429),
    }


def test_error_body_matches_walrus_example() -> None:
    # walrus-storage-node-client/src/api/errors.rs, example_response (our domain)
    error = errors.ShardNotAssignedError(
        "shard 0 is not assigned to this node in epoch 17", {"shard": 0, "epoch": 17}
    )
    assert error.to_body() == {
        "error": {
            "code": 400,
            "status": "FAILED_PRECONDITION",
            "message": "shard 0 is not assigned to this node in epoch 17",
            "details": [
                {
                    "@type": "ErrorInfo",
                    "reason": "SHARD_NOT_ASSIGNED",
                    "domain": "storage.walrus.space",
                    "metadata": {"shard": 0, "epoch": 17},
                }
            ],
        }
    }
    assert error.http_status == 400
    assert "SHARD_NOT_ASSIGNED" in str(error)


@pytest.mark.parametrize("cls", sorted(set(errors.KNOWN_ERRORS.values()), key=lambda c: c.__name__))
def test_every_error_round_trips_to_its_class(cls: type[errors.KnownNodeApiError]) -> None:
    sent = cls("a message", {"index": 3})
    received = errors.error_from_response(sent.http_status, jf.dumps(sent.to_body()))
    assert type(received) is cls
    assert (received.message, dict(received.metadata), received.reason, received.domain) == (
        "a message",
        {"index": 3},
        cls.REASON,
        cls.DOMAIN,
    )
    assert cls().message == cls.DEFAULT_MESSAGE


def test_internal_and_unavailable_use_the_global_domain() -> None:
    assert errors.InternalServerError().to_body()["error"]["details"][0]["domain"] == "global"
    assert errors.UnavailableError().http_status == 503


def test_error_parsing_tolerates_and_reports() -> None:
    body = errors.NotRegisteredError().to_body()
    body["error"]["details"].insert(0, {"@type": "DebugInfo", "stackEntries": [], "detail": "x"})
    assert isinstance(errors.error_from_response(400, jf.dumps(body)), errors.NotRegisteredError)
    unknown = errors.NotRegisteredError().to_body()
    unknown["error"]["details"][0]["reason"] = "SOMETHING_NEW"
    parsed = errors.error_from_response(400, jf.dumps(unknown))
    assert type(parsed) is errors.UnknownNodeApiError
    assert parsed.reason == "SOMETHING_NEW"
    bare = errors.NotRegisteredError().to_body()
    bare["error"]["details"] = []
    assert type(errors.error_from_response(400, jf.dumps(bare))) is errors.UnknownNodeApiError
    # a body that disagrees with the HTTP status, or is not AIP-193 at all
    mismatch = errors.error_from_response(500, jf.dumps(errors.NotRegisteredError().to_body()))
    assert type(mismatch) is errors.UnexpectedResponseError
    assert mismatch.http_status == 500
    html = errors.error_from_response(502, b"<html>Bad Gateway</html>")
    assert type(html) is errors.UnexpectedResponseError
    assert html.http_status == 502
    assert "Bad Gateway" in str(html)
    with pytest.raises(ValueError, match="not an error"):
        errors.error_from_response(200, b"{}")


@settings(max_examples=500)
@given(
    body=st.binary(max_size=300)
    | st.builds(
        lambda v: json.dumps(v).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=12,
        ),
    ),
    status=st.sampled_from([400, 403, 404, 451, 500, 503, 599]),
)
def test_error_from_response_never_raises(body: bytes, status: int) -> None:
    assert isinstance(errors.error_from_response(status, body), errors.NodeApiError)


# --- success envelope -----------------------------------------------------------------------


def test_success_envelope() -> None:
    body = success_body("metadata successfully stored", 201)
    assert body == {"success": {"code": 201, "data": "metadata successfully stored"}}
    assert parse_service_response(201, jf.dumps(body)) == "metadata successfully stored"
    with pytest.raises(DecodeError, match="code 201"):
        parse_service_response(200, jf.dumps(body))
    with pytest.raises(errors.SliverNotFoundError):
        parse_service_response(404, jf.dumps(errors.SliverNotFoundError().to_body()))
    with pytest.raises(DecodeError, match="missing field 'success'"):
        parse_service_response(200, b'{"data": 1}')
    with pytest.raises(ValueError, match="2xx"):
        success_body(None, 404)


# --- blob status --------------------------------------------------------------------------

TX = bytes.fromhex("ab" * 32)
EVENT = EventId(TX, 7)
EVENT_JSON = {"txDigest": "0x" + "ab" * 32, "eventSeq": "7"}


def test_blob_status_golden_json() -> None:
    assert jf.dumps(blob_status_to_json(Nonexistent())) == b'"nonexistent"'
    assert blob_status_to_json(Invalid(EVENT)) == {"invalid": {"event": EVENT_JSON}}
    permanent = Permanent(35, True, EVENT, DeletableCounts(2, 1), 34)
    assert blob_status_to_json(permanent) == {
        "permanent": {
            "endEpoch": 35,
            "isCertified": True,
            "statusEvent": EVENT_JSON,
            "deletableCounts": {"count_deletable_total": 2, "count_deletable_certified": 1},
            "initialCertifiedEpoch": 34,
        }
    }
    deletable = Deletable(None, DeletableCounts(1, 0))
    assert blob_status_to_json(deletable) == {
        "deletable": {
            "initialCertifiedEpoch": None,
            "deletableCounts": {"count_deletable_total": 1, "count_deletable_certified": 0},
        }
    }
    for status in (Nonexistent(), Invalid(EVENT), permanent, deletable):
        wire = jf.dumps(success_body(blob_status_to_json(status)))
        assert blob_status_from_json(parse_service_response(200, wire)) == status


def test_blob_status_reads_missing_option_as_none() -> None:
    value = {
        "deletable": {
            "deletableCounts": {"count_deletable_total": 1, "count_deletable_certified": 1}
        }
    }
    assert blob_status_from_json(value) == Deletable(None, DeletableCounts(1, 1))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("stored", "unknown unit variant"),
        ({}, "exactly one"),
        ({"invalid": {"event": EVENT_JSON}, "deletable": {}}, "exactly one"),
        ({"Permanent": {}}, "unknown variant"),
        ({"invalid": {}}, "missing field 'event'"),
        ({"invalid": {"event": {"txDigest": "ab" * 32, "eventSeq": "1"}}}, "0x and 64 hex"),
        ({"invalid": {"event": {"txDigest": "0x" + "zz" * 32, "eventSeq": "1"}}}, "invalid hex"),
        (
            {"invalid": {"event": {"txDigest": "0x" + "ab" * 32, "eventSeq": 1}}},
            "expected a string",
        ),
        ({"invalid": {"event": {"txDigest": "0x" + "ab" * 32, "eventSeq": "01"}}}, "decimal"),
        (
            {
                "invalid": {
                    "event": {"txDigest": "0x" + "ab" * 32, "eventSeq": "18446744073709551616"}
                }
            },
            "u64",
        ),
        (
            {
                "deletable": {
                    "deletableCounts": {
                        "count_deletable_total": True,
                        "count_deletable_certified": 0,
                    }
                }
            },
            "expected an integer",
        ),
        (
            {
                "deletable": {
                    "deletableCounts": {
                        "count_deletable_total": 1.0,
                        "count_deletable_certified": 0,
                    }
                }
            },
            "expected an integer",
        ),
        (
            {
                "deletable": {
                    "deletableCounts": {
                        "count_deletable_total": U32 + 1,
                        "count_deletable_certified": 0,
                    }
                }
            },
            "out of range",
        ),
        ({"permanent": {"endEpoch": 1}}, "missing field 'deletableCounts'"),
    ],
)
def test_bad_blob_status_json(value: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        blob_status_from_json(value)


opt_epochs = st.none() | st.integers(0, 6)
counts = st.builds(DeletableCounts, st.integers(0, 3), st.integers(0, 3))
events = st.builds(EventId, st.sampled_from([bytes(32), TX]), st.integers(0, 2))
statuses: st.SearchStrategy[BlobStatus] = st.one_of(
    st.just(Nonexistent()),
    st.builds(Invalid, events),
    st.builds(Permanent, st.integers(0, 6), st.booleans(), events, counts, opt_epochs),
    st.builds(Deletable, opt_epochs, counts),
)
wide_statuses: st.SearchStrategy[BlobStatus] = st.one_of(
    st.just(Nonexistent()),
    st.builds(
        Invalid, st.builds(EventId, st.binary(min_size=32, max_size=32), st.integers(0, U64))
    ),
    st.builds(
        Permanent,
        st.integers(0, U32),
        st.booleans(),
        st.builds(EventId, st.binary(min_size=32, max_size=32), st.integers(0, U64)),
        st.builds(DeletableCounts, st.integers(0, U32), st.integers(0, U32)),
        st.none() | st.integers(0, U32),
    ),
    st.builds(
        Deletable,
        st.none() | st.integers(0, U32),
        st.builds(DeletableCounts, st.integers(0, U32), st.integers(0, U32)),
    ),
)


@settings(max_examples=300)
@given(status=wide_statuses)
def test_blob_status_json_round_trip(status: BlobStatus) -> None:
    assert (
        blob_status_from_json(jf.loads(jf.dumps(blob_status_to_json(status)), "status")) == status
    )


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def _reverse_option_cmp(a: int | None, b: int | None) -> int:
    # Rust: None < Some(_); Reverse flips it
    forward = 0 if a is None and b is None else -1 if a is None else 1 if b is None else _cmp(a, b)
    return -forward


def walrus_cmp(a: BlobStatus, b: BlobStatus) -> int:
    """A line-by-line transliteration of `impl Ord for BlobStatus` in Walrus's api.rs."""
    if a == b:
        return 0
    if isinstance(a, Nonexistent):
        return -1
    if isinstance(b, Nonexistent):
        return 1
    if isinstance(a, Invalid) and isinstance(b, Invalid):
        return 0
    if isinstance(a, Invalid):
        return 1
    if isinstance(b, Invalid):
        return -1
    if isinstance(a, Permanent) and isinstance(b, Deletable):
        return 1
    if isinstance(a, Deletable) and isinstance(b, Permanent):
        return -1

    def counts_cmp(x: DeletableCounts, y: DeletableCounts) -> int:
        return _cmp(
            (x.count_deletable_certified, x.count_deletable_total),
            (y.count_deletable_certified, y.count_deletable_total),
        )

    if isinstance(a, Deletable) and isinstance(b, Deletable):
        steps = [counts_cmp(a.deletable_counts, b.deletable_counts)]
    else:
        assert isinstance(a, Permanent) and isinstance(b, Permanent)
        steps = [
            _cmp(a.is_certified, b.is_certified),
            _cmp(a.end_epoch, b.end_epoch),
            counts_cmp(a.deletable_counts, b.deletable_counts),
        ]
    steps.append(_reverse_option_cmp(a.initial_certified_epoch, b.initial_certified_epoch))
    return next((step for step in steps if step), 0)


@settings(max_examples=2000)
@given(a=statuses, b=statuses)
def test_sort_key_orders_as_walrus(a: BlobStatus, b: BlobStatus) -> None:
    assert _cmp(blob_status_sort_key(a), blob_status_sort_key(b)) == walrus_cmp(a, b)


def test_ordering_examples_of_the_spec() -> None:
    ordered = [
        Nonexistent(),
        Deletable(None, DeletableCounts(1, 0)),
        Deletable(5, DeletableCounts(1, 1)),
        Deletable(2, DeletableCounts(1, 1)),  # earlier initial certification ranks higher
        Permanent(9, False, EVENT, DeletableCounts(), None),
        Permanent(3, True, EVENT, DeletableCounts(), 2),  # certified beats any uncertified end
        Permanent(4, True, EVENT, DeletableCounts(), 2),
        Invalid(EVENT),
    ]
    keys = [blob_status_sort_key(status) for status in ordered]
    assert all(a < b for a, b in itertools.pairwise(keys))  # strictly increasing
    assert max(ordered, key=blob_status_sort_key) == Invalid(EVENT)


def mutations(value: Any) -> st.SearchStrategy[Any]:
    """Replace one leaf (or the whole) of a JSON value by an arbitrary JSON value."""
    junk = (
        st.none()
        | st.booleans()
        | st.integers(-2, U64 + 2)
        | st.text(max_size=70)
        | st.just({})
        | st.just([])
    )
    if isinstance(value, dict) and value:
        return (
            st.sampled_from(sorted(value)).flatmap(
                lambda key: mutations(value[key]).map(lambda new: {**value, key: new})
            )
            | junk
        )
    return junk


@settings(max_examples=1000)
@given(data=st.data(), status=wide_statuses)
def test_blob_status_parser_only_raises_decode_errors(
    data: st.DataObject, status: BlobStatus
) -> None:
    value = data.draw(mutations(blob_status_to_json(status)))
    try:
        parsed = blob_status_from_json(value)
    except DecodeError:
        return
    assert blob_status_from_json(blob_status_to_json(parsed)) == parsed


def test_event_id_checks() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EventId(b"short", 0)
    with pytest.raises(ValueError, match="u64"):
        EventId(TX, -1)
    assert EventId.from_json({"txDigest": "0x" + "AB" * 32, "eventSeq": "0"}) == EventId(TX, 0)
    assert EventId.from_json(EVENT_JSON).to_json() == EVENT_JSON


# --- other JSON bodies ----------------------------------------------------------------------


def test_stored_on_node_status() -> None:
    for status, text in [
        (StoredOnNodeStatus.NONEXISTENT, "nonexistent"),
        (StoredOnNodeStatus.BUFFERED, "buffered"),
        (StoredOnNodeStatus.STORED, "stored"),
    ]:
        assert status.to_json() == text
        assert StoredOnNodeStatus.from_json(text) is status
    with pytest.raises(DecodeError, match="unknown value"):
        StoredOnNodeStatus.from_json("Stored")


def test_storage_confirmation() -> None:
    signed = SignedMessage(b"\x01\x02message", bytes(range(96)))
    body = storage_confirmation_to_json(signed)
    assert body == {
        "signed": {
            "serializedMessage": base64.b64encode(b"\x01\x02message").decode(),
            "signature": base64.b64encode(bytes(range(96))).decode(),
        }
    }
    assert storage_confirmation_from_json(body) == signed
    bad_signature = {
        "signed": {**body["signed"], "signature": base64.b64encode(bytes(95)).decode()}
    }
    with pytest.raises(DecodeError, match="96 bytes"):
        storage_confirmation_from_json(bad_signature)
    unpadded = {"signed": {**body["signed"], "serializedMessage": "AQI"}}
    with pytest.raises(DecodeError, match="base64"):
        storage_confirmation_from_json(unpadded)
    with pytest.raises(DecodeError, match="unknown variant"):
        storage_confirmation_from_json({"unsigned": {}})


def health_info(detailed: bool) -> ServiceHealthInfo:
    detail = ShardStatusDetail(
        owned=(ShardHealthInfo(0, ShardStatus.READY), ShardHealthInfo(3, ShardStatus.IN_TRANSFER)),
        other=(ShardHealthInfo(9, ShardStatus.READ_ONLY),),
    )
    return ServiceHealthInfo(
        uptime_ns=12 * 1_000_000_000 + 345,
        epoch=17,
        public_key=bytes(range(48)),
        node_status="Active",
        event_progress=EventProgress(10, 2, 9),
        shard_summary=ShardStatusSummary(2, OwnedShardStatus(ready=1, in_transfer=1), 1),
        shard_detail=detail if detailed else None,
        latest_checkpoint_sequence_number=1234 if detailed else None,
    )


def test_health_golden_json() -> None:
    body = health_info(detailed=False).to_json()
    assert body == {
        "uptime": {"secs": 12, "nanos": 345},
        "epoch": 17,
        "publicKey": base64.b64encode(bytes(range(48))).decode(),
        "nodeStatus": "Active",
        "eventProgress": {"persisted": 10, "pending": 2, "highestFinishedEventIndex": 9},
        "shardSummary": {
            "owned": 2,
            "ownedShardStatus": {"unknown": 0, "ready": 1, "inTransfer": 1, "inRecovery": 0},
            "readOnly": 1,
        },
    }
    detailed = health_info(detailed=True).to_json()
    assert detailed["shardDetail"] == {
        "owned": [{"shard": 0, "status": "ready"}, {"shard": 3, "status": "inTransfer"}],
        "other": [{"shard": 9, "status": "readOnly"}],
    }
    assert detailed["latestCheckpointSequenceNumber"] == 1234
    for info in (health_info(False), health_info(True)):
        wire = jf.dumps(success_body(info.to_json()))
        assert ServiceHealthInfo.from_json(parse_service_response(200, wire)) == info


@settings(max_examples=500)
@given(data=st.data(), detailed=st.booleans())
def test_health_parser_only_raises_decode_errors(data: st.DataObject, detailed: bool) -> None:
    value = data.draw(mutations(health_info(detailed).to_json()))
    try:
        parsed = ServiceHealthInfo.from_json(value)
    except DecodeError:
        return
    assert ServiceHealthInfo.from_json(parsed.to_json()) == parsed


def test_bad_health_json() -> None:
    body = health_info(True).to_json()
    with pytest.raises(DecodeError, match=r"uptime\.nanos"):
        ServiceHealthInfo.from_json({**body, "uptime": {"secs": 1, "nanos": 1_000_000_000}})
    with pytest.raises(DecodeError, match="publicKey"):
        ServiceHealthInfo.from_json({**body, "publicKey": base64.b64encode(bytes(47)).decode()})
    bad_detail = {"owned": [{"shard": 1, "status": "ok"}], "other": []}
    with pytest.raises(DecodeError, match="unknown shard status"):
        ServiceHealthInfo.from_json({**body, "shardDetail": bad_detail})
    assert ServiceHealthInfo.from_json({**body, "shardDetail": None}).shard_detail is None


# --- strict JSON ----------------------------------------------------------------------------


def test_strict_json() -> None:
    assert jf.loads(b'{"a": [1, 2.5, null, true]}', "x") == {"a": [1, 2.5, None, True]}
    with pytest.raises(DecodeError, match="duplicate"):
        jf.loads(b'{"a": 1, "a": 2}', "x")
    with pytest.raises(DecodeError, match="NaN"):
        jf.loads(b"[NaN]", "x")
    with pytest.raises(DecodeError, match="UTF-8"):
        jf.loads(b'"\xff"', "x")
    with pytest.raises(DecodeError, match="exceeds the limit"):
        jf.loads(b" " * 11, "x", max_bytes=10)
    with pytest.raises(DecodeError, match="nested deeper than 32"):
        jf.loads(b"[" * 100_000 + b"]" * 100_000, "x", max_bytes=1 << 20)
    with pytest.raises(DecodeError, match="nested deeper than 32"):
        jf.loads(b'{"a": "\\"}' + b"[" * 33 + b"]" * 33, "x")
    assert jf.loads(b'["' + b"[" * 100 + b'"]', "x") == ["[" * 100]  # brackets in strings
    assert jf.loads(b"[" * 32 + b"]" * 32, "x") is not None
    with pytest.raises(DecodeError, match="invalid JSON"):
        jf.loads(b"{", "x")
    with pytest.raises(DecodeError, match="expected a decimal"):
        jf.parse_decimal_u64("", "x")


# --- constructor and parser limits ----------------------------------------------------------


def test_error_edge_cases() -> None:
    with pytest.raises(ValueError, match="status OK"):
        errors.NodeApiError(errors.ApiStatus.OK, "X", "d", "m")
    ok_body = {"error": {"code": 200, "status": "OK", "message": "m", "details": []}}
    assert (
        type(errors.error_from_response(400, jf.dumps(ok_body))) is errors.UnexpectedResponseError
    )
    crowded = errors.NotRegisteredError().to_body()
    crowded["error"]["details"][0]["metadata"] = {str(i): i for i in range(65)}
    parsed = errors.error_from_response(400, jf.dumps(crowded))
    assert type(parsed) is errors.UnexpectedResponseError
    assert "entries exceed" in str(parsed)


def test_health_constructor_checks() -> None:
    with pytest.raises(ValueError, match="u16"):
        ShardHealthInfo(65536, ShardStatus.READY)
    many = tuple(ShardHealthInfo(i % 65536, ShardStatus.READY) for i in range(65537))
    with pytest.raises(ValueError, match="more shards"):
        ShardStatusDetail(many, ())
    with pytest.raises(ValueError, match="Duration"):
        ServiceHealthInfo(
            -1,
            1,
            bytes(48),
            "Active",
            EventProgress(0, 0, None),
            ShardStatusSummary(0, OwnedShardStatus(), 0),
        )
    with pytest.raises(ValueError, match="u64"):
        EventProgress(-1, 0, None)
    body = health_info(True).to_json()
    too_many = {
        "owned": [{"shard": 1, "status": "ready"}] * 40_000,
        "other": [{"shard": 1, "status": "ready"}] * 40_000,
    }
    with pytest.raises(DecodeError, match="more shards"):
        ServiceHealthInfo.from_json({**body, "shardDetail": too_many})


def test_json_field_errors() -> None:
    with pytest.raises(DecodeError, match="expected a boolean"):
        jf.as_bool(1, "x")
    with pytest.raises(DecodeError, match="characters exceeds"):
        jf.as_str("abc", "x", max_chars=2)
    with pytest.raises(DecodeError, match="expected an array"):
        jf.as_list({}, "x", 3)
    with pytest.raises(DecodeError, match="items exceed"):
        jf.as_list([1, 2, 3, 4], "x", 3)
    with pytest.raises(DecodeError, match="non-canonical"):
        jf.as_base64("AR==", "x", 10)  # a stray bit in the padding
    with pytest.raises(DecodeError, match="invalid base64"):
        jf.as_base64("A-B_", "x", 10)  # URL-safe alphabet is not standard base64
    with pytest.raises(DecodeError, match="exceed the limit"):
        jf.as_base64(base64.b64encode(bytes(11)).decode(), "x", 10)


def test_value_constructor_checks() -> None:
    with pytest.raises(ValueError, match="u64"):
        paths.ConfirmationWait(wait_ms=-1)
    with pytest.raises(ValueError, match="symbol IDs"):
        paths.RecoverySymbolsByIds(())
    with pytest.raises(ValueError, match="target slivers"):
        paths.DecodingSymbolsQuery((), PRIMARY)
    with pytest.raises(ValueError, match="u32"):
        Permanent(U32 + 1, True, EVENT, DeletableCounts(), None)
    with pytest.raises(ValueError, match="u32"):
        DeletableCounts(-1, 0)
    with pytest.raises(ValueError, match="signed message"):
        SignedMessage(b"", bytes(96))
    with pytest.raises(DecodeError, match="empty"):
        SignedMessage.from_json(
            {"serializedMessage": "", "signature": base64.b64encode(bytes(96)).decode()}
        )
    with pytest.raises(DecodeError, match="not a 2xx"):
        parse_service_response(200, b'{"success": {"code": 404, "data": null}}')
