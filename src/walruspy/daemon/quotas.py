"""Per-client quotas on the publisher's uploads: requests and bytes per minute, then 429.

Theory of operation (spec/walrus-system.md 4.3; Walrus has no quotas of its own: its operator
guide leaves them to a gateway, and its load shedding answers 429 when the publisher is full).
A publisher pays for every store from its wallet, so one client must not spend it all: each
client address gets two token buckets, `requests_per_minute` requests and `bytes_per_minute`
body bytes, each full after a minute without uploads and refilled evenly (a limit of R per
minute gives back one request every 60/R s). A request needs one request token; its body needs
its `Content-Length` in byte tokens before any of it is read, and a body without one is cut off
as soon as it outgrows what the client had. The bytes are charged once read, so concurrent
uploads may overdraw the bucket; the debt is then waited off. A refusal is 429 QUOTA_EXCEEDED in
Walrus's JSON error shape with `Retry-After`, the whole seconds until the request could pass
(a body larger than a minute's bytes never can: its `Retry-After` is the full minute).

Clients are keyed as the connection guard keys them (`walruspy.node_api.connection_guard.
address_key`): an IPv4 address, an IPv6 /64; loopback is exempt unless `--limit-loopback` (behind
a reverse proxy every client looks local: cap there). Quotas are checked before the JWT, so
forged tokens count too. At most `MAX_CLIENTS` buckets are kept: full ones are dropped first
(they are what a new bucket would be), then the least recently used.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from walruspy.daemon.errors import DaemonApiError
from walruspy.logs import get_logger

__all__ = ["MAX_CLIENTS", "NO_QUOTAS", "ClientQuotas", "QuotaLimits", "UploadBytes"]

log = get_logger("walruspy.daemon.quotas")

#: Seconds in which a bucket refills whole.
WINDOW_S: Final = 60.0
#: Clients tracked at once: two floats and a key each, some MB at most; beyond it the idle
#: ones (full buckets) go first, so only a flood of distinct addresses resets anyone's budget.
MAX_CLIENTS: Final = 100_000


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """The quotas of one client (None: that quota is off)."""

    #: `--publisher-requests-per-minute`: uploads per client per minute.
    requests_per_minute: int | None = None
    #: `--publisher-bytes-per-minute`: upload body bytes per client per minute.
    bytes_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "bytes_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None: off), got {value}")

    @property
    def enabled(self) -> bool:
        """Whether any quota is on."""
        return self.requests_per_minute is not None or self.bytes_per_minute is not None


#: Quotas off (the default: Walrus has none).
NO_QUOTAS: Final = QuotaLimits()


class _Bucket:
    """Tokens refilled at `capacity` per `WINDOW_S`, possibly below zero (a debt)."""

    __slots__ = ("at", "capacity", "tokens")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.at = now

    def refill(self, now: float) -> float:
        elapsed = max(0.0, now - self.at)  # a clock stepped back refills nothing
        self.tokens = min(self.capacity, self.tokens + elapsed * self.capacity / WINDOW_S)
        self.at = now
        return self.tokens

    def wait_s(self, needed: float) -> int:
        """Whole seconds until `needed` tokens are there (a minute if never)."""
        if needed > self.capacity:
            return int(WINDOW_S)
        return max(1, math.ceil((needed - self.tokens) * WINDOW_S / self.capacity))


class _Client:
    __slots__ = ("bytes", "requests")

    def __init__(self, limits: QuotaLimits, now: float) -> None:
        rpm, bpm = limits.requests_per_minute, limits.bytes_per_minute
        self.requests = _Bucket(rpm, now) if rpm is not None else None
        self.bytes = _Bucket(bpm, now) if bpm is not None else None

    def full(self, now: float) -> bool:
        return all(b is None or b.refill(now) >= b.capacity for b in (self.requests, self.bytes))


def _refused(what: str, retry_after_s: int) -> DaemonApiError:
    return DaemonApiError(
        429,
        "QUOTA_EXCEEDED",
        f"this client has used its quota of {what}; retry in {retry_after_s} s",
        headers={"Retry-After": str(retry_after_s)},
        metadata={"retryAfterSeconds": retry_after_s},
    )


class UploadBytes:
    """One upload's body against its client's byte bucket (a `publisher.BodyCheck`)."""

    def __init__(self, bucket: _Bucket, clock: Callable[[], float], per_minute: int) -> None:
        self._bucket = bucket
        self._clock = clock
        self._per_minute = per_minute
        self._charged = 0

    def declared(self, size: int) -> None:
        """Refuse a `Content-Length` the client's bucket does not hold now."""
        if size > self._bucket.refill(self._clock()):
            raise _refused(f"{self._per_minute} bytes per minute", self._bucket.wait_s(size))

    def reading(self, size: int) -> None:
        """Charge the bytes as they arrive; cut the body once it outgrows the bucket."""
        self._bucket.refill(self._clock())
        self._bucket.tokens -= size - self._charged
        self._charged = size
        if self._bucket.tokens < 0:
            raise _refused(
                f"{self._per_minute} bytes per minute", self._bucket.wait_s(self._charged)
            )

    def finished(self, size: int) -> None:
        """Charge what was not charged while reading."""
        if size > self._charged:
            self._bucket.refill(self._clock())
            self._bucket.tokens -= size - self._charged
            self._charged = size


class ClientQuotas:
    """The buckets of every client of one publisher."""

    def __init__(self, limits: QuotaLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def admit(self, key: str | None) -> UploadBytes | None:
        """Take one request of `key`'s quota or raise 429; the check of its body's bytes.

        `key` None (an exempt client) or no quota: nothing is counted."""
        if key is None or not self.limits.enabled:
            return None
        now = self._clock()
        client = self._client(key, now)
        if client.requests is not None:
            if client.requests.refill(now) < 1:
                log.info("upload refused: request quota", client=key)
                raise _refused(
                    f"{self.limits.requests_per_minute} uploads per minute",
                    client.requests.wait_s(1),
                )
            client.requests.tokens -= 1
        if client.bytes is None or self.limits.bytes_per_minute is None:
            return None
        if client.bytes.refill(now) <= 0:
            log.info("upload refused: byte quota", client=key)
            raise _refused(
                f"{self.limits.bytes_per_minute} bytes per minute", client.bytes.wait_s(1)
            )
        return UploadBytes(client.bytes, self._clock, self.limits.bytes_per_minute)

    def _client(self, key: str, now: float) -> _Client:
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        if len(self._clients) >= MAX_CLIENTS:
            self._evict(now)
        client = self._clients[key] = _Client(self.limits, now)
        return client

    def _evict(self, now: float) -> None:
        idle = [key for key, client in self._clients.items() if client.full(now)]
        for key in idle:
            del self._clients[key]
        while len(self._clients) >= MAX_CLIENTS:
            self._clients.popitem(last=False)
