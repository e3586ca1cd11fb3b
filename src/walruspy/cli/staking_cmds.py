"""Staking commands with Walrus's names: stake, request-withdraw-stake, withdraw-stake,
list-staked-wal, and `info committee`.

Theory of operation (spec/walrus-system.md 2.3-2.6, 4.1; Walrus `cli/args.rs`, `cli_output.rs`).
Each command opens the client of a context as the other client commands do
(`walruspy.cli.client_cmds.run_client`) and works on its chain's staking contracts
(`walruspy.chain.evm_staking.EvmStaking`), from the context's wallet. The contracts decide every
rule; the commands only check up front what would otherwise surface as a bare revert, so the
error names what was wrong: an ID that is not `0x` and 64 hex digits, a node that is not
registered, an amount below the 1 WAL minimum stake, a StakedWal the wallet does not hold. Every
error is one line (JSON under `--json`) and exit status 1.

Amounts are in FROST (10^-9 WAL), printed with their WAL value. Walrus batches several
StakedWal objects into one transaction; here each is its own transaction, in order, so when one
fails the error also names those already done.

`request-withdraw-stake NODE_ID` without StakedWal IDs takes every StakedWal of the wallet with
that node that is still staked. A StakedWal whose stake is not yet counted for a selected
committee cannot be requested (Pools.vy: "withdraw directly"): it is withdrawn at once instead,
and the output lists it apart with the amount paid.

`info committee` reads the current committee (and the next one once `voting_end` selected it)
with each node's record and pool from the staking contracts; on a fixed-committee deployment it
prints the committee the System contract holds, with null for what only staking knows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from walruspy.cli.client_cmds import client_options, run_client
from walruspy.cli.output import emit, frost_text, wal_text
from walruspy.core.errors import InvalidInputError, WalrusError
from walruspy.node_api.paths import format_object_id, parse_object_id

if TYPE_CHECKING:
    from walruspy.chain.evm_staking import EvmStaking, StakedWalRecord, StorageNodeInfo
    from walruspy.client import WalrusClient
    from walruspy.core.apportionment import ShardAssignment
    from walruspy.core.committee import Committee

__all__ = ["STAKING_COMMANDS", "info_committee_command", "staked_wal_json", "staking_or_none"]

#: Pools.vy MIN_STAKING_THRESHOLD (Move `MIN_STAKING_THRESHOLD`): 1 WAL.
MIN_STAKE_FROST: Final = 10**9
#: Walrus amounts are u64 FROST.
MAX_AMOUNT_FROST: Final = (1 << 64) - 1
#: Walrus's default `--amounts`: 1 WAL.
DEFAULT_STAKE_FROST: Final = 10**9
#: Most IDs one command takes: each is a transaction, and a wallet's StakedWal listing is
#: paged by 256 (objects.vy MAX_PAGE).
MAX_IDS: Final = 256


# --- parsing and rendering ------------------------------------------------------------------


def parse_id(text: str, what: str) -> bytes:
    """A node or object ID, `0x` and 64 hex digits; InvalidInputError naming `what`."""
    try:
        return parse_object_id(text)
    except InvalidInputError:
        raise InvalidInputError(
            f"invalid {what} {text[:80]!r}: expected 0x and 64 hex digits"
        ) from None


def _parse_ids(texts: Sequence[str], what: str) -> list[bytes]:
    if len(texts) > MAX_IDS:
        raise InvalidInputError(f"at most {MAX_IDS} {what}s at a time, got {len(texts)}")
    ids = [parse_id(text, what) for text in texts]
    if len(set(ids)) != len(ids):
        raise InvalidInputError(f"a {what} is given twice")
    return ids


def _check_amount(amount: int) -> int:
    if amount < MIN_STAKE_FROST:
        raise InvalidInputError(
            f"amount {amount} FROST is below the minimum stake of 1 WAL ({MIN_STAKE_FROST} FROST)"
        )
    if amount > MAX_AMOUNT_FROST:
        raise InvalidInputError(f"amount {amount} FROST exceeds the u64 maximum")
    return amount


def staked_wal_json(record: StakedWalRecord) -> dict[str, Any]:
    """A StakedWal in Walrus's camelCase, principal in FROST and in WAL."""
    return {
        "id": format_object_id(record.object_id),
        "nodeId": format_object_id(record.node_id),
        "principal": record.principal,
        "principalWal": wal_text(record.principal),
        "activationEpoch": record.activation_epoch,
        "state": record.state,
        "withdrawEpoch": record.withdraw_epoch if record.withdrawing else None,
    }


def _staked_wal_lines(record: StakedWalRecord) -> list[str]:
    """Walrus's StakedWal display."""
    state = f"Withdrawing: epoch={record.withdraw_epoch}" if record.withdrawing else "Staked"
    return [
        "StakedWal:",
        f"    object id: {format_object_id(record.object_id)}",
        f"    state: {state}",
        f"    node id: {format_object_id(record.node_id)}",
        f"    principal: {frost_text(record.principal)}",
        f"    activation epoch: {record.activation_epoch}",
    ]


# --- the staking client of a context ----------------------------------------------------------


def staking_or_none(client: WalrusClient) -> EvmStaking | None:
    """The chain's staking client, or None on a fixed-committee deployment."""
    from walruspy.chain.evm_staking import EvmStaking

    staking = getattr(client.env.chain, "staking", None)
    return staking if isinstance(staking, EvmStaking) else None


def _staking(client: WalrusClient) -> EvmStaking:
    """The chain's staking client; a clear error on a fixed-committee deployment."""
    from walruspy.client.errors import ConfigError

    staking = staking_or_none(client)
    if staking is None:
        raise ConfigError(
            "the context's deployment has a fixed committee: it has no staking contracts"
        )
    return staking


def _wallet_staking(client: WalrusClient, command: str) -> tuple[EvmStaking, str]:
    """The staking client and the wallet's address, for a command that sends transactions."""
    from walruspy.client.errors import NoWalletError

    staking = _staking(client)
    if client.address is None:
        raise NoWalletError(f"{command} needs a wallet: set wallet_key_path in the context")
    return staking, client.address


async def _check_nodes(staking: EvmStaking, node_ids: Sequence[bytes]) -> None:
    """InvalidInputError naming the first node ID that is not registered."""
    registered = set(await staking.node_ids())
    for node_id in node_ids:
        if node_id not in registered:
            raise InvalidInputError(
                f"no storage node {format_object_id(node_id)} is registered on this chain"
            )


async def _owned(staking: EvmStaking, address: str, ids: Sequence[bytes]) -> list[StakedWalRecord]:
    """The wallet's StakedWal records `ids`, in order; an error names one it does not hold."""
    records = {record.object_id: record for record in await staking.staked_wal(address)}
    for object_id in ids:
        if object_id not in records:
            raise InvalidInputError(
                f"StakedWal {format_object_id(object_id)} is not held by this wallet ({address})"
            )
    return [records[object_id] for object_id in ids]


class PartialError(WalrusError):
    """A command of several transactions failed after some of them were made."""


def _partial(exc: WalrusError, done: Sequence[str]) -> WalrusError:
    """`exc`, or `exc` naming what was already done before it."""
    if not done:
        return exc
    return PartialError(f"{exc} (already done: {'; '.join(done)})")


# --- stake ----------------------------------------------------------------------------------


@click.command("stake")
@click.option(
    "--node-id",
    "--node-ids",
    "node_ids",
    multiple=True,
    required=True,
    metavar="NODE_ID",
    help="A storage node to stake with (repeat for several).",
)
@click.option(
    "--amount",
    "--amounts",
    "amounts",
    multiple=True,
    type=int,
    metavar="FROST",
    help="FROST to stake: one amount for every node, or one per --node-id in order "
    "(default 1 WAL).",
)
@client_options
def stake_command(
    *,
    node_ids: tuple[str, ...],
    amounts: tuple[int, ...],
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Stake WAL with storage nodes; each stake becomes a StakedWal object of the wallet."""
    ids = _parse_ids(node_ids, "node ID")
    wanted = list(amounts) or [DEFAULT_STAKE_FROST]
    if len(wanted) == 1:
        wanted *= len(ids)
    if len(wanted) != len(ids):
        raise InvalidInputError(
            f"{len(amounts)} amounts for {len(ids)} node IDs: give one amount, or one per node"
        )
    for amount in wanted:
        _check_amount(amount)

    async def operation(client: WalrusClient) -> list[StakedWalRecord]:
        staking, address = _wallet_staking(client, "stake")
        await _check_nodes(staking, ids)
        staked: list[bytes] = []
        for node_id, amount in zip(ids, wanted, strict=True):
            try:
                staked.append(await staking.stake(node_id, amount))
            except WalrusError as exc:
                raise _partial(exc, [f"staked as {format_object_id(s)}" for s in staked]) from exc
        return await _owned(staking, address, staked)

    records = run_client(config_path, context, operation)
    heading = (
        "Success: Staked WAL successfully:"
        if len(records) == 1
        else f"Success: Staked WAL successfully on {len(records)} storage nodes:"
    )
    lines = [heading]
    for record in records:
        lines += _staked_wal_lines(record)
    emit({"stakedWal": [staked_wal_json(r) for r in records]}, as_json=as_json, lines=lines)


# --- request-withdraw-stake, withdraw-stake ---------------------------------------------------


def _to_request(
    records: Sequence[StakedWalRecord], node_id: bytes, ids: Sequence[bytes]
) -> list[StakedWalRecord]:
    """The StakedWal objects to withdraw from `node_id` (see the module doc)."""
    node = format_object_id(node_id)
    if not ids:
        chosen = [r for r in records if r.node_id == node_id and not r.withdrawing]
        if not chosen:
            raise InvalidInputError(f"this wallet holds no staked StakedWal with node {node}")
        return chosen
    for record in records:
        name = format_object_id(record.object_id)
        if record.node_id != node_id:
            raise InvalidInputError(
                f"StakedWal {name} is staked with node {format_object_id(record.node_id)}, "
                f"not {node}"
            )
        if record.withdrawing:
            raise InvalidInputError(
                f"StakedWal {name} is already withdrawing (from epoch {record.withdraw_epoch})"
            )
    return list(records)


@click.command("request-withdraw-stake")
@click.argument("node_id_text", metavar="NODE_ID")
@click.argument("staked_wal_ids", nargs=-1, metavar="[STAKED_WAL_ID]...")
@client_options
def request_withdraw_stake_command(
    *,
    node_id_text: str,
    staked_wal_ids: tuple[str, ...],
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Ask to withdraw StakedWal objects staked with NODE_ID (all staked ones by default).

    Stake not yet counted for a selected committee is withdrawn at once instead.
    """
    node_id = parse_id(node_id_text, "node ID")
    ids = _parse_ids(staked_wal_ids, "StakedWal ID")

    async def operation(
        client: WalrusClient,
    ) -> tuple[list[StakedWalRecord], list[tuple[StakedWalRecord, int]]]:
        staking, address = _wallet_staking(client, "request-withdraw-stake")
        await _check_nodes(staking, [node_id])
        held = await _owned(staking, address, ids) if ids else await staking.staked_wal(address)
        chosen = _to_request(held, node_id, ids)
        requested: list[bytes] = []
        withdrawn: list[tuple[StakedWalRecord, int]] = []
        for record in chosen:
            try:
                if await staking.can_withdraw_early(record.object_id):
                    withdrawn.append((record, await staking.withdraw_stake(record.object_id)))
                else:
                    await staking.request_withdraw_stake(record.object_id)
                    requested.append(record.object_id)
            except WalrusError as exc:
                done = [f"requested {format_object_id(i)}" for i in requested] + [
                    f"withdrew {format_object_id(r.object_id)}" for r, _ in withdrawn
                ]
                raise _partial(exc, done) from exc
        return await _owned(staking, address, requested), withdrawn

    requested, withdrawn = run_client(config_path, context, operation)
    lines: list[str] = []
    if requested:
        lines.append(f"Success: Requested withdrawal for {len(requested)} StakedWal object(s):")
        for record in requested:
            lines += _staked_wal_lines(record)
    if withdrawn:
        lines.append(
            f"Withdrew {len(withdrawn)} StakedWal object(s) at once (their stake was not yet "
            "counted for a committee):"
        )
        lines += [f"    {format_object_id(r.object_id)}: {frost_text(a)}" for r, a in withdrawn]
    result = {
        "stakedWals": [staked_wal_json(r) for r in requested],
        "withdrawnDirectly": [
            {"id": format_object_id(r.object_id), "nodeId": format_object_id(r.node_id),
             "amount": a, "amountWal": wal_text(a)}
            for r, a in withdrawn
        ],
    }  # fmt: skip
    emit(result, as_json=as_json, lines=lines)


@click.command("withdraw-stake")
@click.argument("staked_wal_ids", nargs=-1, required=True, metavar="STAKED_WAL_ID...")
@client_options
def withdraw_stake_command(
    *,
    staked_wal_ids: tuple[str, ...],
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Withdraw StakedWal objects whose withdrawal epoch has come (or that can go at once)."""
    ids = _parse_ids(staked_wal_ids, "StakedWal ID")

    async def operation(client: WalrusClient) -> list[tuple[bytes, int]]:
        staking, address = _wallet_staking(client, "withdraw-stake")
        records = await _owned(staking, address, ids)
        epoch = (await staking.state()).epoch
        for record in records:
            if record.withdrawing and record.withdraw_epoch > epoch:
                raise InvalidInputError(
                    f"StakedWal {format_object_id(record.object_id)} can be withdrawn from "
                    f"epoch {record.withdraw_epoch}; this is epoch {epoch}"
                )
        paid: list[tuple[bytes, int]] = []
        for object_id in ids:
            try:
                paid.append((object_id, await staking.withdraw_stake(object_id)))
            except WalrusError as exc:
                done = [f"withdrew {format_object_id(i)} ({a} FROST)" for i, a in paid]
                raise _partial(exc, done) from exc
        return paid

    paid = run_client(config_path, context, operation)
    total = sum(amount for _, amount in paid)
    lines = [f"Success: Withdrew staked WAL from {len(paid)} StakedWal object(s):"]
    lines += [f"    {format_object_id(i)}: {frost_text(a)}" for i, a in paid]
    lines.append(f"Total: {frost_text(total)}")
    result = {
        "stakedWalIds": [format_object_id(i) for i, _ in paid],
        "withdrawn": [
            {"id": format_object_id(i), "amount": a, "amountWal": wal_text(a)} for i, a in paid
        ],
        "totalAmount": total,
    }
    emit(result, as_json=as_json, lines=lines)


# --- list-staked-wal --------------------------------------------------------------------------


@click.command("list-staked-wal")
@click.option("--staked-only", is_flag=True, help="Only StakedWal objects still staked.")
@click.option("--withdrawing-only", is_flag=True, help="Only StakedWal objects withdrawing.")
@client_options
def list_staked_wal_command(
    *,
    staked_only: bool,
    withdrawing_only: bool,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """The StakedWal objects the wallet holds."""
    if staked_only and withdrawing_only:
        raise click.UsageError("--staked-only and --withdrawing-only conflict")

    async def operation(client: WalrusClient) -> list[StakedWalRecord]:
        staking, address = _wallet_staking(client, "list-staked-wal")
        return await staking.staked_wal(address)

    records = [
        record
        for record in run_client(config_path, context, operation)
        if not (staked_only and record.withdrawing)
        and not (withdrawing_only and not record.withdrawing)
    ]
    records.sort(key=lambda r: (r.node_id, r.activation_epoch, r.object_id))
    if records:
        lines = [f"Found {len(records)} StakedWal object(s):", ""]
        for record in records:
            lines += [*_staked_wal_lines(record), ""]
        lines.pop()
    else:
        lines = ["No StakedWal objects found in this wallet."]
    emit({"stakedWals": [staked_wal_json(r) for r in records]}, as_json=as_json, lines=lines)


# --- info committee ---------------------------------------------------------------------------


def _node_json(
    node_id: bytes,
    *,
    shard_ids: Sequence[int],
    network_address: str,
    public_key: bytes,
    info: StorageNodeInfo | None = None,
    stake: int | None = None,
) -> dict[str, Any]:
    """A committee member in Walrus's `StorageNodeInfo` shape; null for what is unknown."""
    votes = None
    if info is not None:
        votes = {
            "storagePrice": info.storage_price,
            "writePrice": info.write_price,
            "nodeCapacity": info.node_capacity,
        }
    network_key = info.network_public_key if info is not None else b""
    return {
        "name": info.name if info is not None else None,
        "nodeId": format_object_id(node_id),
        "networkAddress": network_address,
        # Walrus prints BLS keys as fastcrypto serialises them: base64 of the compressed bytes.
        "publicKey": base64.b64encode(public_key).decode(),
        "networkPublicKey": base64.b64encode(network_key).decode() if network_key else None,
        "nShards": len(shard_ids),
        "shardIds": [int(s) for s in shard_ids],
        "stake": stake,
        "votingParams": votes,
    }


async def _staking_committee(staking: EvmStaking) -> dict[str, Any]:
    from walruspy.tasks import gather_reads

    state = await staking.state()
    _, current, upcoming = await staking.committees()
    node_ids = list(dict.fromkeys((*current.node_ids, *upcoming.node_ids)))
    infos = await gather_reads(*(staking.node_info(node_id) for node_id in node_ids))
    pools = await gather_reads(*(staking.pool(node_id) for node_id in node_ids))
    known = {info.node_id: (info, pool) for info, pool in zip(infos, pools, strict=True)}

    def members(assignment: ShardAssignment) -> list[dict[str, Any]]:
        nodes = []
        for member in assignment.members:
            info, pool = known[member.node_id]
            nodes.append(
                _node_json(
                    member.node_id,
                    shard_ids=member.shards,
                    network_address=info.network_address,
                    public_key=info.public_key.to_bytes(),
                    info=info,
                    stake=pool.wal_balance,
                )
            )
        # Walrus's default order: by name, case-insensitively.
        return sorted(nodes, key=lambda node: (node["name"].lower(), node["nodeId"]))

    return {
        "currentStorageNodes": members(current),
        "nextStorageNodes": members(upcoming) if upcoming.members else None,
        "epoch": state.epoch,
        "nShards": state.n_shards,
    }


def _fixed_committee(committee: Committee) -> dict[str, Any]:
    return {
        "currentStorageNodes": [
            _node_json(
                m.node_id,
                shard_ids=m.shards,
                network_address=m.network_address,
                public_key=m.public_key.to_bytes(),
            )
            for m in committee.members
        ],
        "nextStorageNodes": None,
        "epoch": committee.epoch,
        "nShards": committee.n_shards,
    }


def _committee_lines(title: str, nodes: list[dict[str, Any]], n_shards: int) -> list[str]:
    lines = [title]
    if not nodes:
        return [*lines, "  (no members)"]
    lines.append(f"  {'Idx':<4} {'Name':<20} {'# Shards':>14} {'Stake (WAL)':>16}  Address")
    for index, node in enumerate(nodes):
        share = f"{node['nShards']} ({100 * node['nShards'] / n_shards:.2f}%)"
        stake = wal_text(node["stake"]) if node["stake"] is not None else "-"
        name = node["name"] if node["name"] is not None else "-"
        lines.append(f"  {index:<4} {name:<20} {share:>14} {stake:>16}  {node['networkAddress']}")
    lines.append("")
    for index, node in enumerate(nodes):
        lines += [
            f"  {index}: {node['name'] or node['nodeId']}",
            f"    Node ID: {node['nodeId']}",
            f"    Public key: {node['publicKey']}",
            f"    Shards: {', '.join(map(str, node['shardIds']))}",
        ]
        votes = node["votingParams"]
        if votes is not None:
            lines.append(
                f"    Votes: storage price {votes['storagePrice']} FROST per MiB and epoch, "
                f"write price {votes['writePrice']} FROST per MiB, "
                f"node capacity {votes['nodeCapacity']} bytes"
            )
    return lines


@click.command("committee")
@client_options
@click.pass_context
def info_committee_command(
    ctx: click.Context, *, config_path: Path | None, context: str | None, as_json: bool
) -> None:
    """The current committee (and the next, once selected): shards, stake and votes."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    config_path = config_path or parent.get("config_path")
    context = context or parent.get("context")
    as_json = as_json or bool(parent.get("as_json"))

    async def operation(client: WalrusClient) -> tuple[dict[str, Any], bool]:
        if getattr(client.env.chain, "staking", None) is None:
            return _fixed_committee(await client.env.chain.committee()), True
        return await _staking_committee(_staking(client)), False

    result, fixed = run_client(config_path, context, operation)
    n_shards = result["nShards"]
    lines = [f"Epoch {result['epoch']}, {n_shards} shards", ""]
    lines += _committee_lines("Current committee", result["currentStorageNodes"], n_shards)
    if fixed:
        lines += ["", "Next committee: none (the deployment's committee is fixed)"]
    elif result["nextStorageNodes"] is None:
        lines += ["", "Next committee: not selected yet"]
    else:
        lines += ["", *_committee_lines("Next committee", result["nextStorageNodes"], n_shards)]
    emit(result, as_json=as_json, lines=lines)


#: The top-level commands `walruspy.cli.main` registers (`info committee` goes under `info`).
STAKING_COMMANDS = (
    stake_command,
    request_withdraw_stake_command,
    withdraw_stake_command,
    list_staked_wal_command,
)
