"""The body of POST /v1/assess read strictly: a multipart form or a JSON AssessRequest.

Nothing a partner sends is dropped or overridden in silence: a form field this API does not
take, a field sent twice, a target given both in the form and in its `request` part, or a text
where a file belongs is a 400 that names the field; every number is checked against its range
(services.common.parsing, strict_json) before it reaches protobuf.
"""

from __future__ import annotations

import difflib
from collections import Counter

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from services.common import bounds, parsing, strict_json
from services.common.errors import InvalidArgument, TooLarge, UnsupportedMediaType
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.locating import form_asks_to_locate

MULTIPART = "multipart/form-data"
JSON = "application/json"
ACCEPTED = f"{MULTIPART} (an `audio` file part and the target's fields) or {JSON} (an AssessRequest)"

# The form's fields and what each holds (the OpenAPI document and the errors list them).
FORM_FIELDS = {
    "audio": "the recording, a file part",
    "request": "an AssessRequest as JSON, without audio (options, moshaf, compareTo, or the target)",
    "surah": "1..114",
    "ayah": "1..the surah's ayah count",
    "words": parsing.WORDS_FORM,
    "last_ayah": "assess ayah..last_ayah (instead of words)",
    "locate": "true: no surah or ayah, the mesh finds the passage recited",
}
_TARGET_FIELDS = ("surah", "ayah", "words", "last_ayah")


def media_type(request: Request) -> str:
    """The content type without its parameters, lower case ('' when there is none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {int(declared)} bytes, over the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    check_declared_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge(f"the request body passed the limit of {limit} bytes")
    return bytes(body)


def _check_names(form: FormData) -> None:
    counts = Counter(name for name, _ in form.multi_items())
    for name, count in counts.items():
        if name not in FORM_FIELDS:
            close = difflib.get_close_matches(name, list(FORM_FIELDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgument(
                f"unknown form field {bounds.shown(name)} (the form takes {', '.join(FORM_FIELDS)}){hint}"
            )
        if count > 1:
            raise InvalidArgument(f"form field {name!r} is sent {count} times; send it once")


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(f"form field {name!r} must be a text field, not a file")


def _form_target(form: FormData) -> common_pb2.Target | None:
    text = {name: _text(form, name) for name in _TARGET_FIELDS}
    # An HTML form sends its empty optional inputs: an empty words or last_ayah is absent.
    given = {name for name, value in text.items() if value is not None and (value.strip() or name in ("surah", "ayah"))}
    if not given:
        return None
    missing = [name for name in ("surah", "ayah") if name not in given]
    if missing:
        raise InvalidArgument(
            f"the form gives {' and '.join(sorted(given - set(missing)))} without {' and '.join(missing)}: "
            "a target needs surah and ayah (and at most one of words, last_ayah)"
        )
    surah, ayah = text["surah"], text["ayah"]
    assert surah is not None and ayah is not None
    return parsing.target_from_strings(surah, ayah, text["words"], text["last_ayah"])


async def from_form(request: Request, limit: int) -> gateway_pb2.AssessRequest:
    check_declared_length(request, limit)
    form = await request.form(max_part_size=limit)
    _check_names(form)
    upload = form.get("audio")
    if upload is None:
        raise InvalidArgument("multipart upload: the `audio` file part is missing")
    if not isinstance(upload, UploadFile):
        raise InvalidArgument("form field 'audio' must be a file part (filename=...), not a text field")
    if upload.size is not None and upload.size > limit:
        raise TooLarge(f"the audio part is {upload.size} bytes, over the limit of {limit} bytes")
    message = gateway_pb2.AssessRequest()
    raw = _text(form, "request")
    if raw is not None and raw.strip():
        strict_json.parse(strict_json.loads(raw, "request"), message, "request")
        if message.HasField("audio"):
            raise InvalidArgument("request: the audio goes in the `audio` file part, not in request.audio")
    target = _form_target(form)
    if form_asks_to_locate(_text(form, "locate"), target is not None):
        target = common_pb2.Target(locate=common_pb2.LocateTarget())
    if target is not None:
        if message.HasField("target"):
            raise InvalidArgument("the target is given twice, in request.target and in the form's fields: give it once")
        message.target.CopyFrom(target)
    message.audio.content = await upload.read()
    message.audio.name_hint = upload.filename or ""
    return message


async def from_json(request: Request, limit: int) -> gateway_pb2.AssessRequest:
    payload = strict_json.loads(await read_body(request, limit), "the body")
    if not isinstance(payload, dict):
        raise InvalidArgument("the body must be a JSON object (an AssessRequest)")
    return strict_json.parse(payload, gateway_pb2.AssessRequest(), "AssessRequest")


async def assess_request(request: Request, limit: int) -> gateway_pb2.AssessRequest:
    """The AssessRequest of the body, by its content type (none: JSON, as curl -d @file.json
    and many HTTP libraries send it)."""
    kind = media_type(request)
    if kind == MULTIPART:
        return await from_form(request, limit)
    if kind in (JSON, ""):
        return await from_json(request, limit)
    raise UnsupportedMediaType(f"the body's content type is {bounds.shown(kind)}; POST /v1/assess takes {ACCEPTED}")
