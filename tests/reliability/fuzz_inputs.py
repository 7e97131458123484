"""Hypothesis strategies for the fuzz suite: what a careless, confused or hostile partner might
send to each front door of the gateway.

Each door gets inputs of two kinds: made from nothing (any message the protobuf descriptors
allow, any form, any frames), and a valid request with a few things changed, so that the
generated inputs reach past the first check into the assessment itself.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import numpy as np
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from services.common.pb import common_pb2, gateway_pb2
from tests.conftest import AUDIO_DIR
from tests.reliability.builders import recitation, wav

CLIP_S = 1.5
# The clip recites 8:75 from imlaey word 17: its first words.
CLIP_TARGET = common_pb2.Target(words=common_pb2.WordRangeTarget(surah=8, ayah=75, start_word=17, word_count=3))
INT_EDGES: tuple[int, ...] = (0, 1, -1, 2, 7, 8, 17, 19, 20, 75, 76, 114, 115, 128, 129, 286, 287, 6500, 6501)
INT_EDGES += (8000, 16000, 2**15, 2**31 - 1, -(2**31), 2**31 - 2)
WEIRD_JSON: tuple[Any, ...] = (
    10**20,
    2**31,
    -(2**31) - 1,
    2**63,
    -1,
    0,
    7.5,
    1e308,
    float("inf"),
    float("nan"),
    "x",
    "",
    "NaN",
    "Infinity",
    "9" * 30,
    "1e3",
    "٨",
    True,
    False,
    None,
    [],
    {},
    [1, "a"],
    {"a": 1},
)
FORM_NAMES = ("audio", "request", "surah", "ayah", "words", "last_ayah", "colour", "word", "Surah", "audio ", "")
FORM_VALUES: tuple[str, ...] = ("8", "75", "1", "2", "114", "115", "0", "-1", "17:9", "17:3", "0:3", "17+9")
FORM_VALUES += ("", " ", "1e3", "٨", "9" * 25, "2147483648", "17:0", ":", "17:99999", "1:1:1")
CONTENT_TYPES = (
    "multipart/form-data",
    "multipart/form-data; boundary=other",
    "multipart/mixed; boundary=fuzz-boundary",
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "",
)
LIVE_TEXT_FRAMES = (
    '{"end": true}',
    '{"end": false}',
    '{"end": "yes"}',
    '{"end": true, "config": {}}',
    '{"config": {}}',
    '{"config": "x"}',
    '{"audio": "AAAA"}',
    '{"audio": "%%%"}',
    "not json",
    "[]",
    "null",
    '{"config": {"target": {"ayah": {"surah": 1, "surah": 2}}}}',
)


@cache
def clip_pcm() -> bytes:
    """The clip as 16 kHz mono s16le."""
    samples = recitation()[: int(CLIP_S * 16_000)]
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@cache
def audio_blobs() -> tuple[bytes, ...]:
    """Audio payloads: a valid short WAV first, then broken and odd ones."""
    clip = wav(recitation()[: int(CLIP_S * 16_000)], 16_000)
    mp3 = (AUDIO_DIR / "test.mp3").read_bytes()
    return (
        clip,
        clip[:44],
        clip[:300],
        b"",
        b"\0" * 64,
        b"RIFF" + b"\xff" * 60,
        mp3[:6000],
        clip_pcm(),
        json.dumps({"not": "audio"}).encode(),
    )


def _ints(field: Any) -> st.SearchStrategy[int]:
    kinds = {
        FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
        FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    }
    low, high = kinds.get(field.type, (-(2**31), 2**31 - 1))
    edges = [v for v in INT_EDGES if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


_KNOWN_STRINGS: dict[str, tuple[str, ...]] = {
    "validators": ("madd", "shadda", "ghunnah", "qalqalah", "waqf", "vibrato", ""),
    "rewaya": ("hafs", "warsh", ""),
    "recitation_speed": ("murattal", "hadr", "fast"),
    "compare_to": ("", "husary", "nobody"),
    "name_hint": ("recitation.wav", "x.mp3", "", "../../etc/passwd"),
    "mime_type": ("audio/ogg", "audio/webm", "audio/wav", "", "x/y"),
}


def _scalar(field: Any) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        known = _KNOWN_STRINGS.get(field.name, ())
        return st.one_of(st.sampled_from(known), st.text(max_size=12)) if known else st.text(max_size=12)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.sampled_from(audio_blobs()), st.binary(max_size=64))
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-3, max(numbers) + 3))
    return _ints(field)


def _value(field: Any, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            key = _scalar(field.message_type.fields_by_name["key"])
            return st.dictionaries(key, _value(field.message_type.fields_by_name["value"], depth + 1), max_size=3)
        inner = messages(field.message_type, depth + 1)
        return st.lists(inner, max_size=2) if field.is_repeated else inner
    return st.lists(_scalar(field), max_size=3) if field.is_repeated else _scalar(field)


def _fill(message: Message, values: dict[str, Any]) -> Message:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def messages(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of the type: a random subset of its fields (at most one per oneof), each any
    value of its type, edges of the integer ranges and known names favoured."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 4:
        return st.just(cls())
    real_oneofs = [o for o in descriptor.oneofs if not o.name.startswith("_")]
    in_oneof = {f.name for o in real_oneofs for f in o.fields}
    plain = st.fixed_dictionaries(
        {}, optional={f.name: _value(f, depth) for f in descriptor.fields if f.name not in in_oneof}
    )
    choices = [
        st.one_of(st.none(), *(st.tuples(st.just(f.name), _value(f, depth)) for f in o.fields)) for o in real_oneofs
    ]

    def build(parts: tuple[dict[str, Any], list[tuple[str, Any] | None]]) -> Message:
        values, picked = parts
        values = dict(values)
        values.update(dict(choice for choice in picked if choice is not None))
        return _fill(cls(), values)

    return st.tuples(plain, st.tuples(*choices).map(list)).map(build)


def valid_assess_request() -> gateway_pb2.AssessRequest:
    return gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(content=audio_blobs()[0], name_hint="clip.wav"),
        target=CLIP_TARGET,
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )


def valid_live_config(api_key: str) -> gateway_pb2.LiveConfig:
    return gateway_pb2.LiveConfig(
        target=CLIP_TARGET,
        pcm=common_pb2.RawPcm(sample_rate_hz=16_000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
        api_key=api_key,
    )


def _changed(base: Callable[[], Message]) -> st.SearchStrategy[Message]:
    """The valid message with a random partial one merged over it (a few fields changed)."""

    def merge(partial: Message) -> Message:
        message = base()
        message.MergeFrom(partial)
        return message

    return messages(base().DESCRIPTOR).map(merge)


def assess_requests() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(valid_assess_request()),
        _changed(valid_assess_request),
        messages(gateway_pb2.AssessRequest.DESCRIPTOR),
    )


def live_configs(api_key: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(valid_live_config(api_key)),
        _changed(lambda: valid_live_config(api_key)),
        messages(gateway_pb2.LiveConfig.DESCRIPTOR),
    )


# JSON as it is written: an object is a list of (key, value) pairs, so that a key can be given twice.


class Pairs(list[tuple[str, Any]]):
    """A JSON object whose keys may repeat."""


def as_pairs(value: Any) -> Any:
    if isinstance(value, dict):
        return Pairs((key, as_pairs(item)) for key, item in value.items())
    if isinstance(value, list):
        return [as_pairs(item) for item in value]
    return value


def dumps(value: Any) -> str:
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(key)}: {dumps(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    return json.dumps(value)


def _objects(value: Any) -> list[Pairs]:
    found: list[Pairs] = []
    if isinstance(value, Pairs):
        found.append(value)
        for _, item in value:
            found += _objects(item)
    elif isinstance(value, list):
        for item in value:
            found += _objects(item)
    return found


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@st.composite
def mutated_json(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> str:
    """A JSON text: a document with up to three edits (a weird value, an unknown key, a key
    given twice or under its other name, a key removed), sometimes cut short or with a stray
    byte."""
    document = as_pairs(draw(documents))
    for _ in range(draw(st.integers(0, 3))):
        objects = _objects(document)
        if not objects:
            break
        obj = draw(st.sampled_from(objects))
        edit = draw(st.sampled_from(("value", "unknown", "twice", "alias", "remove")))
        weird = draw(st.one_of(st.sampled_from(WEIRD_JSON), st.integers(), st.text(max_size=8)))
        if edit == "unknown" or not obj:
            obj.append((draw(st.sampled_from(("colour", "taget", "Surah", "", "end"))), weird))
            continue
        index = draw(st.integers(0, len(obj) - 1))
        key, item = obj[index]
        if edit == "value":
            obj[index] = (key, weird)
        elif edit == "twice":
            obj.append((key, weird))
        elif edit == "alias" and _snake(key) != key:
            obj.append((_snake(key), item))
        elif edit == "remove":
            del obj[index]
    text = dumps(document)
    damage = draw(st.sampled_from(("none",) * 8 + ("cut", "byte")))
    if damage == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif damage == "byte":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(("\0", "}", '"', "\\", "\udcff", "é"))) + text[at:]
    return text


def json_documents(requests: st.SearchStrategy[Message]) -> st.SearchStrategy[Any]:
    return requests.map(json_format.MessageToDict)


# The multipart form.


@dataclass(frozen=True)
class Part:
    name: str
    value: bytes
    filename: str | None = None  # set: a file part


def _text_part() -> st.SearchStrategy[Part]:
    names = st.one_of(st.sampled_from(FORM_NAMES), st.text(string.ascii_letters + "_- ", max_size=8))
    values = st.one_of(st.sampled_from(FORM_VALUES), st.integers(-(10**25), 10**25).map(str), st.text(max_size=10))
    return st.builds(lambda n, v: Part(n, v.encode("utf-8", "surrogatepass")), names, values)


def _file_part() -> st.SearchStrategy[Part]:
    return st.builds(
        Part,
        st.sampled_from(("audio", "audio", "surah", "request", "other")),
        st.one_of(st.sampled_from(audio_blobs()), st.binary(max_size=64)),
        st.sampled_from(("clip.wav", "", "a b.mp3", "x")),
    )


@st.composite
def forms(draw: st.DrawFn, request_json: st.SearchStrategy[str]) -> tuple[list[Part], str]:
    """(parts, content type): a valid form with parts added, dropped or changed, or parts
    made from nothing; the content type nearly always multipart with the body's boundary."""
    if draw(st.booleans()):
        parts = [
            Part("audio", audio_blobs()[0], "clip.wav"),
            Part("surah", b"8"),
            Part("ayah", b"75"),
            Part("words", b"17:3"),
        ]
        # Any edit is likely to make the form invalid (strictly read): half are left whole.
        for _ in range(draw(st.sampled_from((0, 0, 0, 1, 1, 2)))):
            edit = draw(st.sampled_from(("add", "drop", "change")))
            if edit == "add" or not parts:
                parts.insert(draw(st.integers(0, len(parts))), draw(st.one_of(_text_part(), _file_part())))
            elif edit == "drop":
                del parts[draw(st.integers(0, len(parts) - 1))]
            else:
                index = draw(st.integers(0, len(parts) - 1))
                parts[index] = Part(parts[index].name, draw(_text_part()).value, parts[index].filename)
    else:
        parts = draw(st.lists(st.one_of(_text_part(), _file_part()), max_size=6))
        if draw(st.booleans()):
            parts.append(Part("request", draw(request_json).encode("utf-8", "surrogatepass")))
    content_type = "multipart/form-data; boundary=fuzz-boundary"
    if draw(st.integers(0, 9)) == 0:
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    return parts, content_type


def encode_form(parts: list[Part], boundary: str = "fuzz-boundary") -> bytes:
    chunks: list[bytes] = []
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if part.filename is not None:
            chunks.append(b"Content-Type: application/octet-stream\r\n")
        chunks.append(b"\r\n" + part.value + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


# The path of GET /v1/reference/{surah}/{ayah} and its query.


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(("1", "2", "8", "114", "115", "0", "-1", "99999999999999999999", "2147483648", "٨", "1.5")),
        st.integers(-(10**30), 10**30).map(str),
        st.text(max_size=8).map(lambda s: quote(s, safe="")),
    )


@st.composite
def reference_paths(draw: st.DrawFn) -> str:
    from services.common.parsing import MOSHAF_FIELDS

    names = st.one_of(st.sampled_from([*MOSHAF_FIELDS, "speed", "colour"]), st.text(max_size=6))
    values = st.one_of(st.sampled_from(("2", "4", "6", "hafs", "warsh", "-1", "9" * 25, "")), st.text(max_size=6))
    query = draw(st.lists(st.tuples(names, values), max_size=3))
    path = f"/v1/reference/{quote(draw(_segment()), safe='%')}/{quote(draw(_segment()), safe='%')}"
    if query:
        path += "?" + "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in query)
    return path


# The WebSocket's frames.

Frame = str | bytes


@st.composite
def live_frames(draw: st.DrawFn, api_key: str) -> list[Frame]:
    """A session's frames. Half are well formed (a valid or changed config, audio frames, then
    {"end": true}), so that sessions run; the other half anything: a config made from nothing
    or broken, audio and stray text frames, mostly {"end": true} last."""
    pcm = clip_pcm()
    audio = st.one_of(
        st.integers(0, 7).map(lambda i: pcm[i * 6400 : (i + 1) * 6400]),
        st.binary(max_size=64),
        st.just(pcm[:3]),
    )
    if draw(st.booleans()):
        config = draw(st.one_of(st.just(valid_live_config(api_key)), _changed(lambda: valid_live_config(api_key))))
        chunks = draw(st.lists(st.integers(0, 7), max_size=8))
        return [
            json.dumps({"config": json_format.MessageToDict(config)}),
            *(pcm[i * 6400 : (i + 1) * 6400] for i in chunks),
            '{"end": true}',
        ]
    configs = live_configs(api_key).map(lambda c: {"config": json_format.MessageToDict(c)})
    first: Frame = draw(
        st.one_of(
            configs.map(json.dumps),
            configs.flatmap(lambda c: mutated_json(st.just(c))),
            st.sampled_from(LIVE_TEXT_FRAMES),
            st.binary(max_size=32),
        )
    )
    frames_between = st.one_of(audio, audio, st.sampled_from(LIVE_TEXT_FRAMES), st.text(max_size=12))
    frames: list[Frame] = [first, *draw(st.lists(frames_between, max_size=5))]
    if draw(st.integers(0, 4)) > 0:
        frames.append('{"end": true}')
    return frames
