"""The text forms of a target and of moshaf attributes, parsed once for every front end.

The HTTP API (multipart fields, query parameters) and the `muaalem` command line take the same
strings; both call these functions, so `17:9` and `17+9` mean the same word range everywhere
and a bad value gets the same message (an InvalidArgument naming the field and the form).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

WORDS_FORM = "FROM:COUNT (0-based imlaey word and a count, e.g. 17:9; FROM+COUNT, the cache-key form, too)"


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit also accepts other scripts' digits and superscripts.
    return text.isascii() and text.isdigit()


def parse_int(text: str, what: str, *, signed: bool = False) -> int:
    """A decimal integer; `what` names the field in the error."""
    stripped = text.strip()
    digits = stripped[1:] if signed and stripped.startswith("-") else stripped
    if not _is_number(digits):
        raise InvalidArgument(f"{what} must be an integer, got {text!r}")
    return int(stripped)


def parse_words(text: str) -> tuple[int, int]:
    """`FROM:COUNT` (or `FROM+COUNT`) -> (start_word, word_count)."""
    for separator in (":", "+"):
        start, sep, count = text.partition(separator)
        if sep:
            break
    if not sep or not _is_number(start.strip()) or not _is_number(count.strip()):
        raise InvalidArgument(f"words must be {WORDS_FORM}, got {text!r}")
    return int(start), int(count)


def build_target(
    surah: int, ayah: int, *, words: tuple[int, int] | None = None, last_ayah: int | None = None
) -> common_pb2.Target:
    """One ayah, a word range from it, or an ayah range: the Target message (validated later by
    reference.targets, which knows the Quran's bounds)."""
    if words is not None and last_ayah is not None:
        raise InvalidArgument("give either words or last_ayah, not both")
    if words is not None:
        start, count = words
        return common_pb2.Target(
            words=common_pb2.WordRangeTarget(surah=surah, ayah=ayah, start_word=start, word_count=count)
        )
    if last_ayah is not None:
        return common_pb2.Target(
            ayah_range=common_pb2.AyahRangeTarget(surah=surah, first_ayah=ayah, last_ayah=last_ayah)
        )
    return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=surah, ayah=ayah))


def target_from_strings(
    surah: str, ayah: str, words: str | None = None, last_ayah: str | None = None
) -> common_pb2.Target:
    """The target of text fields (an HTTP form, a URL): empty `words`/`last_ayah` are absent."""
    return build_target(
        parse_int(surah, "surah"),
        parse_int(ayah, "ayah"),
        words=parse_words(words) if words and words.strip() else None,
        last_ayah=parse_int(last_ayah, "last_ayah") if last_ayah and last_ayah.strip() else None,
    )


MOSHAF_FIELDS: dict[str, Any] = {f.name: f for f in common_pb2.MoshafAttributes.DESCRIPTOR.fields}


def moshaf_values(values: Mapping[str, str]) -> dict[str, Any]:
    """MoshafAttributes field names -> text values, typed by the proto field (int32 or string).
    An unknown name is an InvalidArgument listing it."""
    unknown = sorted(set(values) - set(MOSHAF_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"unknown moshaf attributes: {', '.join(unknown)} (known: {', '.join(sorted(MOSHAF_FIELDS))})"
        )
    typed: dict[str, Any] = {}
    for name, raw in values.items():
        if MOSHAF_FIELDS[name].type == FieldDescriptor.TYPE_INT32:
            typed[name] = parse_int(raw, name, signed=True)
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
    """`NAME=VALUE` strings (the CLI's repeated --moshaf) -> {name: value}."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"moshaf attributes take NAME=VALUE, got {pair!r}")
        values[key.strip()] = value
    return values
