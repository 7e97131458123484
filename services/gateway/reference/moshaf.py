"""MoshafAttributes between the proto (every field optional) and quran-transcript's model.

The valid values are read from the package's own model, so the API accepts exactly what the
phonetizer accepts; defaults are the package's, plus documented choices for the five fields
the package leaves required.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any, get_args

from pydantic import ValidationError
from quran_transcript import MoshafAttributes

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

# The package requires these; the domain notes give them as the defaults (Hafs, murattal).
REQUIRED_DEFAULTS: dict[str, Any] = {
    "rewaya": "hafs",
    "madd_monfasel_len": 4,
    "madd_mottasel_len": 4,
    "madd_mottasel_waqf": 4,
    "madd_aared_len": 4,
}


def _allowed(field: str) -> tuple[Any, ...]:
    annotation = MoshafAttributes.model_fields[field].annotation
    values: list[Any] = []
    for arg in get_args(annotation) or (annotation,):
        values.extend(get_args(arg) or ([] if arg is type(None) else [arg]))
    return tuple(values)


def _fields() -> list[str]:
    return [f.name for f in common_pb2.MoshafAttributes.DESCRIPTOR.fields]


def to_dict(moshaf: common_pb2.MoshafAttributes | None) -> dict[str, Any]:
    """The set fields over the defaults, validated; raises InvalidArgument naming valid values."""
    values = dict(REQUIRED_DEFAULTS)
    if moshaf is not None:
        for name in _fields():
            if moshaf.HasField(name):
                values[name] = getattr(moshaf, name)
    try:
        model = MoshafAttributes(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:
                # A rule across fields (the package's own check words it in Arabic only).
                problems.append(_contradiction(values, error["msg"]))
                continue
            field = str(error["loc"][0])
            allowed = ", ".join(map(str, _allowed(field))) if field in MoshafAttributes.model_fields else ""
            problems.append(
                f"moshaf.{field}={error.get('input')!r} is not valid"
                + (f" (valid: {allowed})" if allowed else f": {error['msg']}")
            )
        raise InvalidArgument("; ".join(problems)) from exc
    return model.model_dump()


def _contradiction(values: dict[str, Any], detail: str) -> str:
    leen, aared = values.get("madd_alleen_len"), values.get("madd_aared_len")
    if leen is not None and aared is not None and leen > aared:
        return f"moshaf.madd_alleen_len={leen} is longer than moshaf.madd_aared_len={aared}; leen must not exceed 'arid"
    return f"the moshaf attributes contradict each other: {detail}"


def to_model(values: dict[str, Any]) -> MoshafAttributes:
    return MoshafAttributes(**values)


def to_proto(values: dict[str, Any]) -> common_pb2.MoshafAttributes:
    known = set(_fields())
    return common_pb2.MoshafAttributes(**{k: v for k, v in values.items() if k in known and v is not None})


@cache
def default_values() -> dict[str, Any]:
    return to_dict(None)


def digest(values: dict[str, Any]) -> str:
    """A short stable digest of the attributes, for cache keys of non-default readings."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def is_default(values: dict[str, Any]) -> bool:
    return values == default_values()
