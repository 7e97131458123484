"""Bad input over the HTTP API: bodies, multipart forms, headers and query strings."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from google.protobuf import json_format

from services.common.pb import gateway_pb2
from tests.reliability.builders import assess_request, recitation_wav, target, wav


def request_json(request: gateway_pb2.AssessRequest | None = None) -> dict[str, Any]:
    """The proto3 JSON form of a request (what an HTTP partner sends)."""
    return json_format.MessageToDict(request if request is not None else assess_request())


def _json_with(path: str, value: object) -> bytes:
    """The sample request as JSON with the value at a dotted path replaced (or added)."""
    document = request_json()
    node = document
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return json.dumps(document).encode()


def _json_without(key: str) -> bytes:
    document = request_json()
    del document[key]
    return json.dumps(document).encode()


def multipart(
    fields: dict[str, str] | list[tuple[str, str]], audio: bytes | None, boundary: str = "muaalem-boundary"
) -> bytes:
    """A multipart/form-data body: text fields (pairs to send one twice) and an optional `audio` file part."""
    lines: list[bytes] = []
    for name, value in fields.items() if isinstance(fields, dict) else fields:
        lines += [f"--{boundary}".encode(), f'Content-Disposition: form-data; name="{name}"'.encode(), b""]
        lines.append(value.encode())
    if audio is not None:
        lines += [
            f"--{boundary}".encode(),
            b'Content-Disposition: form-data; name="audio"; filename="recitation.wav"',
            b"Content-Type: audio/wav",
            b"",
            audio,
        ]
    lines.append(f"--{boundary}--".encode())
    return b"\r\n".join(lines) + b"\r\n"


MULTIPART = "multipart/form-data; boundary=muaalem-boundary"
JSON = "application/json"


@dataclass(frozen=True)
class HttpCase:
    """One kind of bad HTTP request: method, path, body; the status and message words.
    `key` None sends the valid API key; a string sends that header value as is."""

    name: str
    method: str
    path: str
    body: Callable[[], bytes] | None
    status: int
    words: tuple[str, ...]
    content_type: str = JSON
    authorization: str | None = None


HTTP_CASES: tuple[HttpCase, ...] = (
    HttpCase("not JSON", "POST", "/v1/assess", lambda: b"surah=8&ayah=75", 400, ("not json",)),
    HttpCase("empty body", "POST", "/v1/assess", lambda: b"", 400, ("not json",)),
    HttpCase("bytes that are not UTF-8", "POST", "/v1/assess", lambda: b"\xff\xfe\x00{", 400, ("not json",)),
    HttpCase("a JSON array", "POST", "/v1/assess", lambda: b"[1, 2, 3]", 400, ("json object",)),
    HttpCase(
        "string for an int (surah)",
        "POST",
        "/v1/assess",
        lambda: _json_with("target.words.surah", "eight"),
        400,
        ("surah", "eight"),
    ),
    HttpCase(
        "fraction for an int (ayah)", "POST", "/v1/assess", lambda: _json_with("target.words.ayah", 7.5), 400, ("ayah",)
    ),
    HttpCase(
        "int out of int32 range",
        "POST",
        "/v1/assess",
        lambda: _json_with("target.words.surah", 10**20),
        400,
        ("surah",),
    ),
    HttpCase(
        "array for an object (target)", "POST", "/v1/assess", lambda: _json_with("target", [8, 75]), 400, ("target",)
    ),
    HttpCase(
        "object for a string", "POST", "/v1/assess", lambda: _json_with("audio.nameHint", {"a": 1}), 400, ("namehint",)
    ),
    HttpCase(
        "bad base64 audio",
        "POST",
        "/v1/assess",
        lambda: _json_with("audio.content", "%%% not base64 %%%"),
        400,
        ("content",),
    ),
    HttpCase("unknown field", "POST", "/v1/assess", lambda: _json_with("colour", "green"), 400, ("colour",)),
    HttpCase(
        "unknown enum value",
        "POST",
        "/v1/assess",
        lambda: _json_with("audio", {"pcm": {"data": "AAAA", "sampleRateHz": 16000, "encoding": "PCM_ENCODING_MP3"}}),
        400,
        ("pcm_encoding_mp3",),
    ),
    HttpCase("no audio", "POST", "/v1/assess", lambda: _json_without("audio"), 400, ("audio is missing",)),
    HttpCase("no target", "POST", "/v1/assess", lambda: _json_without("target"), 400, ("target is missing",)),
    HttpCase(
        "unknown surah (valid JSON)",
        "POST",
        "/v1/assess",
        lambda: _json_with("target", {"ayah": {"surah": 115, "ayah": 1}}),
        400,
        ("target.ayah.surah", "1..114", "115"),
    ),
    HttpCase(
        "multipart without the audio part",
        "POST",
        "/v1/assess",
        lambda: multipart({"surah": "8", "ayah": "75"}, None),
        400,
        ("audio", "missing"),
        content_type=MULTIPART,
    ),
    HttpCase(
        "multipart: surah is not a number",
        "POST",
        "/v1/assess",
        lambda: multipart({"surah": "al-anfal", "ayah": "75"}, recitation_wav()),
        400,
        ("surah must be an integer", "al-anfal"),
        content_type=MULTIPART,
    ),
    HttpCase(
        "multipart: words not FROM:COUNT",
        "POST",
        "/v1/assess",
        lambda: multipart({"surah": "8", "ayah": "75", "words": "seventeen"}, recitation_wav()),
        400,
        ("from:count",),
        content_type=MULTIPART,
    ),
    HttpCase(
        "multipart: request part is not JSON",
        "POST",
        "/v1/assess",
        lambda: multipart({"request": "{not json"}, recitation_wav()),
        400,
        ("not json",),
        content_type=MULTIPART,
    ),
    HttpCase(
        "multipart: silent audio",
        "POST",
        "/v1/assess",
        lambda: multipart({"surah": "8", "ayah": "75"}, wav(np.zeros(32_000, np.float32), 16_000)),
        400,
        ("silent",),
        content_type=MULTIPART,
    ),
    HttpCase(
        "8.8 s of another ayah sent for 2:282 (a content mismatch, not a refusal)",
        "POST",
        "/v1/assess",
        lambda: json.dumps(request_json(assess_request(target_=target(2, 282, None)))).encode(),
        200,
        ("content_status_mismatch",),
    ),
    HttpCase(
        "no API key",
        "POST",
        "/v1/assess",
        lambda: json.dumps(request_json()).encode(),
        401,
        ("api key",),
        authorization="",
    ),
    HttpCase(
        "wrong API key",
        "POST",
        "/v1/assess",
        lambda: json.dumps(request_json()).encode(),
        401,
        ("not valid",),
        authorization="Bearer mua_not-a-key",
    ),
    HttpCase(
        "Basic instead of Bearer",
        "POST",
        "/v1/assess",
        lambda: json.dumps(request_json()).encode(),
        401,
        ("bearer",),
        authorization="Basic dXNlcjpwYXNz",
    ),
    # Issue 26: what a partner tripped over, each a 400 naming the field (and its range).
    *(
        HttpCase(
            f"multipart: {name}",
            "POST",
            "/v1/assess",
            partial(multipart, fields, recitation_wav()),
            400,
            words,
            content_type=MULTIPART,
        )
        for name, fields, words in (
            ("unknown field colour", {"surah": "8", "ayah": "75", "colour": "red"}, ("unknown form field 'colour'",)),
            ("typo word for words", {"surah": "8", "ayah": "75", "word": "17:9"}, ("'word'", "did you mean 'words'")),
            ("surah sent twice", [("surah", "8"), ("surah", "9"), ("ayah", "1")], ("'surah' is sent 2 times",)),
            ("surah 99999999999999999999", {"surah": "9" * 20, "ayah": "1"}, ("surah", "1..114", "9" * 20)),
            ("surah 2147483648", {"surah": "2147483648", "ayah": "1"}, ("surah", "1..114", "2147483648")),
            ("surah -1", {"surah": "-1", "ayah": "1"}, ("surah", "1..114", "'-1'")),
            ("ayah 10^30", {"surah": "8", "ayah": "1" + "0" * 30}, ("ayah", "1..75")),
            (
                "words 99999999999999999999:1",
                {"surah": "8", "ayah": "75", "words": "9" * 20 + ":1"},
                ("words", "0..128", "1..6500"),
            ),
            ("last_ayah 10^20", {"surah": "2", "ayah": "1", "last_ayah": "1" + "0" * 20}, ("last_ayah", "1..286")),
        )
    ),
    HttpCase(
        "a form posted as text/plain",
        "POST",
        "/v1/assess",
        lambda: b"surah=8&ayah=75",
        415,
        ("text/plain", "multipart/form-data", "application/json"),
        content_type="text/plain",
    ),
    HttpCase(
        "JSON: a key given twice",
        "POST",
        "/v1/assess",
        lambda: _json_with("target", {"ayah": {"surah": 1, "ayah": 1}})[:-1] + b', "target": {}}',
        400,
        ("'target' is given twice",),
    ),
    HttpCase(
        "reference: surah 99999999999999999999",
        "GET",
        "/v1/reference/99999999999999999999/1",
        None,
        400,
        ("surah", "1..114"),
    ),
    HttpCase("reference: surah not a number", "GET", "/v1/reference/anfal/75", None, 400, ("integer", "anfal")),
    HttpCase("reference: ayah 300 of al-Fatiha", "GET", "/v1/reference/1/300", None, 400, ("ayah", "1..7", "300")),
    HttpCase(
        "reference: unknown query parameter",
        "GET",
        "/v1/reference/1/1?speed=fast",
        None,
        400,
        ("unknown query", "speed"),
    ),
    HttpCase(
        "reference: int attribute not a number",
        "GET",
        "/v1/reference/1/1?madd_monfasel_len=long",
        None,
        400,
        ("madd_monfasel_len", "integer"),
    ),
    HttpCase(
        "reference: contradictory attributes",
        "GET",
        "/v1/reference/1/1?madd_alleen_len=6&madd_aared_len=2",
        None,
        400,
        ("madd_alleen_len", "madd_aared_len"),
    ),
)
