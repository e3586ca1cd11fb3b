"""`walruspy store FILES...`: one blob per file, every file's outcome reported, Ctrl-C accounted.

Theory of operation (spec/walrus-system.md 1.2 and 4.1; Walrus `walrus store`). The files are
stored one after the other, each with `WalrusClient.store`; a file that fails does not stop the
others, nor hide what they did: each stored blob was paid for, so each is reported. Text output
has one block per stored file on stdout and one `Error:` line per failed file on stderr; under
`--json` one object `{"results": [...]}` with one entry per file, `{"path", "blobStoreResult",
"endEpochTime"}` or `{"path", "error", "kind"}`, and, when a file failed, the first failure's
`error` and `kind` at the top as every JSON error has. The exit status is 1 if any file failed.

Expiry is shown as an epoch and as a time: the epoch's estimated start (the current epoch's
start plus whole epoch durations, `estimated_epoch_start_s`) in UTC, and how far that is from
now (this machine's clock).

Ctrl-C. `asyncio.run` turns the first SIGINT into a cancellation of the command's task, so the
store's own clean-up runs: a registration transaction on its way is waited for (the library
tells `on_registered` about the object even then), uploads are cancelled. The command then
looks the object up on chain and ends with one line and status 130 (`CommandInterrupted`):
nothing was registered for the file, or the blob object ID (hex) that is registered but not
certified, which storing the file again reuses (`walruspy.client.store`, step 3) instead of
buying new storage, or that the blob was certified after all. Files finished before are
reported as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from walruspy.cli.client_cmds import _bars, _parse_epochs, client_options, epoch_time, run_client
from walruspy.cli.output import CommandInterrupted, emit, emit_error, error_text
from walruspy.core.errors import WalrusError
from walruspy.node_api.paths import format_object_id

if TYPE_CHECKING:
    from walruspy.chain.api import BlobRecord, SystemInfo
    from walruspy.client import WalrusClient
    from walruspy.client.results import StoreResult

__all__ = ["store_command"]

#: How long an interrupted store may spend asking the chain about the object it registered: a
#: person pressed Ctrl-C and waits; one read of a healthy RPC endpoint takes milliseconds.
INTERRUPT_LOOKUP_S: Final = 10.0


@dataclass
class _StoreRun:
    """What the command did so far, kept outside the event loop for when Ctrl-C ends it."""

    info: SystemInfo | None = None
    outcomes: list[tuple[Path, StoreResult | Exception]] = field(default_factory=list)
    #: The line an interruption ends with, once the store in progress has been looked at.
    interruption: str | None = None
    interruption_details: dict[str, Any] = field(default_factory=dict)


def _expiry(info: SystemInfo | None, end_epoch: int) -> tuple[str, str] | None:
    """(ISO time, text for people) of `end_epoch`'s estimated start, if the schedule is known."""
    return epoch_time(info, end_epoch) if info is not None else None


def _store_lines(path: Path, result: StoreResult, info: SystemInfo | None) -> list[str]:
    expiry = _expiry(info, result.end_epoch)
    expiry_line = f"Expiry epoch (exclusive): {result.end_epoch}" + (
        f" ({expiry[1]})" if expiry else ""
    )
    if result.already_certified:
        how = (
            f"Owned blob object: {result.object_id}"
            if result.object_id is not None
            else f"Certification event: {result.event.to_json() if result.event else 'unknown'}"
        )
        return [
            "Success: the blob was already certified for long enough.",
            f"Path: {path}",
            f"Blob ID: {result.blob_id}",
            how,
            expiry_line,
        ]
    assert result.blob is not None and result.operation is not None
    kind = "Deletable" if result.blob.deletable else "Permanent"
    how = (
        "storage was purchased, and a new blob object was registered"
        if result.operation.kind == "registerFromScratch"
        else "an existing registration of this account was reused"
    )
    return [
        f"Success: {kind} blob stored successfully.",
        f"Path: {path}",
        f"Blob ID: {result.blob_id}",
        f"Object ID: {result.object_id}",
        f"Unencoded size: {result.unencoded_length} bytes",
        f"Encoded size (including replicated metadata): {result.encoded_length} bytes",
        f"Cost (excluding gas): {result.cost} FROST ({how})",
        expiry_line,
    ]


def _entry(path: Path, outcome: StoreResult | Exception, info: SystemInfo | None) -> dict[str, Any]:
    """One file's JSON entry: its result (with the expiry time) or its error."""
    if isinstance(outcome, Exception):
        return {"path": str(path), "error": error_text(outcome), "kind": type(outcome).__name__}
    entry: dict[str, Any] = {"path": str(path), "blobStoreResult": outcome.to_json()}
    expiry = _expiry(info, outcome.end_epoch)
    if expiry is not None:
        entry["endEpochTime"] = expiry[0]
    return entry


async def _interruption(
    client: WalrusClient, path: Path, registered: list[BlobRecord], info: SystemInfo | None
) -> tuple[str, dict[str, Any]]:
    """The line (and JSON fields) an interrupted store of `path` ends with (module doc)."""
    if not registered:
        return f"Interrupted while storing {path}: nothing was registered for it.", {}
    record = registered[-1]
    name = format_object_id(record.object_id)
    details: dict[str, Any] = {"path": str(path), "blobId": str(record.blob_id), "objectId": name}
    now: BlobRecord | None = None
    try:
        async with asyncio.timeout(INTERRUPT_LOOKUP_S):
            now = await client.env.chain.get_blob(record.object_id)
    except (WalrusError, TimeoutError):
        now = None
    if now is not None and now.certified_epoch is not None:
        details["certified"] = True
        return (
            f"Interrupted after storing {path}: blob {record.blob_id} is certified in blob "
            f"object {name}, until epoch {now.end_epoch}.",
            details,
        )
    details["certified"] = False
    left = record.end_epoch - info.epoch if info is not None else None
    reuse = (
        f"storing {path} again with --epochs {left} or fewer reuses it"
        if left is not None and left > 0
        else "storing the file again reuses it while its storage lasts"
    )
    return (
        f"Interrupted while storing {path}: blob {record.blob_id} is registered but not "
        f"certified, in blob object {name} (paid until epoch {record.end_epoch}); {reuse} "
        "instead of buying new storage.",
        details,
    )


def store_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every store command takes (`store`, `store-quilt`), for `what` is stored:
    --epochs, --deletable/--permanent, --force, --ignore-resources and the client's."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option(
                    "--epochs",
                    required=True,
                    callback=_parse_epochs,
                    help=f"Epochs ahead to store the {what} for (a number, or 'max').",
                ),
                click.option(
                    "--deletable/--permanent",
                    default=True,
                    show_default=True,
                    help=f"Whether the owner may delete the {what} (deletable by default, as "
                    "Walrus since 1.33).",
                ),
                click.option(
                    "--force", is_flag=True, help=f"Store even if the {what} is already certified."
                ),
                click.option(
                    "--ignore-resources",
                    is_flag=True,
                    help="Do not look for blob objects of this account to reuse (skips listing "
                    "them).",
                ),
                client_options,
            )
        ):
            command = option(command)
        return command

    return decorate


@click.command("store")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@store_options("blobs")
def store_command(
    *,
    files: tuple[Path, ...],
    epochs: int | None,
    deletable: bool,
    force: bool,
    ignore_resources: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Store FILES on the network, one blob each, for a number of epochs."""
    run = _StoreRun()

    async def operation(client: WalrusClient) -> None:
        run.info = (await client.system_info()).system
        wanted = epochs if epochs is not None else run.info.max_epochs_ahead
        for path in files:
            registered: list[BlobRecord] = []
            bars = _bars(as_json)
            try:
                with bars.shown():
                    result = await client.store(
                        path,
                        wanted,
                        deletable=deletable,
                        force=force,
                        ignore_resources=ignore_resources,
                        progress=bars,
                        on_registered=registered.append,
                    )
            except (WalrusError, OSError) as exc:
                run.outcomes.append((path, exc))
                continue
            except asyncio.CancelledError:
                line, details = await _interruption(client, path, registered, run.info)
                run.interruption, run.interruption_details = line, details
                raise
            run.outcomes.append((path, result))

    try:
        run_client(config_path, context, operation)
    except KeyboardInterrupt:
        _report(run, as_json=as_json, interrupted=True)
        raise CommandInterrupted(
            run.interruption or "Interrupted.",
            {**run.interruption_details, "results": _entries(run)},
        ) from None
    _report(run, as_json=as_json, interrupted=False)


def _entries(run: _StoreRun) -> list[dict[str, Any]]:
    return [_entry(path, outcome, run.info) for path, outcome in run.outcomes]


def _report(run: _StoreRun, *, as_json: bool, interrupted: bool) -> None:
    """Print every file's outcome; exit with status 1 if one failed (module doc)."""
    failures = [(path, exc) for path, exc in run.outcomes if isinstance(exc, Exception)]
    if as_json:
        if interrupted:
            return  # the interruption's one JSON object carries the results
        payload: dict[str, Any] = {"results": _entries(run)}
        if failures:
            path, exc = failures[0]
            payload["error"] = f"{path}: {error_text(exc)}"
            payload["kind"] = type(exc).__name__
        emit(payload, as_json=True, lines=[])
    else:
        lines: list[str] = []
        for path, outcome in run.outcomes:
            if not isinstance(outcome, Exception):
                lines += [*_store_lines(path, outcome, run.info), ""]
        emit({}, as_json=False, lines=lines[:-1])
        for path, exc in failures:
            message = error_text(exc)
            several = len(run.outcomes) > 1 or interrupted
            emit_error(f"storing {path}: {message}" if several else message, "", as_json=False)
    if failures and not interrupted:
        raise click.exceptions.Exit(1)
