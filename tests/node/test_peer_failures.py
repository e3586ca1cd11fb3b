"""The classification of peers' failures: kinds as an enum whose values are the metric labels."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from walruspy.core.errors import DecodeError, VerificationError, WalrusError
from walruspy.node.peer_failures import PEER_FAILURES, PeerFailure, failure_kind
from walruspy.node_api.errors import ApiStatus, NodeApiError, NodeConnectionError
from walruspy.node_api.fanout import UnfinishedRequestError
from walruspy.node_api.tls import NodeIdentityError

NODE = Path(__file__).resolve().parents[2] / "src" / "walruspy" / "node"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (VerificationError("bad proof"), PeerFailure.INVALID),
        (DecodeError("truncated"), PeerFailure.INVALID),
        (NodeApiError(ApiStatus.NOT_FOUND, "X", "d", "m"), PeerFailure.ERROR_ANSWER),
        (NodeIdentityError("other key"), PeerFailure.IDENTITY),
        (NodeConnectionError("refused"), PeerFailure.UNREACHABLE),
        (TimeoutError(), PeerFailure.UNREACHABLE),
        (WalrusError("something else"), PeerFailure.OTHER),
    ],
)
def test_each_failure_has_its_kind(error: BaseException, kind: PeerFailure) -> None:
    assert failure_kind(error) is kind
    assert isinstance(error, PEER_FAILURES)


def test_a_request_cut_short_is_not_a_fault() -> None:
    assert failure_kind(UnfinishedRequestError("still running")) is None


def test_identity_wins_over_unreachable() -> None:
    # NodeIdentityError is a NodeConnectionError: the more precise kind is the one counted.
    assert issubclass(NodeIdentityError, NodeConnectionError)
    assert failure_kind(NodeIdentityError("other key")) is PeerFailure.IDENTITY


def test_the_kinds_are_the_metric_labels_byte_for_byte() -> None:
    # Dashboards and tests match these labels: the enum must not change what is exported.
    assert [str(kind) for kind in PeerFailure] == [
        "invalid",
        "error_answer",
        "identity",
        "unreachable",
        "other",
    ]
    assert all(f"{kind}" == kind.value for kind in PeerFailure)


def test_bugs_are_not_peer_failures() -> None:
    assert not isinstance(ValueError("our bug"), PEER_FAILURES)
    assert not isinstance(AssertionError(), PEER_FAILURES)


def _node_imports(module: str) -> set[str]:
    tree = ast.parse((NODE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_recovery_and_invalidation_do_not_import_each_other() -> None:
    assert "walruspy.node.recovery" not in _node_imports("invalidation")
    assert "walruspy.node.invalidation" not in _node_imports("recovery")
