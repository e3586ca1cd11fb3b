"""`Trace`: what a simulation did, one line per event, the same bytes for the same seed.

Theory of operation (issue #16: "the same seed gives the same trace, byte for byte"). A line is
`<virtual time> <text>`, the time in seconds since the run began, to the microsecond. Operations,
faults and invariant checks are written as they happen. The network's own events (a
`walruspy.sim.transport.TraceEvent` per connection and per write) are many, thousands per
operation, so they are summarized: before the next line, one `net` line counts them by kind
since the last one and gives the bytes delivered, and a running BLAKE2b over every event's
fields (its time, kind, link, connection and size) is printed with it, so two traces that agree
line by line agree on every network event too. With `network_detail` every event gets its own
line as well.

Nothing that varies between runs of one seed may reach a line: no real time, no path of the
temporary directory, no object identity; durations measured by the wall clock (a store's
`phase_s`) are left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from walruspy.clock import now
from walruspy.sim.transport import TraceEvent, TraceKind

__all__ = ["Trace"]

#: Hex digits of the running network digest shown per `net` line: enough to tell runs apart.
_DIGEST_HEX = 16


class Trace:
    """The lines of one run (kept, and passed to `sink` as they are made)."""

    def __init__(
        self, sink: Callable[[str], None] | None = None, *, network_detail: bool = False
    ) -> None:
        self.lines: list[str] = []
        self._sink = sink
        self._network_detail = network_detail
        self._start_s: float | None = None
        self._digest = hashlib.blake2b(digest_size=16)
        self._counts: dict[TraceKind, int] = {}
        self._bytes = 0
        self.network_events = 0

    def start(self) -> None:
        """Make the current loop time the trace's zero."""
        self._start_s = now()

    def elapsed_s(self) -> float:
        """Virtual seconds since `start`."""
        return now() - (self._start_s if self._start_s is not None else 0.0)

    def _time(self) -> str:
        return f"{self.elapsed_s():12.6f}"

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if self._sink is not None:
            self._sink(line)

    def network(self, event: TraceEvent) -> None:
        """Take one of the network's events (the `SimNetwork(trace=)` hook)."""
        start = self._start_s if self._start_s is not None else 0.0
        fields = (
            f"{event.time_s - start:.6f} {event.kind.value} {event.source}>{event.destination}"
            f" #{event.connection} {event.size_bytes}"
        )
        self._digest.update(fields.encode() + b"\n")
        self._counts[event.kind] = self._counts.get(event.kind, 0) + 1
        if event.kind is TraceKind.DELIVER:
            self._bytes += event.size_bytes
        self.network_events += 1
        if self._network_detail:
            self._emit(f"{self._time()} net {fields}")

    def log(self, text: str) -> None:
        """Write one line (after the summary of the network's events since the last one)."""
        self._flush_network()
        self._emit(f"{self._time()} {text}")

    def _flush_network(self) -> None:
        if not self._counts:
            return
        kinds = [kind for kind in TraceKind if kind in self._counts]  # in TraceKind's order
        counts = " ".join(f"{kind.value}={self._counts[kind]}" for kind in kinds)
        digest = self._digest.hexdigest()[:_DIGEST_HEX]
        self._emit(f"{self._time()} net {counts} bytes={self._bytes} digest={digest}")
        self._counts.clear()
        self._bytes = 0

    def text(self) -> str:
        """The whole trace, one line each, with a final newline."""
        self._flush_network()
        return "".join(line + "\n" for line in self.lines)
