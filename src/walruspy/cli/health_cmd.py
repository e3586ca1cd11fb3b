"""`walruspy health`: every selected storage node's health, as Walrus's `walrus health`.

Theory of operation (spec/walrus-system.md 3.5 and 4.1; Walrus `CliCommands::Health`,
`NodeSelection` in `cli/args.rs`, `ServiceHealthInfoOutput` in `client/responses.rs`). The nodes
are chosen by exactly one of `--committee` (the current committee), `--active-set` (every node
staking would consider at the next selection), `--node-ids ID...` or `--node-urls URL...`. Node
records come from the chain, so each node is reached at its registered address over TLS pinned
to its registered network key (`walruspy.node_api.tls`): a URL must belong to a node of the
committee or the active set, or the command says so. A deployment with a fixed committee has no
staking contracts: there `--committee` and `--node-ids`/`--node-urls` of members work, and names
are empty.

Up to `--concurrent-requests` nodes are asked at once, each with the node client's timeout. A
node that does not answer is reported with its error, not dropped; the command fails only when
the selection itself is wrong. Output is sorted by `--sort-by` (`status`, the default, puts the
failures and unusual states first; `name`, `id`, `url`) and `--desc`. JSON is Walrus's:
`{"healthInfo": [{"nodeId", "nodeUrl", "nodeName", "networkPublicKey", "healthInfo": {"Ok":
ServiceHealthInfo} | {"Err": text}}], "latestSeq": null}`.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from walruspy.cli.client_cmds import _parse_object_ids, client_options, run_client
from walruspy.cli.options import MultiValueCommand
from walruspy.cli.output import emit
from walruspy.cli.staking_cmds import staking_or_none
from walruspy.core.errors import InvalidInputError
from walruspy.node_api.paths import format_object_id

if TYPE_CHECKING:
    from walruspy.client import WalrusClient
    from walruspy.node_api.health import ServiceHealthInfo

__all__ = ["health_command"]

#: Walrus's `default::concurrent_requests_for_health`.
DEFAULT_CONCURRENT_REQUESTS: Final = 60
#: How long one node may take to answer: a health answer is small and read from memory.
HEALTH_TIMEOUT_S: Final = 10.0
#: Node states listed first by the status sort: a healthy network shows them last.
_STATUS_ORDER: Final = {"Active": 2, "Standby": 1}


@dataclass(frozen=True, slots=True)
class _Node:
    node_id: bytes
    name: str
    network_address: str
    network_public_key: bytes


@dataclass(frozen=True, slots=True)
class _Health:
    node: _Node
    url: str
    info: ServiceHealthInfo | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        answer = {"Ok": self.info.to_json()} if self.info is not None else {"Err": self.error}
        return {
            "nodeId": format_object_id(self.node.node_id),
            "nodeUrl": self.node.network_address,
            "nodeName": self.node.name,
            "networkPublicKey": base64.b64encode(self.node.network_public_key).decode(),
            "healthInfo": answer,
        }

    def sort_key(self, by: str) -> Any:
        if by == "name":
            return self.node.name.lower()
        if by == "id":
            return self.node.node_id
        if by == "url":
            return self.node.network_address
        status = self.info.node_status if self.info is not None else ""
        return (_STATUS_ORDER.get(status, 0), status, self.node.name.lower())

    def line(self) -> str:
        who = f"{self.node.name or '(no name)'} {format_object_id(self.node.node_id)} at {self.url}"
        if self.info is None:
            return f"{who}: error: {self.error}"
        summary = self.info.shard_summary
        return (
            f"{who}: {self.info.node_status}, epoch {self.info.epoch}, "
            f"{summary.owned} shards owned, events persisted "
            f"{self.info.event_progress.persisted} (pending {self.info.event_progress.pending})"
        )


async def _members(client: WalrusClient) -> list[_Node]:
    """The current committee, named from staking where the deployment has it."""
    committee = await client.env.chain.committee()
    names = await _names(client, [m.node_id for m in committee.members])
    return [
        _Node(m.node_id, names.get(m.node_id, ""), m.network_address, m.network_public_key)
        for m in committee.members
    ]


async def _names(client: WalrusClient, node_ids: list[bytes]) -> dict[bytes, str]:
    staking = staking_or_none(client)
    if staking is None:
        return {}
    infos = await asyncio.gather(*(staking.node_info(node_id) for node_id in node_ids))
    return {info.node_id: info.name for info in infos}


async def _registered(client: WalrusClient, node_ids: list[bytes]) -> list[_Node]:
    """Registered nodes by ID (staking), or committee members on a fixed committee."""
    staking = staking_or_none(client)
    if staking is None:
        members = {node.node_id: node for node in await _members(client)}
        missing = [format_object_id(i) for i in node_ids if i not in members]
        if missing:
            raise InvalidInputError(f"not a member of the committee: {', '.join(missing)}")
        return [members[i] for i in node_ids]
    from walruspy.chain.api import ChainRevertError

    nodes = []
    for node_id in node_ids:
        try:
            info = await staking.node_info(node_id)
        except ChainRevertError:
            raise InvalidInputError(
                f"no storage node {format_object_id(node_id)} is registered"
            ) from None
        nodes.append(_Node(node_id, info.name, info.network_address, info.network_public_key))
    return nodes


async def _active_set(client: WalrusClient) -> list[_Node]:
    staking = staking_or_none(client)
    if staking is None:
        raise InvalidInputError(
            "the context's deployment has a fixed committee: it has no active set (use --committee)"
        )
    return await _registered(client, [node_id for node_id, _ in await staking.active_set()])


async def _by_urls(client: WalrusClient, urls: tuple[str, ...]) -> list[_Node]:
    """The nodes of the committee or the active set serving at `urls` (`host:port`, with or
    without a scheme)."""
    from walruspy.node_api.client import node_url

    known = {node.node_id: node for node in await _members(client)}
    if staking_or_none(client) is not None:
        known.update({node.node_id: node for node in await _active_set(client)})
    by_url: dict[str, _Node] = {}
    for node in known.values():
        by_url[node.network_address] = node
        by_url[node_url(node.network_address, node.network_public_key)] = node
    found: list[_Node] = []
    unknown: list[str] = []
    for url in urls:
        match = by_url.get(url.rstrip("/"))
        if match is None:
            unknown.append(url)
        elif match not in found:
            found.append(match)
    if unknown:
        raise InvalidInputError(
            f"no node of the committee or the active set serves at {', '.join(unknown)}"
        )
    return found


async def _ask(nodes: list[_Node], detail: bool, concurrency: int) -> list[_Health]:
    import aiohttp

    from walruspy.core.errors import WalrusError
    from walruspy.node_api.client import NodeClient, node_url

    slots = asyncio.Semaphore(concurrency)

    async def one(node: _Node, session: aiohttp.ClientSession) -> _Health:
        url = node_url(node.network_address, node.network_public_key)
        client = NodeClient(
            url,
            session,
            timeout_s=HEALTH_TIMEOUT_S,
            network_public_key=node.network_public_key,
        )
        async with slots:
            try:
                return _Health(node, url, await client.health(detail), None)
            except (WalrusError, ValueError) as exc:
                return _Health(node, url, None, str(exc) or type(exc).__name__)

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(node, session) for node in nodes)))


@click.command("health", cls=MultiValueCommand)
@click.option(
    "--node-ids",
    "node_ids",
    multiple=True,
    callback=_parse_object_ids,
    help="The storage nodes, by ID (one or more after the flag).",
)
@click.option(
    "--node-urls", "node_urls", multiple=True, help="The storage nodes, by their registered URL."
)
@click.option("--committee", is_flag=True, help="Every node of the current committee.")
@click.option("--active-set", is_flag=True, help="Every node of the active set.")
@click.option("--detail", is_flag=True, help="Ask for each node's shard-by-shard detail.")
@click.option(
    "--sort-by",
    type=click.Choice(["status", "name", "id", "url"]),
    default="status",
    show_default=True,
    help="Order of the nodes (status: failures and unusual states first).",
)
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@click.option(
    "--concurrent-requests",
    type=click.IntRange(1),
    default=DEFAULT_CONCURRENT_REQUESTS,
    show_default=True,
    help="Nodes asked at once.",
)
@client_options
def health_command(
    *,
    node_ids: tuple[bytes, ...],
    node_urls: tuple[str, ...],
    committee: bool,
    active_set: bool,
    detail: bool,
    sort_by: str,
    desc: bool,
    concurrent_requests: int,
    config_path: Path | None,
    context: str | None,
    as_json: bool,
) -> None:
    """Health of storage nodes: status, epoch, shards and event progress of each."""
    chosen = (bool(node_ids), bool(node_urls), committee, active_set)
    if sum(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --node-ids, --node-urls, --committee and --active-set"
        )

    async def operation(client: WalrusClient) -> list[_Health]:
        if committee:
            nodes = await _members(client)
        elif active_set:
            nodes = await _active_set(client)
        elif node_ids:
            nodes = await _registered(client, list(dict.fromkeys(node_ids)))
        else:
            nodes = await _by_urls(client, node_urls)
        return await _ask(nodes, detail, concurrent_requests)

    answers = run_client(config_path, context, operation)
    answers.sort(key=lambda answer: answer.sort_key(sort_by), reverse=desc)
    failed = sum(answer.info is None for answer in answers)
    lines = [answer.line() for answer in answers]
    lines.append(f"{len(answers)} nodes, {len(answers) - failed} answered, {failed} did not.")
    body = {"healthInfo": [answer.to_json() for answer in answers], "latestSeq": None}
    emit(body, as_json=as_json, lines=lines)
