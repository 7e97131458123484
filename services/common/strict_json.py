"""proto3 JSON read strictly, for every JSON front end (the HTTP body, the form's `request` part,
the WebSocket's text frames).

json_format.ParseDict alone lets through what a partner must hear about: a key given twice (the
JSON decoder keeps the last), a field under both its names (`lastAyah` and `last_ayah`: one of
them silently wins), and it answers numbers out of range with protobuf's words. Here every
object is checked against its message first: unknown and repeated fields, a value that should be
an object or an array, two members of one oneof, and every integer against its range
(services.common.bounds: the domain's where there is one, e.g. surah 1..114, else the field
type's), each error naming the field by its path. What remains (enums, base64, floats) is
ParseDict's, its errors turned into InvalidArgument too.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.common import bounds
from services.common.errors import InvalidArgument

M = TypeVar("M", bound=Message)

_T = FieldDescriptor
_INTEGER_RANGES: dict[int, tuple[int, int]] = {
    _T.TYPE_INT32: (bounds.INT32_MIN, bounds.INT32_MAX),
    _T.TYPE_SINT32: (bounds.INT32_MIN, bounds.INT32_MAX),
    _T.TYPE_SFIXED32: (bounds.INT32_MIN, bounds.INT32_MAX),
    _T.TYPE_UINT32: (0, bounds.UINT32_MAX),
    _T.TYPE_FIXED32: (0, bounds.UINT32_MAX),
    _T.TYPE_INT64: (bounds.INT64_MIN, bounds.INT64_MAX),
    _T.TYPE_SINT64: (bounds.INT64_MIN, bounds.INT64_MAX),
    _T.TYPE_SFIXED64: (bounds.INT64_MIN, bounds.INT64_MAX),
    _T.TYPE_UINT64: (0, bounds.UINT64_MAX),
    _T.TYPE_FIXED64: (0, bounds.UINT64_MAX),
}

# Domain ranges of the target's numbers: (message, field) -> the range, given the integers of
# the same object read so far (an ayah's range depends on its surah).
Range = Callable[[Mapping[str, int]], tuple[int, int, str]]


def _surah(_: Mapping[str, int]) -> tuple[int, int, str]:
    return 1, bounds.SURAH_COUNT, ""


def _ayah(siblings: Mapping[str, int]) -> tuple[int, int, str]:
    surah = siblings.get("surah")
    low, high = bounds.ayah_range(surah)
    known = surah is not None and bounds.ayah_count(surah) is not None
    return low, high, f"surah {surah} has {high} ayahs" if known else ""


_DOMAIN: dict[tuple[str, str], Range] = {
    ("muaalem.v1.AyahTarget", "surah"): _surah,
    ("muaalem.v1.AyahTarget", "ayah"): _ayah,
    ("muaalem.v1.WordRangeTarget", "surah"): _surah,
    ("muaalem.v1.WordRangeTarget", "ayah"): _ayah,
    ("muaalem.v1.WordRangeTarget", "start_word"): lambda _: (
        0,
        bounds.MAX_WORDS_PER_AYAH - 1,
        f"the longest ayah has {bounds.MAX_WORDS_PER_AYAH} words",
    ),
    ("muaalem.v1.WordRangeTarget", "word_count"): lambda _: (1, bounds.MAX_WORDS_PER_TARGET, ""),
    ("muaalem.v1.AyahRangeTarget", "surah"): _surah,
    ("muaalem.v1.AyahRangeTarget", "first_ayah"): _ayah,
    ("muaalem.v1.AyahRangeTarget", "last_ayah"): _ayah,
}
# The order the fields of a target are checked in: the surah before the ayahs that depend on it.
_FIRST = ("surah",)


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers the keys it was given more than once."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated = []
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        obj.repeated = tuple(repeated)
    return obj


class _Written:
    """A JSON value shown as it was written (true, 7.5, [1]) in an error message."""

    def __init__(self, value: Any) -> None:
        self.text = json.dumps(value, default=str)

    def __str__(self) -> str:
        return self.text


def loads(data: bytes | str, what: str) -> Any:
    """JSON text -> Python values, remembering repeated keys; every failure an InvalidArgument
    (malformed text, bytes that are not UTF-8, nesting past the decoder's recursion limit,
    numbers of more digits than Python converts)."""
    try:
        return json.loads(data, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not JSON: {exc.msg} at position {exc.pos}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{what} is not JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except RecursionError as exc:
        raise InvalidArgument(f"{what} is not JSON this server reads: nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidArgument(f"{what} is not JSON this server reads: {exc}") from exc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _field_list(descriptor: Descriptor) -> str:
    return ", ".join(field.json_name for field in descriptor.fields)


def _object_error(path: str, descriptor: Descriptor, value: Any) -> InvalidArgument:
    return InvalidArgument(
        f"{path} must be a JSON object (a {descriptor.name} with the fields {_field_list(descriptor)}), "
        f"got {_kind(value)}"
    )


def _integer(path: str, field: FieldDescriptor, value: Any, siblings: dict[str, int]) -> None:
    owner = cast(Descriptor, field.containing_type)
    domain = _DOMAIN.get((owner.full_name, field.name))
    low, high, why = domain(siblings) if domain else (*_INTEGER_RANGES[field.type], "")
    written: object = value if isinstance(value, str) else _Written(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bounds.out_of_range(path, low, high, written, why)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    else:
        # proto3 JSON also takes an integer as a string ("7"; "1e2" as ParseDict reads it).
        try:
            parsed = float(value) if len(value) <= 32 else None
        except ValueError:
            parsed = None
        number = int(parsed) if parsed is not None and parsed.is_integer() else None
    if number is None or not low <= number <= high:
        raise bounds.out_of_range(path, low, high, written, why)
    siblings[field.name] = number


def _value(path: str, field: FieldDescriptor, value: Any, siblings: dict[str, int]) -> None:
    if value is None:
        return  # proto3 JSON: null is the field's default
    if field.type == _T.TYPE_MESSAGE:
        _message(path, cast(Descriptor, field.message_type), value)
    elif field.type in _INTEGER_RANGES:
        _integer(path, field, value, siblings)


def _map(path: str, field: FieldDescriptor, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{path} must be a JSON object (a map), got {_kind(value)}")
    _repeated_keys(path, value)
    value_field = cast(Descriptor, field.message_type).fields_by_name["value"]
    for key, item in value.items():
        _value(f"{path}[{key!r}]", value_field, item, {})


def _repeated_keys(path: str, value: Any) -> None:
    repeated = getattr(value, "repeated", ())
    if repeated:
        where = f" in {path}" if path else ""
        raise InvalidArgument(f"field {repeated[0]!r} is given twice{where}; give each field once")


def _message(path: str, descriptor: Descriptor, value: Any) -> None:
    if descriptor.full_name.startswith("google.protobuf."):
        return  # well-known types have their own JSON forms: ParseDict's to check
    if not isinstance(value, dict):
        raise _object_error(path or descriptor.name, descriptor, value)
    _repeated_keys(path, value)
    by_name = {f.json_name: f for f in descriptor.fields} | {f.name: f for f in descriptor.fields}
    fields: dict[str, tuple[str, FieldDescriptor]] = {}
    for key in value:
        field = by_name.get(key)
        if field is None:
            where = f"{path}.{key}" if path else key
            close = difflib.get_close_matches(key, list(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgument(f"unknown field {where!r} ({descriptor.name} has {_field_list(descriptor)}){hint}")
        if field.name in fields:
            raise InvalidArgument(
                f"field {field.json_name!r} is given twice in {path or descriptor.name} "
                f"(as {fields[field.name][0]!r} and {key!r}); give it once"
            )
        fields[field.name] = (key, field)
    for oneof in descriptor.oneofs:
        if oneof.name.startswith("_"):
            continue  # the synthetic oneof of a proto3 `optional` field
        present = [key for key, field in fields.values() if field.containing_oneof is oneof and value[key] is not None]
        if len(present) > 1:
            choices = ", ".join(f.json_name for f in oneof.fields)
            raise InvalidArgument(f"{path or descriptor.name} takes one of {choices}; got {' and '.join(present)}")
    siblings: dict[str, int] = {}
    ordered = sorted(fields.values(), key=lambda item: item[1].name not in _FIRST)
    for key, field in ordered:
        item = value[key]
        where = f"{path}.{key}" if path else key
        if field.type == _T.TYPE_MESSAGE and cast(Descriptor, field.message_type).GetOptions().map_entry:
            if item is not None:
                _map(where, field, item)
        elif field.is_repeated:
            if item is None:
                continue
            if not isinstance(item, list):
                raise InvalidArgument(f"{where} must be a JSON array, got {_kind(item)}")
            for index, element in enumerate(item):
                _value(f"{where}[{index}]", field, element, {})
        else:
            _value(where, field, item, siblings)


def check(payload: Any, descriptor: Descriptor, path: str = "") -> None:
    """Raises InvalidArgument for the first thing in `payload` that `descriptor` does not take."""
    _message(path, descriptor, payload)


def parse(payload: Any, message: M, what: str) -> M:
    """Checks `payload` against the message, then fills it (ParseDict); every refusal an
    InvalidArgument that starts with `what` and names the field."""
    try:
        check(payload, cast(Descriptor, message.DESCRIPTOR))
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc.message}") from None
    try:
        json_format.ParseDict(payload, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # ParseDict's own checks are ParseErrors; anything else is still the payload's fault.
        raise InvalidArgument(f"{what}: {type(exc).__name__}: {exc}") from exc
    return message
