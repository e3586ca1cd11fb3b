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
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import click

from walruspy.cli.client_cmds import _bars, client_options, epoch_time, run_client
from walruspy.cli.output import CommandInterrupted, emit, emit_error, error_text
from walruspy.core.blob_id import BlobId
from walruspy.core.errors import InvalidInputError, WalrusError
from walruspy.node_api.paths import format_object_id

if TYPE_CHECKING:
    from walruspy.chain.api import BlobRecord, SystemInfo
    from walruspy.client import WalrusClient
    from walruspy.client.lifetime import StoreLifetime
    from walruspy.client.results import NetworkInfo, StoreResult

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
    how = {
        "registerFromScratch": "storage was purchased, and a new blob object was registered",
        "reuseStorage": "a storage resource of this account was reused for a new blob object",
        "reuseRegistration": "an existing registration of this account was reused",
        "reuseAndExtend": "a certified blob object of this account was extended",
    }[result.operation.kind]
    shared = result.shared_blob_object
    return [
        f"Success: {kind} blob stored successfully.",
        f"Path: {path}",
        f"Blob ID: {result.blob_id}",
        f"Object ID: {result.object_id}",
        f"Unencoded size: {result.unencoded_length} bytes",
        f"Encoded size (including replicated metadata): {result.encoded_length} bytes",
        f"Cost (excluding gas): {result.cost} FROST ({how})",
        *([f"Shared blob object: {shared}"] if shared else []),
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


def _parse_lifetime_epochs(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> int | str | None:
    """A positive number of epochs, "max", or None when not given."""
    if value is None or value == "max":
        return value
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r} is neither a positive number of epochs nor 'max'")
    return int(value)


def _parse_expiry(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    from walruspy.client.lifetime import parse_expiry_time

    if value is None:
        return None
    try:
        return parse_expiry_time(value)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass(frozen=True, slots=True)
class StoreFlags:
    """--deletable/--permanent, --force, --share and --ignore-resources, as the library's store
    calls take them (`WalrusClient.store`, `QuiltClient.store`)."""

    deletable: bool
    force: bool
    share: bool
    ignore_resources: bool

    def options(self) -> dict[str, bool]:
        """The keyword arguments of a store call."""
        return {
            "deletable": self.deletable,
            "force": self.force,
            "share": self.share,
            "ignore_resources": self.ignore_resources,
        }


def store_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every store command takes (`store`, `store-quilt`), for `what` is stored:
    how long (--epochs, --end-epoch or --earliest-expiry-time, given to the command as one
    `lifetime`), --dry-run, --deletable/--permanent, --force, --share and --ignore-resources
    (given as one `flags`) and the client's."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_lifetime(
            *,
            epochs: int | Literal["max"] | None,
            end_epoch: int | None,
            earliest_expiry_time: float | None,
            deletable: bool,
            force: bool,
            share: bool,
            ignore_resources: bool,
            **options: Any,
        ) -> Any:
            given = (epochs, end_epoch, earliest_expiry_time)
            if sum(value is not None for value in given) != 1:
                raise click.UsageError(
                    "give exactly one of --epochs, --end-epoch and --earliest-expiry-time"
                )
            from walruspy.client.lifetime import StoreLifetime

            lifetime = StoreLifetime(epochs, end_epoch, earliest_expiry_time)
            flags = StoreFlags(deletable, force, share, ignore_resources)
            return command(lifetime=lifetime, flags=flags, **options)

        decorated: Callable[..., Any] = with_lifetime
        for option in reversed(
            (
                click.option(
                    "--epochs",
                    callback=_parse_lifetime_epochs,
                    help=f"Epochs ahead to store the {what} for (a number, or 'max').",
                ),
                click.option(
                    "--end-epoch",
                    type=click.IntRange(1),
                    help=f"The epoch the {what} expire at (later than the current one).",
                ),
                click.option(
                    "--earliest-expiry-time",
                    callback=_parse_expiry,
                    help=f"Keep the {what} at least until this time (RFC 3339, e.g. "
                    "2030-03-20T15:00:00Z; UTC without an offset).",
                ),
                click.option(
                    "--dry-run",
                    is_flag=True,
                    help=f"Encode and price the {what}, without any transaction.",
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
                    "--share",
                    is_flag=True,
                    help="Share each new blob object (anyone may then fund and extend it; "
                    "nobody may delete it).",
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
            decorated = option(decorated)
        return decorated

    return decorate


async def epochs_for(client: WalrusClient, lifetime: StoreLifetime, info: SystemInfo) -> int:
    """The epochs a store buys for `lifetime`, "now" read on the chain's clock (its latest
    block), the clock the epoch schedule runs on."""
    if lifetime.earliest_expiry is None:
        return lifetime.epochs_ahead(info, now_s=0.0)  # the clock is not read
    return lifetime.epochs_ahead(info, now_s=await client.env.chain.chain_time())


def dry_run_entry(path: Path, blob_id: BlobId, length: int, info: NetworkInfo, epochs: int) -> Any:
    """Walrus's `DryRunOutput`: what storing `length` bytes as a new blob would cost."""
    from walruspy.client.results import ENCODING_TYPE_NAME

    return {
        "path": str(path),
        "blobId": str(blob_id),
        "unencodedSize": length,
        "encodedSize": info.params.encoded_length(length),
        "storageCost": info.cost_of(length, epochs),
        "encodingType": ENCODING_TYPE_NAME,
    }


def dry_run_lines(entry: dict[str, Any], epochs: int) -> list[str]:
    """A dry run's text, as Walrus prints it."""
    return [
        "Success: Store dry-run succeeded.",
        f"Path: {entry['path']}",
        f"Blob ID: {entry['blobId']}",
        f"Encoding type: {entry['encodingType']}",
        f"Unencoded size: {entry['unencodedSize']} bytes",
        f"Encoded size (including replicated metadata): {entry['encodedSize']} bytes",
        f"Cost to store as new blob for {epochs} epochs (excluding gas): "
        f"{entry['storageCost']} FROST",
    ]


@click.command("store")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@store_options("blobs")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Print only the blob ID of each file stored, one a line (for scripts: "
    "BLOB_ID=$(walruspy store FILE --epochs 2 --quiet)); errors still go to stderr.",
)
def store_command(
    *,
    files: tuple[Path, ...],
    lifetime: StoreLifetime,
    dry_run: bool,
    flags: StoreFlags,
    quiet: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Store FILES on the network, one blob each, for a number of epochs."""
    if dry_run:
        _dry_run(files, lifetime, config_path, context, as_json)
        return
    run = _StoreRun()

    async def operation(client: WalrusClient) -> None:
        run.info = (await client.system_info()).system
        wanted = await epochs_for(client, lifetime, run.info)
        for path in files:
            registered: list[BlobRecord] = []
            bars = _bars(as_json)
            try:
                with bars.shown():
                    result = await client.store(
                        path,
                        wanted,
                        progress=bars,
                        on_registered=registered.append,
                        **flags.options(),
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
        _report(run, as_json=as_json, interrupted=True, quiet=quiet)
        raise CommandInterrupted(
            run.interruption or "Interrupted.",
            {**run.interruption_details, "results": _entries(run)},
        ) from None
    _report(run, as_json=as_json, interrupted=False, quiet=quiet)


def _dry_run(
    files: tuple[Path, ...],
    lifetime: StoreLifetime,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """`store --dry-run`: each file's blob ID, sizes and cost; nothing is sent to the chain."""

    async def operation(client: WalrusClient) -> tuple[list[dict[str, Any]], int]:
        info = await client.system_info()
        epochs = await epochs_for(client, lifetime, info.system)
        entries = []
        for path in files:
            blob_id = await client.blob_id_of(path)
            entries.append(dry_run_entry(path, blob_id, path.stat().st_size, info, epochs))
        return entries, epochs

    entries, epochs = run_client(config_path, context, operation)
    lines: list[str] = []
    for entry in entries:
        lines += [*dry_run_lines(entry, epochs), ""]
    emit({"results": entries}, as_json=as_json, lines=lines[:-1])


def _entries(run: _StoreRun) -> list[dict[str, Any]]:
    return [_entry(path, outcome, run.info) for path, outcome in run.outcomes]


def _report(run: _StoreRun, *, as_json: bool, interrupted: bool, quiet: bool = False) -> None:
    """Print every file's outcome (only its blob ID if `quiet`); exit with status 1 if one
    failed (module doc)."""
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
            if isinstance(outcome, Exception):
                continue
            if quiet:
                lines += [str(outcome.blob_id)]
            else:
                lines += [*_store_lines(path, outcome, run.info), ""]
        emit({}, as_json=False, lines=lines if quiet else lines[:-1])
        for path, exc in failures:
            message = error_text(exc)
            several = len(run.outcomes) > 1 or interrupted
            emit_error(f"storing {path}: {message}" if several else message, "", as_json=False)
    if failures and not interrupted:
        raise click.exceptions.Exit(1)
