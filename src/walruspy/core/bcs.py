"""Binary Canonical Serialization (BCS), the byte encoding Walrus hashes, signs and sends.

Theory of operation: BCS is little-endian fixed-width integers, ULEB128 lengths for sequences
and enum variant tags, and no self-description. One value has exactly one encoding, so every
parser here is strict: a non-canonical ULEB128, a length that runs past the end, a value over
its declared bound, or bytes left over after the value all raise `DecodeError`, and no input
makes a parser raise anything else.

`Writer` builds bytes; `Reader` consumes them. Callers build the Walrus structures
(spec/encoding.md sections 5 and 6, spec/walrus-system.md 2.7) on top of these primitives.
"""

from __future__ import annotations

import builtins
import struct

from walruspy.core.errors import DecodeError

#: BCS caps sequence lengths at 2^31 - 1.
MAX_SEQUENCE_LENGTH = (1 << 31) - 1

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def uleb128(value: int) -> bytes:
    """Encode a non-negative integer as ULEB128."""
    if value < 0:
        raise ValueError(f"ULEB128 cannot encode a negative value: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Writer:
    """Appends BCS values to a growing buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        """Append a u8."""
        self._parts.append(bytes((value,)))
        return self

    def u16(self, value: int) -> Writer:
        """Append a little-endian u16."""
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        """Append a little-endian u32."""
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        """Append a little-endian u64."""
        self._parts.append(_U64.pack(value))
        return self

    def u256(self, value: int) -> Writer:
        """Append a little-endian u256."""
        self._parts.append(value.to_bytes(32, "little"))
        return self

    def bool(self, value: bool) -> Writer:
        """Append a bool as one byte, 0 or 1."""
        self._parts.append(b"\x01" if value else b"\x00")
        return self

    def uleb128(self, value: int) -> Writer:
        """Append a ULEB128 (sequence length or enum tag)."""
        self._parts.append(uleb128(value))
        return self

    def fixed(self, data: builtins.bytes) -> Writer:
        """Append bytes with no length prefix (fixed-size arrays such as digests)."""
        self._parts.append(bytes(data))
        return self

    def bytes(self, data: builtins.bytes) -> Writer:
        """Append a `Vec<u8>`: ULEB128 length, then the bytes."""
        self._parts.append(uleb128(len(data)))
        self._parts.append(bytes(data))
        return self

    def finish(self) -> builtins.bytes:
        """Return everything appended so far as one byte string."""
        return b"".join(self._parts)


class Reader:
    """Consumes BCS values from a byte string, strictly; every failure is a `DecodeError`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: builtins.bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self._pos = 0

    @property
    def remaining(self) -> int:
        """How many bytes are still unread."""
        return len(self._data) - self._pos

    def _take(self, count: int, what: str) -> builtins.bytes:
        if count > self.remaining:
            raise DecodeError(
                f"truncated input: {what} needs {count} bytes at offset {self._pos}, "
                f"only {self.remaining} left"
            )
        start = self._pos
        self._pos += count
        return bytes(self._data[start : self._pos])

    def u8(self, what: str = "u8") -> int:
        """Read a u8."""
        return self._take(1, what)[0]

    def u16(self, what: str = "u16") -> int:
        """Read a little-endian u16."""
        return int(_U16.unpack(self._take(2, what))[0])

    def u32(self, what: str = "u32") -> int:
        """Read a little-endian u32."""
        return int(_U32.unpack(self._take(4, what))[0])

    def u64(self, what: str = "u64") -> int:
        """Read a little-endian u64."""
        return int(_U64.unpack(self._take(8, what))[0])

    def u256(self, what: str = "u256") -> int:
        """Read a little-endian u256."""
        return int.from_bytes(self._take(32, what), "little")

    def bool(self, what: str = "bool") -> bool:
        """Read a bool; only 0 and 1 are valid."""
        value = self.u8(what)
        if value > 1:
            raise DecodeError(f"invalid bool for {what}: {value}")
        return value == 1

    def uleb128(self, what: str = "length", max_value: int = MAX_SEQUENCE_LENGTH) -> int:
        """Read a canonical ULEB128 no larger than `max_value`."""
        value = 0
        shift = 0
        while True:
            byte = self.u8(what)
            value |= (byte & 0x7F) << shift
            if value > max_value:
                raise DecodeError(f"{what} {value}+ exceeds the maximum {max_value}")
            if not byte & 0x80:
                if byte == 0 and shift > 0:
                    raise DecodeError(f"non-canonical ULEB128 for {what}")
                return value
            shift += 7

    def fixed(self, count: int, what: str = "bytes") -> builtins.bytes:
        """Read exactly `count` bytes with no length prefix."""
        return self._take(count, what)

    def bytes(self, what: str = "bytes", max_len: int = MAX_SEQUENCE_LENGTH) -> builtins.bytes:
        """Read a `Vec<u8>` of at most `max_len` bytes."""
        length = self.uleb128(f"length of {what}", max_len)
        return self._take(length, what)

    def finish(self, what: str = "value") -> None:
        """Check that the whole input was consumed: BCS values have no trailing bytes."""
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes after {what}")
