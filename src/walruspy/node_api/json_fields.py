"""Strict reading and writing of the JSON bodies of the node REST API.

Theory of operation (spec/walrus-system.md 3.1): status, confirmation, health and error answers of
a storage node are JSON produced by serde in Walrus. This module is the one place where JSON
bytes become Python values and back, so every wire parser of `walruspy.node_api` shares the same
rules:

- the body is bounded (`MAX_JSON_BYTES`, `MAX_JSON_DEPTH`), UTF-8, and standard JSON: `NaN`,
  `Infinity` and duplicate object keys are rejected;
- each field is read with a typed accessor that names the field and what was wrong (`as_u64`,
  `as_bool`, ...), and JSON booleans never pass for integers (Python's `True == 1`);
- unknown object keys are ignored, as serde does by default, so a newer peer stays readable;
  externally tagged enums (`{"permanent": {...}}`) must have exactly one key, as serde requires.

Every failure is a `DecodeError` (the peer sent something invalid), never a `KeyError` or
`TypeError`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Mapping
from typing import TypeAlias

from walruspy.core.errors import DecodeError

#: A decoded JSON value.
JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
#: A decoded JSON object.
JsonObject: TypeAlias = dict[str, JsonValue]

#: The largest JSON body we parse. The biggest JSON answer of a node is the detailed health
#: report, about 40 bytes per shard: 1 MiB covers 25,000 shards, 25 times Walrus Mainnet's
#: 1,000. Anything larger is not a node answer and is refused before parsing.
MAX_JSON_BYTES = 1 << 20
#: Deepest nesting we parse. Walrus's deepest answer (the detailed health report) nests four
#: levels; the limit is checked before `json.loads`, whose C decoder can exhaust the C stack on
#: deep input when the interpreter's recursion limit has been raised.
MAX_JSON_DEPTH = 32
#: Longest string field we accept (messages, digests). Error messages of Walrus are one sentence.
MAX_STRING_CHARS = 16 * 1024
#: The largest unsigned integers of the Walrus types carried in JSON.
U16_MAX = (1 << 16) - 1
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1


def loads(raw: bytes | str, what: str, max_bytes: int = MAX_JSON_BYTES) -> JsonValue:
    """Parse a JSON document of at most `max_bytes`, strictly; `what` names it in errors."""
    if len(raw) > max_bytes:
        raise DecodeError(f"{what}: body of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        _check_depth(text, what)
        value: JsonValue = json.loads(
            text, object_pairs_hook=_unique_object, parse_constant=_reject_constant
        )
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{what}: body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DecodeError(f"{what}: invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError(f"{what}: JSON nested too deeply") from exc
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _check_depth(text: str, what: str) -> None:
    """Refuse nesting deeper than `MAX_JSON_DEPTH`, counting brackets outside strings.

    Every step runs in C (regex, map, accumulate, max): about 70 ms for 1 MiB of brackets.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return  # cannot be deeper: the common case costs two counts
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)
    if depth > MAX_JSON_DEPTH:
        raise DecodeError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")


def dumps(value: JsonValue) -> bytes:
    """Encode a JSON value compactly as UTF-8 bytes (no NaN or Infinity)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _unique_object(pairs: list[tuple[str, JsonValue]]) -> JsonObject:
    obj: JsonObject = {}
    for key, value in pairs:
        if key in obj:
            raise DecodeError(f"duplicate JSON object key {key[:80]!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> JsonValue:
    raise DecodeError(f"non-standard JSON constant {name}")


def _type_name(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def as_object(value: JsonValue, what: str) -> Mapping[str, JsonValue]:
    """`value` as a JSON object."""
    if not isinstance(value, dict):
        raise DecodeError(f"{what}: expected an object, got {_type_name(value)}")
    return value


def field(obj: Mapping[str, JsonValue], key: str, what: str) -> JsonValue:
    """The required field `key` of `obj`."""
    if key not in obj:
        raise DecodeError(f"{what}: missing field {key!r}")
    return obj[key]


def optional_field(obj: Mapping[str, JsonValue], key: str) -> JsonValue:
    """The optional field `key` of `obj`; a missing field reads as null (serde's `Option`)."""
    return obj.get(key)


def single_key(value: JsonValue, what: str, variants: frozenset[str]) -> tuple[str, JsonValue]:
    """Split an externally tagged serde enum `{"variant": body}` into its tag and body."""
    obj = as_object(value, what)
    if len(obj) != 1:
        raise DecodeError(f"{what}: expected exactly one of {sorted(variants)}, got {sorted(obj)}")
    ((tag, body),) = obj.items()
    if tag not in variants:
        raise DecodeError(
            f"{what}: unknown variant {tag[:80]!r}, expected one of {sorted(variants)}"
        )
    return tag, body


def as_int(value: JsonValue, what: str, max_value: int) -> int:
    """`value` as an integer in `0..=max_value` (booleans and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what}: expected an integer, got {_type_name(value)}")
    if not 0 <= value <= max_value:
        raise DecodeError(f"{what}: {value} is out of range 0..={max_value}")
    return value


def as_u32(value: JsonValue, what: str) -> int:
    """`value` as a u32 (epochs and counts)."""
    return as_int(value, what, U32_MAX)


def as_u64(value: JsonValue, what: str) -> int:
    """`value` as a u64."""
    return as_int(value, what, U64_MAX)


def as_optional_u32(value: JsonValue, what: str) -> int | None:
    """`value` as a u32 or null."""
    return None if value is None else as_u32(value, what)


def as_optional_u64(value: JsonValue, what: str) -> int | None:
    """`value` as a u64 or null."""
    return None if value is None else as_u64(value, what)


def as_bool(value: JsonValue, what: str) -> bool:
    """`value` as a boolean."""
    if not isinstance(value, bool):
        raise DecodeError(f"{what}: expected a boolean, got {_type_name(value)}")
    return value


def as_str(value: JsonValue, what: str, max_chars: int = MAX_STRING_CHARS) -> str:
    """`value` as a string of at most `max_chars` characters."""
    if not isinstance(value, str):
        raise DecodeError(f"{what}: expected a string, got {_type_name(value)}")
    if len(value) > max_chars:
        raise DecodeError(f"{what}: string of {len(value)} characters exceeds {max_chars}")
    return value


def as_list(value: JsonValue, what: str, max_items: int) -> list[JsonValue]:
    """`value` as an array of at most `max_items` items."""
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected an array, got {_type_name(value)}")
    if len(value) > max_items:
        raise DecodeError(f"{what}: {len(value)} items exceed the limit of {max_items}")
    return value


def parse_decimal_u64(text: str, what: str) -> int:
    """Parse a canonical decimal u64 ("0", "17"; no sign, spaces or leading zeros)."""
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise DecodeError(f"{what}: expected a decimal integer, got {text[:40]!r}")
    value = int(text)
    if value > U64_MAX:
        raise DecodeError(f"{what}: {text[:40]} does not fit in a u64")
    return value


def as_base64(value: JsonValue, what: str, max_bytes: int) -> bytes:
    """`value` as canonical standard base64 (padded, no stray bits) of at most `max_bytes`."""
    text = as_str(value, what, 4 * (max_bytes // 3 + 1))
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise DecodeError(f"{what}: invalid base64: {exc}") from exc
    if base64.b64encode(raw).decode() != text:
        raise DecodeError(f"{what}: non-canonical base64")
    if len(raw) > max_bytes:
        raise DecodeError(f"{what}: {len(raw)} bytes exceed the limit of {max_bytes}")
    return raw
