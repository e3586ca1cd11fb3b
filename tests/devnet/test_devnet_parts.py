"""The devnet's parts without a network: processes, the state file, settings and the proxy.

Fast: the processes are small Python sleepers; nothing is deployed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from walruspy.core.slivers import SliverData
from walruspy.core.types import SliverIndex, SliverType
from walruspy.devnet import wait_until
from walruspy.devnet.errors import ProcessError, StateFileError
from walruspy.devnet.network import NODE_NICE, node_spec
from walruspy.devnet.processes import (
    ManagedProcess,
    ProcessSpec,
    pid_alive,
    same_process,
    stop_pids,
)
from walruspy.devnet.proxy import corrupt_sliver
from walruspy.devnet.setup import DevnetSettings, add_node_plan, free_ports, node_config
from walruspy.devnet.state import DevnetState, NodeRecord, ProcessRecord
from walruspy.node.config import ScrubConfig, parse_config

pytestmark = pytest.mark.timeout(60)

SLEEPER = ("-c", "import sys, time; print('started', flush=True); time.sleep(120)")


def sleeper(tmp_path: Path, name: str = "sleeper", *, detached: bool = False) -> ManagedProcess:
    return ManagedProcess(ProcessSpec(name, SLEEPER, tmp_path / f"{name}.log"), detached=detached)


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat (R, S, T for stopped, Z, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def log_lines(process: ManagedProcess) -> int:
    return process.spec.log_path.read_text().count("started")


async def wait_started(process: ManagedProcess, count: int) -> None:
    async def started() -> bool:
        return await asyncio.to_thread(log_lines, process) >= count

    await process.wait_ready(started, 30)


async def test_managed_process_signals(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    process.start()
    try:
        await wait_started(process, 1)
        assert process.running and process.pid is not None
        assert same_process(process.pid, process.spec.command)
        with pytest.raises(ProcessError, match="already running"):
            process.start()
        process.pause()
        pid = process.pid

        async def stopped() -> bool:  # SIGSTOP is delivered asynchronously
            return await asyncio.to_thread(process_state, pid) == "T"

        await wait_until(stopped, 10, "the paused process stopping")
        process.resume()
        assert not process.paused
        process.pause()  # a paused process still stops on SIGTERM
        assert await process.stop() == -signal.SIGTERM
        assert not process.running
        process.start()  # again, from the same spec, appending to the same log
        await wait_started(process, 2)
        await process.kill()
        assert not process.running
        with pytest.raises(ProcessError, match="not running"):
            process.pause()
    finally:
        if process.running:
            await process.kill()
    assert log_lines(process) == 2


async def test_a_nice_process_runs_below_this_one(tmp_path: Path) -> None:
    # Storage nodes run below the devchain and the client (network.NODE_NICE).
    spec = ProcessSpec("nice", SLEEPER, tmp_path / "nice.log", nice=NODE_NICE)
    process = ManagedProcess(spec)
    process.start()
    try:
        await wait_started(process, 1)
        assert process.pid is not None
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(own + NODE_NICE, 19)
    finally:
        await process.kill()
    plan = add_node_plan(tmp_path, 0, free_ports(1)[0], tls=False)
    assert node_spec(tmp_path, plan).nice == NODE_NICE


async def test_wait_ready_fails_with_the_log_tail(tmp_path: Path) -> None:
    failing = ManagedProcess(
        ProcessSpec("failing", ("-c", "print('boom: no config'); raise SystemExit(3)"),
                    tmp_path / "failing.log")
    )  # fmt: skip
    failing.start()

    async def never() -> bool:
        return False

    with pytest.raises(ProcessError, match=r"exited with status 3[\s\S]*boom: no config"):
        await failing.wait_ready(never, 30)
    slow = sleeper(tmp_path, "slow")
    slow.start()
    try:
        with pytest.raises(ProcessError, match="not ready within"):
            await slow.wait_ready(never, 0.3)
    finally:
        await slow.kill()


async def test_stop_pids_only_touches_recorded_commands(tmp_path: Path) -> None:
    ours = sleeper(tmp_path, "ours", detached=True)
    other = sleeper(tmp_path, "other")
    ours.start()
    other.start()
    try:
        assert ours.pid is not None and other.pid is not None
        wrong_command = [*other.spec.command, "--something-else"]
        stopped = await asyncio.to_thread(
            stop_pids, [(ours.pid, ours.spec.command), (other.pid, wrong_command)]
        )
        assert stopped == [ours.pid]
        await asyncio.to_thread(ours.popen.wait, 10)  # type: ignore[union-attr]
        assert not pid_alive(ours.pid) and other.running
        assert not same_process(ours.pid, ours.spec.command)
    finally:
        await other.kill()


def test_state_file_round_trip(tmp_path: Path) -> None:
    record = ProcessRecord("node0", 123, ("python", "-m", "x"), "/l/node0.log", "http://a:1")
    state = DevnetState(
        dir=str(tmp_path),
        n_shards=10,
        epoch_duration_s=60,
        chain=ProcessRecord("chain", 1, ("python",), "/l/chain.log", "http://c:2"),
        nodes=(NodeRecord(0, record, "http://p:3", (0, 1, 2), "0x00", proxy=record),),
        daemon=ProcessRecord("daemon", 2, ("python",), "/l/daemon.log", "http://d:4"),
        client_config="/c.yaml",
        deployment_file="/d.json",
    )
    state.save()
    assert DevnetState.load(tmp_path) == state
    assert [p.name for p in state.processes] == ["daemon", "node0", "node0", "chain"]
    (tmp_path / "devnet.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StateFileError, match="not a devnet state file"):
        DevnetState.load(tmp_path)
    with pytest.raises(StateFileError, match="no devnet state"):
        DevnetState.load(tmp_path / "missing")


def test_settings_are_checked() -> None:
    assert DevnetSettings().n_nodes == 4
    for bad in ({"n_nodes": 5, "n_shards": 4}, {"n_shards": 1001, "n_nodes": 4},
                {"epoch_duration_s": 0}, {"lying_nodes": (4,)}):  # fmt: skip
        with pytest.raises(ValueError):  # noqa: PT011 - each names its own field
            DevnetSettings(**bad)  # type: ignore[arg-type]
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for bad_scrub in ({"scrub_bytes_per_second": -1}, {"scrub_pass_interval_s": 0.0}):
        with pytest.raises(ValueError, match="scrub"):
            DevnetSettings(**bad_scrub)  # type: ignore[arg-type]


def test_node_config_carries_the_scrub_settings(tmp_path: Path) -> None:
    """The nodes keep the scrubber's defaults unless the devnet is told otherwise."""
    plan = add_node_plan(tmp_path, 0, free_ports(1)[0], tls=True)
    rpc, deployment = "http://127.0.0.1:1", tmp_path / "deployment.json"
    default = parse_config(node_config(plan, rpc, deployment, DevnetSettings()), tmp_path)
    assert default.scrub == ScrubConfig()
    # TLS by default: the network key keygen made, pinned by clients as the plan's key.
    assert default.serves_tls and default.network_key_path == plan.network_key_path
    assert len(plan.network_public_key) == 33 and plan.direct_url.startswith("https://")
    fast = DevnetSettings(scrub_bytes_per_second=64 << 20, scrub_pass_interval_s=1.0)
    config = parse_config(node_config(plan, rpc, deployment, fast), tmp_path)
    assert (config.scrub.bytes_per_second, config.scrub.pass_interval_s) == (64 << 20, 1.0)


def test_corrupted_slivers_still_parse_but_differ() -> None:
    sliver = SliverData(SliverType.PRIMARY, SliverIndex(3), 2, os.urandom(32))
    body = sliver.to_bcs()
    bad = corrupt_sliver(body)
    assert len(bad) == len(body) and bad != body
    parsed = SliverData.from_bcs(bad, SliverType.PRIMARY)
    assert parsed.index == 3 and parsed.symbol_size == 2 and parsed.data != sliver.data
    assert corrupt_sliver(b"abc") == b"abc"  # too short to be a sliver: untouched


def test_corrupt_symbols_keeps_them_parseable_but_failing_their_proofs() -> None:
    from walruspy.core.encoding import encode_blob
    from walruspy.core.errors import VerificationError
    from walruspy.core.symbols import SymbolSource, symbols_from_bcs, symbols_to_bcs
    from walruspy.core.types import SliverIndex
    from walruspy.devnet.proxy import corrupt_symbols

    encoded = encode_blob(b"symbols for a lying proxy" * 40, 7)
    target = SliverIndex(2)
    honest = [SymbolSource(encoded.secondary_sliver(j), 7).symbol_for(target) for j in range(3)]
    lies = symbols_from_bcs(corrupt_symbols(symbols_to_bcs(honest)))
    assert len(lies) == len(honest)
    for symbol in honest:
        symbol.verify(encoded.metadata, target, SliverType.PRIMARY)
    for symbol in lies:
        with pytest.raises(VerificationError):
            symbol.verify(encoded.metadata, target, SliverType.PRIMARY)
    assert corrupt_symbols(b"not bcs") == b"not bcs"  # not symbols: untouched


def test_a_plain_http_node_registers_no_network_key(tmp_path: Path) -> None:
    plan = add_node_plan(tmp_path, 0, free_ports(1)[0], tls=False)
    rpc, deployment = "http://127.0.0.1:1", tmp_path / "deployment.json"
    config = parse_config(node_config(plan, rpc, deployment, DevnetSettings(tls=False)), tmp_path)
    assert not config.serves_tls and config.tls.disable_tls
    assert plan.network_public_key == b"" and plan.direct_url.startswith("http://")
    assert not DevnetSettings(staking=False).uses_tls  # a fixed committee records no keys
