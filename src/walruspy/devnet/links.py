"""The delaying relay of a `--hosts` devnet: latency, jitter and loss where the kernel has no netem.

Theory of operation (issue "across hosts"; `walruspy.devnet.hosts` builds the network). Every
host of a `--hosts` devnet reaches every other through one router namespace. Its kernel routes
each packet that arrives from a host's link into a TUN device (policy routing: "not from the
TUN, look up the table whose only route is the TUN"); this process reads the packet there,
holds it for the link's one-way delay, and writes it back into the TUN, from where the kernel
routes it out to the destination host's link. The delay is applied once per packet and
direction, as netem on each host's outgoing link would: a round trip between two hosts costs
twice `--latency`.

- Jitter draws each packet's delay uniformly from latency ± jitter (netem's default shape),
  but a packet never overtakes an earlier one of the same source and destination: wired paths
  do not reorder, and TCP mistakes reordering for loss.
- Loss drops each packet independently with the given probability (netem's `loss random`).
- Bandwidth is not this process's business: `tc tbf` shapes both ends of each host's link.

Without the relay the TUN has no reader and the kernel drops what it routes there: the hosts
are partitioned, so the devnet starts the relay before any other process and restarts it on
resume. Delivery is scheduled on the event loop's clock (`loop.call_at`), which holds up to a
bandwidth-delay product of packets in memory (a few megabytes at 100 Mbit/s and 80 ms).

Run as `python -m walruspy.devnet.links --tun NAME --latency-ms 80 --jitter-ms 10 --loss 0.005`
inside the router namespace; it prints one line once it reads from the TUN.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import random
import signal
import struct
import sys
from dataclasses import dataclass
from typing import Final

__all__ = ["RELAY_READY_LINE", "LinkShape", "Relay", "main", "open_tun"]

#: The start of the line the relay prints once it reads from the TUN.
RELAY_READY_LINE: Final = "relaying"

#: ioctl and flags of Linux's TUN driver (linux/if_tun.h).
_TUNSETIFF: Final = 0x400454CA
_IFF_TUN: Final = 0x0001
_IFF_NO_PI: Final = 0x1000
#: Larger than any MTU a devnet link is given, so a read never truncates a packet.
_MAX_PACKET: Final = 1 << 16
#: Seconds between two packets of one flow due at the same instant, to keep their order.
_ORDER_STEP_S: Final = 1e-6
#: Packets read per wake-up before yielding to the delivery timers.
_READ_BATCH: Final = 256


@dataclass(frozen=True, slots=True)
class LinkShape:
    """What every link of a `--hosts` devnet does to the packets crossing it."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    #: Probability of dropping one packet, 0 to 1.
    loss: float = 0.0
    #: Bits per second of each host's link, each way; 0 is unshaped.
    bandwidth_bps: int = 0

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError("latency and jitter must not be negative")
        if self.jitter_s > self.latency_s:
            raise ValueError(
                f"jitter ({self.jitter_s * 1000:g} ms) larger than the latency "
                f"({self.latency_s * 1000:g} ms) would need negative delays"
            )
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss must be at least 0% and below 100%, got {self.loss:%}")
        if self.bandwidth_bps < 0:
            raise ValueError("bandwidth must not be negative")

    @property
    def delays(self) -> bool:
        """Whether packets need the relay (a delay, jitter or loss), not just the kernel."""
        return self.latency_s > 0 or self.jitter_s > 0 or self.loss > 0


def open_tun(name: str) -> int:
    """Attach to the existing TUN device `name` (made by `ip tuntap add`): a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        request = struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError:
        os.close(fd)
        raise
    return fd


class Relay:
    """Reads packets from a TUN fd and writes each back after its link's delay (or drops it)."""

    def __init__(self, fd: int, shape: LinkShape, rng: random.Random) -> None:
        self.fd = fd
        self.shape = shape
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        #: Per (source, destination) address pair: when its last packet is due.
        self._last_due: dict[bytes, float] = {}
        self.relayed = 0
        self.dropped = 0

    def start(self) -> None:
        """Begin reading."""
        self.loop.add_reader(self.fd, self._readable)

    def stop(self) -> None:
        """Stop reading (packets in flight are delivered by their timers, if the loop runs)."""
        self.loop.remove_reader(self.fd)

    def _delay(self) -> float:
        shape = self.shape
        if shape.jitter_s:
            return shape.latency_s + self.rng.uniform(-shape.jitter_s, shape.jitter_s)
        return shape.latency_s

    def _readable(self) -> None:
        now = self.loop.time()
        for _ in range(_READ_BATCH):
            try:
                packet = os.read(self.fd, _MAX_PACKET)
            except BlockingIOError:
                return
            if self.shape.loss and self.rng.random() < self.shape.loss:
                self.dropped += 1
                continue
            # IPv4 source and destination (bytes 12-19); anything shorter is passed on as is.
            pair = packet[12:20]
            # Strictly after the flow's previous packet: the loop's timers of one instant
            # run in no fixed order.
            due = max(now + self._delay(), self._last_due.get(pair, 0.0) + _ORDER_STEP_S)
            self._last_due[pair] = due
            self.loop.call_at(due, self._deliver, packet)

    def _deliver(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
        except OSError:  # the TUN's queue is full: a loss, as on a congested link
            self.dropped += 1
            return
        self.relayed += 1


async def _serve(args: argparse.Namespace) -> None:
    shape = LinkShape(args.latency_ms / 1000, args.jitter_ms / 1000, args.loss)
    fd = open_tun(args.tun)
    relay = Relay(fd, shape, random.Random(args.seed))  # noqa: S311 - a network model, no secret
    relay.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(
        f"{RELAY_READY_LINE} {args.tun}: latency {args.latency_ms:g} ms,"
        f" jitter {args.jitter_ms:g} ms, loss {args.loss:%}",
        flush=True,
    )
    await stopping.wait()
    relay.stop()
    os.close(fd)
    print(f"stopped: {relay.relayed} packets relayed, {relay.dropped} dropped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """The relay's command line."""
    parser = argparse.ArgumentParser(prog="python -m walruspy.devnet.links", description=__doc__)
    parser.add_argument("--tun", required=True, help="the TUN device, made beforehand")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="a probability, 0 to 1")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except (OSError, ValueError) as exc:
        print(f"links: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
