"""The parts of `--hosts` devnets that run without root: link options, the host address book, the
state record, and the delaying relay on a datagram socket pair standing in for its TUN device
(each read one packet, as from a TUN)."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from pathlib import Path

import pytest

from walruspy.devnet.errors import DevnetError
from walruspy.devnet.hosts import (
    HostsNetwork,
    LinkShape,
    parse_bandwidth,
    parse_delay_s,
    parse_loss,
)
from walruspy.devnet.links import Relay


def test_link_options_parse() -> None:
    assert parse_delay_s("80ms") == pytest.approx(0.08)
    assert parse_delay_s("0.5s") == pytest.approx(0.5)
    assert parse_delay_s("12") == pytest.approx(0.012)
    assert parse_bandwidth("100mbit") == 100_000_000
    assert parse_bandwidth("1.5Gbit") == 1_500_000_000
    assert parse_bandwidth("64000") == 64_000
    assert parse_loss("0.5%") == pytest.approx(0.005)
    assert parse_loss("0.01") == pytest.approx(0.01)
    for parse, text in ((parse_delay_s, "fast"), (parse_bandwidth, "lots"), (parse_loss, "x%")):
        with pytest.raises(ValueError, match=repr(text)):
            parse(text)
    with pytest.raises(ValueError, match="negative"):
        parse_delay_s("-5ms")


def test_link_shapes_are_checked() -> None:
    assert not LinkShape().delays
    assert LinkShape(bandwidth_bps=10**8).delays is False
    assert LinkShape(loss=0.001).delays
    with pytest.raises(ValueError, match="jitter"):
        LinkShape(latency_s=0.01, jitter_s=0.02)
    with pytest.raises(ValueError, match="loss"):
        LinkShape(loss=1.0)


def test_hosts_get_addresses_names_and_a_record(tmp_path: Path) -> None:
    hosts = HostsNetwork.for_directory(tmp_path, LinkShape(0.08, 0.0, 0.0, 10**8))
    assert hosts.prefix == HostsNetwork.for_directory(tmp_path / ".", hosts.shape).prefix
    assert hosts.allocate("chain") == "10.213.0.2"
    assert hosts.allocate("client") == "10.213.1.2"
    assert hosts.allocate("chain") == "10.213.0.2"  # once
    pending = hosts.allocate("pending0")
    hosts.rename(hosts.name_of(pending), "node3")
    assert hosts.address("node3") == pending
    assert hosts.netns("node3") == f"{hosts.prefix}-node3"
    with pytest.raises(DevnetError, match="no host 'pending0'"):
        hosts.address("pending0")
    with pytest.raises(DevnetError, match=r"10\.213\.9\.2"):
        hosts.name_of("10.213.9.2")
    again = HostsNetwork.from_json(hosts.to_json())
    assert again == hosts
    assert again.relayed  # a delay and no netem: the relay


def _packet(source: int, destination: int, seq: int) -> bytes:
    """An IPv4-shaped datagram: addresses at bytes 12-19, a sequence number after them."""
    return bytes(12) + struct.pack(">II", source, destination) + seq.to_bytes(4, "big")


async def test_the_relay_delays_keeps_order_and_drops() -> None:
    relay_end, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    relay_end.setblocking(False)
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    shape = LinkShape(latency_s=0.05, jitter_s=0.04, loss=0.2)
    relay = Relay(relay_end.fileno(), shape, random.Random(7))
    relay.start()
    try:
        sent_at = {}
        for seq in range(200):
            pair = (1, 2) if seq % 2 else (3, 4)
            peer.send(_packet(*pair, seq))
            sent_at[seq] = loop.time()
        arrived: list[tuple[int, int, float]] = []
        deadline = loop.time() + 5
        while loop.time() < deadline and len(arrived) + relay.dropped < 200:
            try:
                data = peer.recv(100)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            source = struct.unpack(">I", data[12:16])[0]
            arrived.append((source, int.from_bytes(data[20:24], "big"), loop.time()))
    finally:
        relay.stop()
        relay_end.close()
        peer.close()
    assert len(arrived) + relay.dropped == 200
    assert 20 <= relay.dropped <= 60  # 20% of 200, give or take
    for _, seq, at in arrived:
        assert at - sent_at[seq] >= shape.latency_s - shape.jitter_s - 0.002
    for source in (1, 3):
        flow = [seq for src, seq, _ in arrived if src == source]
        assert flow == sorted(flow), "a flow was reordered"
