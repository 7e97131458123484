"""The text forms of a target and of moshaf attributes, parsed once for every front end.

The HTTP API (multipart fields, the path, query parameters) and the `muaalem` command line take
the same strings; both call these functions, so `17:9` and `17+9` mean the same word range
everywhere and a bad value gets the same message: an InvalidArgument naming the field and its
valid range (services.common.bounds), raised before any number reaches protobuf.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from services.common import bounds
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

WORDS_FORM = "FROM:COUNT (0-based imlaey word and a count, e.g. 17:9; FROM+COUNT, the cache-key form, too)"
WORDS_RANGES = f"FROM in 0..{bounds.MAX_WORDS_PER_AYAH - 1} and COUNT in 1..{bounds.MAX_WORDS_PER_TARGET}"

# ASCII digits only: str.isdigit and \d also accept other scripts' digits and superscripts.
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Longer digit strings are out of every range here; int() is not even tried on them (Python
# refuses to convert more than 4,300 digits, with a ValueError that is no caller's fault).
_MAX_DIGITS = 24


def _integer(text: str) -> int | None:
    stripped = text.strip()
    if len(stripped) > _MAX_DIGITS or not _INTEGER.fullmatch(stripped):
        return None
    return int(stripped)


def parse_int(text: str, what: str, low: int = bounds.INT32_MIN, high: int = bounds.INT32_MAX, why: str = "") -> int:
    """A decimal integer in low..high; `what` names the field in the error, which says the range
    whether the text is no integer, a negative one or one too large."""
    value = _integer(text)
    if value is None or not low <= value <= high:
        raise bounds.out_of_range(what, low, high, text, why)
    return value


def parse_words(text: str) -> tuple[int, int]:
    """`FROM:COUNT` (or `FROM+COUNT`) -> (start_word, word_count), each in its range."""
    for separator in (":", "+"):
        start_text, sep, count_text = text.partition(separator)
        if sep:
            break
    # "+" separates; a sign "-" parses, so that a negative number gets the range in its message.
    start = _integer(start_text) if sep and "+" not in start_text else None
    count = _integer(count_text) if sep and "+" not in count_text else None
    if start is None or count is None:
        raise InvalidArgument(f"words must be {WORDS_FORM}, got {bounds.shown(text)}")
    if not (0 <= start < bounds.MAX_WORDS_PER_AYAH and 1 <= count <= bounds.MAX_WORDS_PER_TARGET):
        raise InvalidArgument(f"words must be FROM:COUNT with {WORDS_RANGES}, got {bounds.shown(text)}")
    return start, count


def _ayah_why(surah: int) -> str:
    return f"surah {surah} has {bounds.ayah_count(surah)} ayahs"


def build_target(
    surah: int, ayah: int, *, words: tuple[int, int] | None = None, last_ayah: int | None = None
) -> common_pb2.Target:
    """One ayah, a word range from it, or an ayah range: the Target message, every number
    checked against the bounds known without the Quran text (the gateway's reference code
    checks the words of the ayah itself)."""
    if words is not None and last_ayah is not None:
        raise InvalidArgument("give either words or last_ayah, not both")
    bounds.check("surah", surah, 1, bounds.SURAH_COUNT)
    bounds.check("ayah", ayah, *bounds.ayah_range(surah), _ayah_why(surah))
    if words is not None:
        start, count = words
        if not (0 <= start < bounds.MAX_WORDS_PER_AYAH and 1 <= count <= bounds.MAX_WORDS_PER_TARGET):
            raise InvalidArgument(f"words must be FROM:COUNT with {WORDS_RANGES}, got {start}:{count}")
        return common_pb2.Target(
            words=common_pb2.WordRangeTarget(surah=surah, ayah=ayah, start_word=start, word_count=count)
        )
    if last_ayah is not None:
        bounds.check("last_ayah", last_ayah, *bounds.ayah_range(surah), _ayah_why(surah))
        return common_pb2.Target(
            ayah_range=common_pb2.AyahRangeTarget(surah=surah, first_ayah=ayah, last_ayah=last_ayah)
        )
    return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=surah, ayah=ayah))


def target_from_strings(
    surah: str, ayah: str, words: str | None = None, last_ayah: str | None = None
) -> common_pb2.Target:
    """The target of text fields (an HTTP form, a URL): empty `words`/`last_ayah` are absent
    (an HTML form sends its empty inputs)."""
    surah_number = parse_int(surah, "surah", 1, bounds.SURAH_COUNT)
    why = _ayah_why(surah_number)
    return build_target(
        surah_number,
        parse_int(ayah, "ayah", *bounds.ayah_range(surah_number), why),
        words=parse_words(words) if words and words.strip() else None,
        last_ayah=parse_int(last_ayah, "last_ayah", *bounds.ayah_range(surah_number), why)
        if last_ayah and last_ayah.strip()
        else None,
    )


MOSHAF_FIELDS: dict[str, Any] = {f.name: f for f in common_pb2.MoshafAttributes.DESCRIPTOR.fields}


def moshaf_values(values: Mapping[str, str]) -> dict[str, Any]:
    """MoshafAttributes field names -> text values, typed by the proto field (int32 or string).
    An unknown name is an InvalidArgument listing it; an int32 outside int32 is one too (the
    gateway then names the values quran-transcript accepts)."""
    unknown = sorted(set(values) - set(MOSHAF_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown moshaf attributes: {', '.join(unknown)} (known: {', '.join(sorted(MOSHAF_FIELDS))})"
        )
    typed: dict[str, Any] = {}
    for name, raw in values.items():
        if MOSHAF_FIELDS[name].type == FieldDescriptor.TYPE_INT32:
            typed[name] = parse_int(raw, name)
        else:
            typed[name] = raw.strip()
    return typed


def moshaf_from_strings(values: Mapping[str, str]) -> common_pb2.MoshafAttributes | None:
    """The MoshafAttributes of text values, or None when there are none."""
    typed = moshaf_values(values)
    if not typed:
        return None
    try:
        return common_pb2.MoshafAttributes(**typed)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"moshaf attributes: {exc}") from exc


def name_value_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` strings (the CLI's repeated --moshaf) -> {name: value}; a name given twice
    is an error, not the last one silently winning."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"moshaf attributes take NAME=VALUE, got {bounds.shown(pair)}")
        if key.strip() in values:
            raise InvalidArgument(f"moshaf attribute {key.strip()} is given twice; give it once")
        values[key.strip()] = value
    return values
