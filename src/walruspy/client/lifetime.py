"""How long a store keeps its blob: a number of epochs, an end epoch, or an earliest expiry time.

Theory of operation (spec/walrus-system.md 1.2, 4.1; Walrus `EpochArg` in `cli/args.rs` and
`get_epochs_ahead` in `cli/runner.rs`). A store pays for a number of epochs ahead of the current
one; people think in end epochs or in dates, so exactly one of three forms is given:

- `epochs`: that many epochs, or `"max"` for the system's `max_epochs_ahead`;
- `end_epoch`: the epoch at which the blob expires (exclusive), later than the current one;
- `earliest_expiry`: a time (seconds since the epoch, UTC) the blob must outlive. It must lie
  after the current epoch's start and after now, on the chain's clock (the one the epoch
  schedule runs on; a devnet's can run ahead of the wall clock); the epochs bought are
  `(expiry - start of the current epoch) // epoch duration + 1`, so the blob expires at the
  first epoch boundary at or after that time, on the chain's schedule.

Every form ends in at least 1 and at most `max_epochs_ahead` epochs, or an `InvalidInputError`
that says which bound and what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from walruspy.chain.api import SystemInfo
from walruspy.core.errors import InvalidInputError

__all__ = ["StoreLifetime", "parse_expiry_time"]


@dataclass(frozen=True, slots=True)
class StoreLifetime:
    """Exactly one of `epochs`, `end_epoch` and `earliest_expiry` (module doc)."""

    epochs: int | Literal["max"] | None = None
    end_epoch: int | None = None
    earliest_expiry: float | None = None

    def __post_init__(self) -> None:
        given = [self.epochs, self.end_epoch, self.earliest_expiry]
        if sum(value is not None for value in given) != 1:
            raise InvalidInputError(
                "exactly one of epochs, end epoch and earliest expiry time must be given"
            )

    def epochs_ahead(self, info: SystemInfo, now_s: float) -> int:
        """The number of epochs to buy, checked against the system's bounds."""
        if self.epochs == "max":
            return info.max_epochs_ahead
        if self.epochs is not None:
            wanted = self.epochs
        elif self.end_epoch is not None:
            if self.end_epoch <= info.epoch:
                raise InvalidInputError(
                    f"end epoch {self.end_epoch} must be later than the current epoch {info.epoch}"
                )
            wanted = self.end_epoch - info.epoch
        else:
            assert self.earliest_expiry is not None
            start = info.epoch_started_at
            if self.earliest_expiry <= max(start, now_s):
                raise InvalidInputError(
                    f"earliest expiry time {_utc(self.earliest_expiry)} must be later than the "
                    f"current epoch's start ({_utc(start)}) and than now ({_utc(now_s)})"
                )
            wanted = int(self.earliest_expiry - start) // info.epoch_duration_s + 1
        if wanted < 1:
            raise InvalidInputError(f"a store lasts at least 1 epoch, not {wanted}")
        if wanted > info.max_epochs_ahead:
            raise InvalidInputError(
                f"blobs can only be stored for up to {info.max_epochs_ahead} epochs ahead; "
                f"{wanted} epochs were requested"
            )
        return wanted


def parse_expiry_time(text: str) -> float:
    """RFC 3339 (`2024-03-20T15:00:00Z`) or the relaxed `2024-03-20 15:00:00` (UTC when no
    offset is given), as Walrus's `humantime::parse_rfc3339_weak`; seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{text[:60]!r} is not a time: give RFC 3339, as 2024-03-20T15:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
