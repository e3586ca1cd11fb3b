"""Resuming a devnet and restarting its nodes, without a network: the checks before any start.

Fast: the devnet is a state file and node keys made by `add_node_plan`; its "running" processes
are small Python sleepers; nothing is deployed and no chain runs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.devnet.conftest import walruspy
from walruspy.cli.devnet_cmd import _format_duration
from walruspy.devnet.errors import DevnetError, StateFileError
from walruspy.devnet.network import process_record
from walruspy.devnet.processes import ManagedProcess, ProcessSpec
from walruspy.devnet.resume import (
    ResumeRequest,
    check_request,
    recorded_plans,
    recorded_ports,
    restart_node,
    resume_devnet,
    running_processes,
)
from walruspy.devnet.setup import add_node_plan, free_ports
from walruspy.devnet.state import DevnetState, NodeRecord, ProcessRecord

pytestmark = pytest.mark.timeout(60)

SLEEPER = ("-c", "import time; time.sleep(120)")
#: Above the kernel's largest pid (2^22): no process has it.
NO_PID = 5_000_000


def stopped(name: str, port: int, *, scheme: str = "http") -> ProcessRecord:
    return ProcessRecord(name, NO_PID, ("python", "-m", name), f"/l/{name}.log",
                         f"{scheme}://127.0.0.1:{port}")  # fmt: skip


def fake_devnet(directory: Path, *, n_nodes: int = 2, lying: int | None = None) -> DevnetState:
    """A stopped TLS devnet's state file and node keys, on free ports; no deployment."""
    directory.mkdir(exist_ok=True)
    ports = free_ports(2 + 2 * n_nodes)
    nodes = []
    for index in range(n_nodes):
        plan = add_node_plan(directory, index, ports[2 + index], tls=True)
        proxy = (
            stopped(f"node{index}-proxy", ports[2 + n_nodes + index], scheme="https")
            if index == lying
            else None
        )
        nodes.append(
            NodeRecord(
                index=index,
                process=stopped(f"node{index}", plan.port, scheme="https"),
                url=proxy.url if proxy is not None else plan.url,
                shards=(index,),
                node_id="0x" + plan.node_id.hex(),
                proxy=proxy,
            )
        )
    state = DevnetState(
        dir=str(directory.resolve()),
        n_shards=10,
        epoch_duration_s=600,
        chain=stopped("chain", ports[0]),
        nodes=tuple(nodes),
        daemon=stopped("daemon", ports[1]),
        client_config=str(directory / "client_config.yaml"),
        deployment_file=str(directory / "deployment.json"),
        tls=True,
    )
    state.save()
    return state


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    """Processes that stand in for a devnet's running ones; killed at the end."""
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        if process.running:
            assert process.popen is not None
            process.popen.kill()
            process.popen.wait()


def running_record(
    tmp_path: Path, name: str, url: str, sleepers: list[ManagedProcess]
) -> ProcessRecord:
    process = ManagedProcess(ProcessSpec(name, SLEEPER, tmp_path / f"{name}.log"))
    process.start()
    sleepers.append(process)
    return process_record(process, url)


def test_options_given_on_resume_must_match(tmp_path: Path) -> None:
    state = fake_devnet(tmp_path / "net")
    check_request(state, ResumeRequest())
    check_request(state, ResumeRequest(n_nodes=2, n_shards=10, epoch_duration_s=600, tls=True))
    with pytest.raises(DevnetError) as caught:
        check_request(state, ResumeRequest(n_nodes=5, n_shards=10, epoch_duration_s=60, tls=False))
    message = str(caught.value)
    assert "--nodes 5, but it has 2 nodes" in message
    assert "--epoch-duration 60s, but its epochs last 600s" in message
    assert "--no-tls, but its nodes serve TLS" in message
    assert "--shards" not in message and "Leave these options out" in message


def test_recorded_plans_and_ports(tmp_path: Path) -> None:
    state = fake_devnet(tmp_path / "net", n_nodes=3, lying=1)
    plans = recorded_plans(state)
    for plan, record in zip(plans, state.nodes, strict=True):
        assert "0x" + plan.node_id.hex() == record.node_id
        assert plan.direct_url == record.process.url and plan.url == record.url
        assert len(plan.network_public_key) == 33  # pinned to the key on disk
    assert plans[1].proxy_port is not None and plans[0].proxy_port is None
    assert state.nodes[1].proxy is not None and plans[1].url == state.nodes[1].proxy.url
    ports = recorded_ports(state)
    assert ports[:2] == [
        int(record.url.rsplit(":", 1)[1]) for record in (state.chain, state.daemon)
    ]
    assert ports[2:] == [plan.port for plan in plans] + [plans[1].proxy_port]
    # A node ID that is not one is refused, naming the node.
    wrong = replace(state.nodes[0], node_id="0xnot-hex")
    with pytest.raises(StateFileError, match="node 0's ID '0xnot-hex' is not hex"):
        recorded_plans(replace(state, nodes=(wrong, *state.nodes[1:])))


async def test_resume_refuses_a_running_devnet(
    tmp_path: Path, sleepers: list[ManagedProcess]
) -> None:
    state = fake_devnet(tmp_path / "net")
    chain = running_record(tmp_path, "chain", state.chain.url, sleepers)
    partly = replace(state, chain=chain)
    partly.save()
    assert [record.name for record in running_processes(partly)] == ["chain"]
    with pytest.raises(DevnetError, match=r"is running \(chain\).*restart-node"):
        await resume_devnet(tmp_path / "net", ResumeRequest())
    daemon = running_record(tmp_path, "daemon", state.daemon.url, sleepers)
    nodes = tuple(
        replace(node, process=running_record(tmp_path, node.process.name, node.process.url,
                                             sleepers))
        for node in state.nodes
    )  # fmt: skip
    replace(partly, daemon=daemon, nodes=nodes).save()
    with pytest.raises(DevnetError, match=r"is running \(every process\)"):
        await resume_devnet(tmp_path / "net", ResumeRequest())


async def test_resume_fails_clearly_on_a_taken_port(tmp_path: Path) -> None:
    state = fake_devnet(tmp_path / "net")
    port = int(state.nodes[1].process.url.rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(DevnetError, match=f"port {port} of node1 .* taken by another"):
            await resume_devnet(tmp_path / "net", ResumeRequest())
    # The options are checked before anything else is looked at.
    with pytest.raises(DevnetError, match="--shards 11, but it has 10 shards"):
        await resume_devnet(tmp_path / "net", ResumeRequest(n_shards=11))


async def test_a_moved_devnet_is_not_resumed(tmp_path: Path) -> None:
    fake_devnet(tmp_path / "net")
    (tmp_path / "net").rename(tmp_path / "moved")
    with pytest.raises(DevnetError, match=r"was made in .*net.* move it back"):
        await resume_devnet(tmp_path / "moved", ResumeRequest())


async def test_restart_node_needs_the_node_and_a_running_chain(tmp_path: Path) -> None:
    fake_devnet(tmp_path / "net")
    with pytest.raises(DevnetError, match=r"has no node 7 \(nodes 0\.\.1\)"):
        await restart_node(tmp_path / "net", 7)
    with pytest.raises(DevnetError, match=r"is stopped .*devnet up --dir .* resumes it"):
        await restart_node(tmp_path / "net", 1)
    with pytest.raises(StateFileError, match="no devnet state"):
        await restart_node(tmp_path / "none", 0)


def test_state_file_keeps_the_body_limit_and_reads_older_files(tmp_path: Path) -> None:
    state = replace(fake_devnet(tmp_path / "net"), max_body_bytes=1 << 20)
    state.save()
    assert DevnetState.load(tmp_path / "net").max_body_bytes == 1 << 20
    data = json.loads((tmp_path / "net" / "devnet.json").read_text())
    del data["max_body_bytes"]
    (tmp_path / "net" / "devnet.json").write_text(json.dumps(data))
    assert DevnetState.load(tmp_path / "net").max_body_bytes == 10 << 20


def test_durations_are_printed_in_their_largest_unit() -> None:
    assert [_format_duration(s) for s in (600, 5400, 90, 7200, 86_400)] == [
        "10m", "90m", "90s", "2h", "1d",
    ]  # fmt: skip


def test_cli_up_refuses_other_options_and_restart_node_a_stopped_devnet(tmp_path: Path) -> None:
    fake_devnet(tmp_path / "net")
    up = walruspy("devnet", "up", "--dir", str(tmp_path / "net"), "--nodes", "4",
                  "--epoch-duration", "10m", "--json", check=False)  # fmt: skip
    assert up.returncode == 1
    error = json.loads(up.stdout)["error"]
    assert "--nodes 4, but it has 2 nodes" in error and "--epoch-duration" not in error
    restart = walruspy("devnet", "restart-node", "--dir", str(tmp_path / "net"), "--node", "0",
                       check=False)  # fmt: skip
    assert restart.returncode == 1 and "is stopped" in restart.stderr
    missing = walruspy("devnet", "restart-node", "--dir", str(tmp_path / "none"), "--node", "0",
                       "--json", check=False)  # fmt: skip
    assert missing.returncode == 1 and "no devnet state" in json.loads(missing.stdout)["error"]


def test_an_external_chain_is_not_the_devnets_process(tmp_path: Path) -> None:
    state = fake_devnet(tmp_path / "net")
    # An older file (no chain_external, no funder) reads as the devchain's devnet.
    data = json.loads((tmp_path / "net" / "devnet.json").read_text())
    assert data.pop("chain_external") is False and data.pop("funder_key_file") == ""
    (tmp_path / "net" / "devnet.json").write_text(json.dumps(data))
    old = DevnetState.load(tmp_path / "net")
    assert not old.chain_external and old.funder_key() is None
    assert old.processes[-1] == old.chain
    # On an external chain (a URL without a port, even) the chain is never stopped or checked
    # for a port; options on resume must name the same chain and funder.
    key = tmp_path / "net" / "wallets" / "funder.key"
    key.parent.mkdir()
    key.write_text("11" * 32 + "\n")
    external = replace(
        state,
        chain=ProcessRecord("chain", 0, (), "", "http://127.0.0.1:9"),
        chain_external=True,
        funder_key_file=str(key),
    )
    external.save()
    loaded = DevnetState.load(tmp_path / "net")
    assert loaded == external and loaded.funder_key() == bytes([0x11]) * 32
    assert all(record.name != "chain" for record in loaded.processes)
    assert recorded_ports(replace(loaded, chain=replace(loaded.chain, url="https://rpc.x")))[0] == 0
    with pytest.raises(DevnetError) as caught:
        check_request(loaded, ResumeRequest(chain_rpc="http://other:8545", funder_key=b"\x22" * 32))
    assert "--chain-rpc http://other:8545, but it runs on http://127.0.0.1:9" in str(caught.value)
    assert "--chain-key of 0x" in str(caught.value)
    check_request(loaded, ResumeRequest(chain_rpc="http://127.0.0.1:9", funder_key=b"\x11" * 32))


def test_cli_chain_key_needs_chain_rpc(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_text("11" * 32)
    up = walruspy("devnet", "up", "--dir", str(tmp_path / "net"), "--chain-key", str(key),
                  check=False)  # fmt: skip
    assert up.returncode == 2 and "--chain-key goes with --chain-rpc" in up.stderr
    assert not (tmp_path / "net").exists()
