"""Separate hosts on one machine for a `--hosts` devnet: network namespaces, links, addresses.

Theory of operation (issue "across hosts"; spec/walrus-system.md 4.2). `walruspy devnet up
--hosts` gives the chain, the daemon, the client and every storage node a network namespace of
its own: its own loopback, one interface `eth0` with its own address, and a default route to
a router. The router is one more namespace holding the other end of every host's link (a veth
pair) and forwarding between them; it has no other interface, and no namespace of the devnet
has a link to the machine's own, so no packet of the devnet can leave it, nor reach it from the
machine's other processes. Commands reach the network from inside a host (`enter_netns`,
`walruspy devnet exec`); every process of the devnet is started in its host
(`netns_command`).

    host "chain"  10.213.0.2 ─eth0══h0─┐
    host "client" 10.213.1.2 ─eth0══h1─┤ router: forwards, shapes, delays
    host "node0"  10.213.3.2 ─eth0══h3─┘ (TUN → `walruspy.devnet.links`)

Host K has 10.213.K.2/24 on its link and the router 10.213.K.1. Names are `PREFIX-HOST`,
PREFIX made from the devnet's directory, so two devnets never share a namespace.

Links are shaped as `LinkShape` says. Bandwidth is `tc tbf` on both ends of each link (a host's
upload on its `eth0`, its download on the router's side). Latency, jitter and loss come from
netem where the kernel has it (on each host's `eth0`, once per direction); where it has not
(`sch_netem` is often a module nobody loaded), the router routes every packet that arrives on
a host's link into a TUN device, where the delaying relay (`walruspy.devnet.links`, a devnet
process like the others) holds it for its delay and writes it back. Either way a packet from
host A to host B is delayed once, so a round trip costs twice the latency.

Everything here needs CAP_NET_ADMIN (root) and iproute2's `ip`; `check_hosts_supported` says
clearly when either is missing.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from walruspy.devnet.errors import DevnetError
from walruspy.devnet.links import LinkShape

__all__ = [
    "HOST_CHAIN",
    "HOST_CLIENT",
    "HOST_DAEMON",
    "HostsNetwork",
    "LinkShape",
    "check_hosts_supported",
    "enter_netns",
    "netem_available",
    "node_host",
    "parse_bandwidth",
    "parse_delay_s",
    "parse_loss",
]

HOST_CHAIN: Final = "chain"
HOST_CLIENT: Final = "client"
HOST_DAEMON: Final = "daemon"
#: Where the named namespaces of `ip netns` live.
NETNS_DIR: Final = Path("/run/netns")
#: The TUN device of the router, read by the delaying relay.
TUN_DEVICE: Final = "tun0"
#: Routing table of the router holding only the route into the TUN.
_TUN_TABLE: Final = "100"
#: MTU of every link and the TUN: jumbo frames keep the relay's packet rate (one Python call
#: per packet) low at the devnet's bandwidths; TCP segments to fit, as on any link.
LINK_MTU: Final = 9000
#: tbf's queue bound: at most this much delay queued at a shaped link (a router's buffer).
_TBF_LATENCY: Final = "100ms"
#: First two octets of every devnet host address; host K is 10.213.K.2.
_SUBNET: Final = "10.213"
MAX_HOSTS: Final = 254
#: Seconds an `ip` or `tc` call may take.
_IP_TIMEOUT_S: Final = 30.0
_CLONE_NEWNET: Final = 0x40000000


def node_host(index: int) -> str:
    """The host name of storage node `index`."""
    return f"node{index}"


def check_hosts_supported() -> None:
    """Fail with what is missing if this process cannot make network namespaces."""
    if shutil.which("ip") is None:
        raise DevnetError("--hosts needs iproute2's `ip` command, which is not installed")
    if os.geteuid() != 0:
        raise DevnetError(
            "--hosts makes network namespaces, which needs root (CAP_NET_ADMIN): run it as "
            "root, or leave --hosts out for a devnet on this machine's loopback"
        )


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one `ip`/`tc` command; unless told not to check, a failure names the command and
    what it printed."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed programs, our own arguments
            args, capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"`{' '.join(args)}` failed: {exc}") from exc
    if check and done.returncode != 0:
        raise DevnetError(f"`{' '.join(args)}` failed: {done.stderr.strip() or done.stdout}")
    return done


def _in(netns: str, *args: str) -> None:
    """Run a command inside `netns`."""
    _run("ip", "netns", "exec", netns, *args)


def netem_available() -> bool:
    """Whether the kernel has the netem qdisc (tried on a throwaway namespace's loopback)."""
    probe = f"wpy-netem-probe-{os.getpid()}"
    _run("ip", "netns", "add", probe)
    try:
        added = _run(
            "ip",
            "netns",
            "exec",
            probe,
            "tc",
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "netem",
            check=False,
        )
        return added.returncode == 0
    finally:
        _run("ip", "netns", "del", probe)


def enter_netns(netns: str) -> None:
    """Move the calling thread into the named network namespace (threads it starts follow).

    Sockets opened afterwards live there; call it before an event loop or thread pool starts.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    except OSError as exc:
        raise DevnetError(f"no network namespace {netns}: {exc.strerror}") from exc
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise DevnetError(f"cannot enter network namespace {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def parse_bandwidth(text: str) -> int:
    """`100mbit`, `1gbit`, `500kbit` or bits per second: bits per second (0: unshaped)."""
    units = {"gbit": 10**9, "mbit": 10**6, "kbit": 10**3, "bit": 1}
    lowered = text.strip().lower()
    unit = next((unit for unit in units if lowered.endswith(unit)), "bit")
    number, scale = lowered.removesuffix(unit), units[unit]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"bandwidth {text!r}: expected a rate such as 100mbit or 1gbit") from None
    if value < 0:
        raise ValueError(f"bandwidth {text!r} is negative")
    return round(value * scale)


def parse_delay_s(text: str) -> float:
    """`80ms`, `0.08s` or milliseconds: seconds."""
    lowered = text.strip().lower()
    scale = 1.0 if lowered.endswith("s") and not lowered.endswith("ms") else 0.001
    try:
        value = float(lowered.removesuffix("ms").removesuffix("s"))
    except ValueError:
        raise ValueError(f"delay {text!r}: expected a time such as 80ms or 0.08s") from None
    if value < 0:
        raise ValueError(f"delay {text!r} is negative")
    return value * scale


def parse_loss(text: str) -> float:
    """`0.5%` or a fraction: the probability of losing one packet."""
    stripped = text.strip()
    try:
        value = float(stripped.removesuffix("%"))
    except ValueError:
        raise ValueError(f"loss {text!r}: expected a percentage such as 0.5%") from None
    return value / 100 if stripped.endswith("%") else value


@dataclass
class HostsNetwork:
    """The hosts of one devnet: their names and addresses, the links' shape, the namespaces.

    `hosts` maps each host name to its index K (address 10.213.K.2) in creation order; an
    address is allocated (`allocate`) before its namespace exists, since a node's address is
    registered on chain before it runs.
    """

    prefix: str
    shape: LinkShape
    hosts: dict[str, int] = field(default_factory=dict)
    #: Whether latency, jitter and loss are netem's (else the relay's, if the shape needs it).
    netem: bool = False

    @classmethod
    def for_directory(cls, directory: Path, shape: LinkShape) -> HostsNetwork:
        """A network named after the devnet's directory (unique per directory)."""
        digest = hashlib.blake2b(str(directory.resolve()).encode(), digest_size=4).hexdigest()
        return cls(prefix=f"wpy{digest}", shape=shape)

    # --- names and addresses ---------------------------------------------------------------

    @property
    def router(self) -> str:
        """The router's namespace."""
        return f"{self.prefix}-links"

    def netns(self, host: str) -> str:
        """The namespace of `host`."""
        if host not in self.hosts:
            raise DevnetError(f"the devnet has no host {host!r} (hosts: {', '.join(self.hosts)})")
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        """The address of `host` on its link."""
        self.netns(host)
        return f"{_SUBNET}.{self.hosts[host]}.2"

    def allocate(self, host: str) -> str:
        """Give `host` the next address (once); its address."""
        if host not in self.hosts:
            taken = set(self.hosts.values())
            free = next((k for k in range(MAX_HOSTS) if k not in taken), None)
            if free is None:
                raise DevnetError(f"a devnet has at most {MAX_HOSTS} hosts")
            self.hosts[host] = free
        return self.address(host)

    def name_of(self, address: str) -> str:
        """The host whose address is `address`."""
        for name in self.hosts:
            if self.address(name) == address:
                return name
        raise DevnetError(f"no host of the devnet has the address {address}")

    def rename(self, old: str, new: str) -> None:
        """Give host `old`'s address to the name `new` (before its namespace exists)."""
        self.hosts = {(new if name == old else name): k for name, k in self.hosts.items()}

    @property
    def relayed(self) -> bool:
        """Whether packets go through the delaying relay."""
        return self.shape.delays and not self.netem

    # --- namespaces ---------------------------------------------------------------------------

    def existing(self) -> list[str]:
        """The namespaces of this network that exist now."""
        if not NETNS_DIR.is_dir():
            return []
        return sorted(
            entry.name for entry in NETNS_DIR.iterdir() if entry.name.startswith(self.prefix + "-")
        )

    def create_router(self) -> None:
        """The router namespace (and its TUN if the relay is needed), replacing a stale one."""
        self.destroy()
        self.netem = self.shape.delays and netem_available()
        router = self.router
        _run("ip", "netns", "add", router)
        _run("ip", "-n", router, "link", "set", "lo", "up")
        _in(
            router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        )
        if self.relayed:
            _run("ip", "-n", router, "tuntap", "add", "dev", TUN_DEVICE, "mode", "tun")
            _run("ip", "-n", router, "link", "set", TUN_DEVICE, "mtu", str(LINK_MTU), "up")
            # Whatever arrives from a host's link goes into the TUN; what the relay writes
            # back comes from the TUN and is routed out by the main table.
            _run(
                "ip", "-n", router, "route", "add", "default", "dev", TUN_DEVICE,
                "table", _TUN_TABLE,
            )  # fmt: skip
            _run(
                "ip", "-n", router, "rule", "add", "not", "iif", TUN_DEVICE,
                "lookup", _TUN_TABLE, "pref", "100",
            )  # fmt: skip

    def create_host(self, host: str) -> None:
        """The namespace of `host` (allocated beforehand), linked to the router and shaped."""
        netns, k = self.netns(host), self.hosts[host]
        router_side = f"h{k}"
        _run("ip", "netns", "add", netns)
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        _run(
            "ip", "-n", self.router, "link", "add", "name", router_side, "mtu", str(LINK_MTU),
            "type", "veth", "peer", "name", "eth0", "mtu", str(LINK_MTU), "netns", netns,
        )  # fmt: skip
        _run("ip", "-n", self.router, "addr", "add", f"{_SUBNET}.{k}.1/24", "dev", router_side)
        _run("ip", "-n", self.router, "link", "set", router_side, "up")
        _run("ip", "-n", netns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")
        _run("ip", "-n", netns, "route", "add", "default", "via", f"{_SUBNET}.{k}.1")
        self._shape(netns, "eth0", upload=True)
        self._shape(self.router, router_side, upload=False)

    def _shape(self, netns: str, device: str, *, upload: bool) -> None:
        shape = self.shape
        rate = [] if not shape.bandwidth_bps else ["rate", f"{shape.bandwidth_bps}bit"]
        if upload and self.netem:
            # netem on the sending side only: one delay per packet and direction.
            delay = ["delay", f"{shape.latency_s * 1000:g}ms"]
            if shape.jitter_s:
                delay.append(f"{shape.jitter_s * 1000:g}ms")
            loss = ["loss", "random", f"{shape.loss * 100:g}%"] if shape.loss else []
            _in(netns, "tc", "qdisc", "add", "dev", device, "root", "netem", *delay, *loss, *rate)
        elif rate:
            # A burst of at least one MTU-sized packet, and about a millisecond of the rate.
            burst = max(2 * LINK_MTU, shape.bandwidth_bps // 8 // 1000)
            _in(
                netns, "tc", "qdisc", "add", "dev", device, "root", "tbf", *rate,
                "burst", str(burst), "latency", _TBF_LATENCY,
            )  # fmt: skip

    def create(self, hosts: Sequence[str] | None = None) -> None:
        """The router and the namespaces of `hosts` (default: every allocated host)."""
        self.create_router()
        for host in self.hosts if hosts is None else hosts:
            self.create_host(host)

    def destroy(self) -> list[str]:
        """Delete every namespace of this network (their links go with them); their names."""
        gone = self.existing()
        for netns in gone:
            _run("ip", "netns", "del", netns)
        return gone

    # --- the state file -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The state file's record of the network."""
        shape = self.shape
        return {
            "prefix": self.prefix,
            "latency_s": shape.latency_s,
            "jitter_s": shape.jitter_s,
            "loss": shape.loss,
            "bandwidth_bps": shape.bandwidth_bps,
            "hosts": dict(self.hosts),
            "netem": self.netem,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostsNetwork:
        """Parse the state file's record."""
        shape = LinkShape(
            float(data["latency_s"]),
            float(data["jitter_s"]),
            float(data["loss"]),
            int(data["bandwidth_bps"]),
        )
        hosts = {str(name): int(k) for name, k in dict(data["hosts"]).items()}
        return cls(str(data["prefix"]), shape, hosts, bool(data.get("netem", False)))
