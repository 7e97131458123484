"""Bad (and unusual but valid) input, generated here: audio files, lying headers, requests.

Each case names what it sends, the status it must get and words its message must contain,
so that "the right outcome" is a fact a test checks rather than a claim.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from google.protobuf import json_format

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.config import MAX_STREAM_MB
from tests.conftest import AUDIO_DIR

# The sample recitation and the passage it recites (8:75 from imlaey word 17, 9 words).
SURAH, AYAH, WORDS = 8, 75, (17, 9)

# The gateway's AssessStream byte limit (its default): the upload test expects exactly it.
STREAM_LIMIT_MB = int(MAX_STREAM_MB.default)


@cache
def recitation() -> npt.NDArray[np.float32]:
    """test.wav as 16 kHz mono float32 (8.77 s)."""
    samples, rate = sf.read(str(AUDIO_DIR / "test.wav"), dtype="float32")
    assert rate == 16_000 and samples.ndim == 1
    return samples


def wav(samples: npt.NDArray[np.floating], rate: int, subtype: str = "PCM_16") -> bytes:
    """A WAV file of `samples` (frames, or frames x channels)."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@cache
def recitation_wav() -> bytes:
    return (AUDIO_DIR / "test.wav").read_bytes()


def resampled(rate: int) -> npt.NDArray[np.float32]:
    return soxr.resample(recitation(), 16_000, rate).astype(np.float32)


def with_fmt_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """A copy of a canonical 44-byte-header WAV with one header field rewritten.
    Offsets: 4 RIFF size, 22 channels, 24 sample rate, 28 byte rate, 34 bits, 40 data size."""
    assert data[:4] == b"RIFF" and data[36:40] == b"data", "expected a canonical WAV header"
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


def noise(seconds: float, rate: int = 16_000, seed: int = 7) -> npt.NDArray[np.float32]:
    return (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)


def target(surah: int = SURAH, ayah: int = AYAH, words: tuple[int, int] | None = WORDS) -> common_pb2.Target:
    if words is None:
        return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=surah, ayah=ayah))
    return common_pb2.Target(
        words=common_pb2.WordRangeTarget(surah=surah, ayah=ayah, start_word=words[0], word_count=words[1])
    )


def assess_request(
    content: bytes | None = None,
    *,
    name_hint: str = "recitation.wav",
    target_: common_pb2.Target | None = None,
    moshaf: dict[str, object] | None = None,
) -> gateway_pb2.AssessRequest:
    """A request for the sample passage; `content=None` sends the sample recitation itself."""
    request = gateway_pb2.AssessRequest(
        target=target_ if target_ is not None else target(),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )
    request.audio.content = recitation_wav() if content is None else content
    request.audio.name_hint = name_hint
    if moshaf:
        request.moshaf.CopyFrom(common_pb2.MoshafAttributes(**moshaf))  # type: ignore[arg-type]
    return request


# Targets the 8.8 s sample recitation is assessed against in load runs, in turn: its own passage
# and short ayahs whose references the cache computes once and then serves (every stage runs on
# each: the requests ask for the rules even when the content does not match).
LOAD_TARGETS = [target(), *(target(1, a, None) for a in range(1, 8)), *(target(112, a, None) for a in range(1, 5))]


def rotating_request(client: int, sequence: int) -> gateway_pb2.AssessRequest:
    """The request a load client sends: the sample recitation, the next target in turn."""
    return assess_request(target_=LOAD_TARGETS[(client + sequence) % len(LOAD_TARGETS)])


def pcm_request(data: bytes, rate: int, channels: int, encoding: int) -> gateway_pb2.AssessRequest:
    request = assess_request()
    request.audio.ClearField("content")
    request.audio.pcm.CopyFrom(
        common_pb2.RawPcm(data=data, sample_rate_hz=rate, channels=channels, encoding=encoding)  # type: ignore[arg-type]
    )
    return request


def _without(field: str) -> gateway_pb2.AssessRequest:
    request = assess_request()
    request.ClearField(field)
    return request


def _with_options(**options: object) -> gateway_pb2.AssessRequest:
    request = assess_request()
    for key, value in options.items():
        if key == "validators":
            request.options.validators.extend(value)  # type: ignore[arg-type]
        elif key == "band_frames":
            request.options.align.band_frames = value  # type: ignore[assignment]
        elif key == "default_threshold":
            request.options.align.default_threshold = value  # type: ignore[assignment]
        else:
            setattr(request.options, key, value)
    return request


@dataclass(frozen=True)
class Case:
    """One kind of bad input over unary Assess: the request, the status and message words."""

    name: str
    build: Callable[[], gateway_pb2.AssessRequest]
    code: str
    words: tuple[str, ...]


def _f32(samples: npt.NDArray[np.floating]) -> bytes:
    return np.asarray(samples, dtype="<f4").tobytes()


def _nan_wav() -> bytes:
    samples = recitation().copy()
    samples[1000] = np.nan
    return wav(samples, 16_000, "FLOAT")


def _inf_wav() -> bytes:
    samples = recitation().copy()
    samples[2000] = np.inf
    return wav(samples, 16_000, "FLOAT")


def _zero_rate_fields() -> bytes:
    return with_fmt_field(with_fmt_field(recitation_wav(), 28, "<I", 0), 32, "<H", 0)


INVALID = "INVALID_ARGUMENT"
EXHAUSTED = "RESOURCE_EXHAUSTED"

UNARY_CASES: tuple[Case, ...] = (
    # The audio itself.
    Case("empty audio (0 bytes)", lambda: assess_request(b""), INVALID, ("empty", "0 bytes")),
    Case("one sample", lambda: assess_request(wav(np.array([0.5], np.float32), 16_000)), INVALID, ("ms long",)),
    Case("50 ms of audio", lambda: assess_request(wav(noise(0.05), 16_000)), INVALID, ("ms long", "100 ms")),
    Case(
        "WAV cut inside its header (30 bytes)",
        lambda: assess_request(recitation_wav()[:30]),
        INVALID,
        ("cannot decode", "30 bytes"),
    ),
    Case(
        "WAV header with no data at all",
        lambda: assess_request(with_fmt_field(recitation_wav()[:44], 40, "<I", 0)),
        INVALID,
        ("no samples",),
    ),
    Case(
        "garbage named .mp3",
        lambda: assess_request(np.random.default_rng(1).bytes(64_000), name_hint="lesson.mp3"),
        INVALID,
        ("cannot decode", "lesson.mp3"),
    ),
    Case(
        "a JSON document named .wav",
        lambda: assess_request(b'{"surah": 8, "ayah": 75}' * 100, name_hint="lesson.wav"),
        INVALID,
        ("cannot decode", "lesson.wav"),
    ),
    Case("float WAV with a NaN sample", lambda: assess_request(_nan_wav()), INVALID, ("nan",)),
    Case("float WAV with an infinite sample", lambda: assess_request(_inf_wav()), INVALID, ("infinite",)),
    Case(
        "silence only (digital zero)",
        lambda: assess_request(wav(np.zeros(16_000 * 3, np.float32), 16_000)),
        INVALID,
        ("silent",),
    ),
    Case(
        "near silence (-80 dBFS noise)",
        lambda: assess_request(wav(noise(3.0) * 1e-3, 16_000, "FLOAT")),
        INVALID,
        ("silent", "dbfs"),
    ),
    Case(
        "header: sample rate field 0 Hz",
        lambda: assess_request(with_fmt_field(recitation_wav(), 24, "<I", 0)),
        INVALID,
        ("cannot decode",),
    ),
    Case(
        "header: sample rate field 200 Hz",
        lambda: assess_request(with_fmt_field(with_fmt_field(recitation_wav(), 24, "<I", 200), 28, "<I", 400)),
        INVALID,
        ("sample rate of 200 hz", "supported"),
    ),
    Case(
        "6 kHz recording (under the 8 kHz floor)",
        lambda: assess_request(wav(resampled(6_000), 6_000)),
        INVALID,
        ("sample rate of 6000 hz", "8000"),
    ),
    Case(
        "header: 0 channels",
        lambda: assess_request(with_fmt_field(recitation_wav(), 22, "<H", 0)),
        INVALID,
        ("cannot decode",),
    ),
    Case(
        "header: unknown format tag 99",
        lambda: assess_request(with_fmt_field(recitation_wav(), 20, "<H", 99)),
        INVALID,
        ("cannot decode",),
    ),
    Case(
        "header: fmt chunk claims 1000 bytes",
        lambda: assess_request(with_fmt_field(recitation_wav(), 16, "<I", 1000)),
        INVALID,
        ("cannot decode",),
    ),
    Case(
        "RIFX (big-endian magic) on little-endian data",
        lambda: assess_request(b"RIFX" + recitation_wav()[4:]),
        INVALID,
        ("cannot decode",),
    ),
    Case(
        "130 s of audio (over the 120 s unary limit)",
        lambda: assess_request(wav(np.tile(recitation(), 15), 16_000)),
        INVALID,
        ("131.6 s", "over the limit of 120 s", "streaming"),
    ),
    Case(
        "message over the 10 MiB gRPC limit (35 s of 48 kHz stereo float)",
        lambda: assess_request(wav(np.tile(np.repeat(resampled(48_000)[:, None], 2, axis=1), (4, 1)), 48_000, "FLOAT")),
        EXHAUSTED,
        ("larger than max",),
    ),
    # Raw PCM.
    Case(
        "raw PCM without an encoding",
        lambda: pcm_request(_f32(recitation()), 16_000, 1, common_pb2.PCM_ENCODING_UNSPECIFIED),
        INVALID,
        ("encoding",),
    ),
    Case(
        "raw PCM: odd number of bytes for S16LE",
        lambda: pcm_request(b"\x01" * 32_001, 16_000, 1, common_pb2.PCM_ENCODING_S16LE),
        INVALID,
        ("32001 bytes", "whole number"),
    ),
    Case(
        "raw PCM: sample rate 0",
        lambda: pcm_request(_f32(recitation()), 0, 1, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("sample_rate_hz",),
    ),
    Case(
        "raw PCM: 100 channels",
        lambda: pcm_request(_f32(np.zeros(3_200 * 100)), 16_000, 100, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("channel count 100",),
    ),
    Case(
        "raw PCM: 5 MHz sample rate",
        lambda: pcm_request(_f32(noise(1.0)), 5_000_000, 1, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("5000000 hz", "supported"),
    ),
    # What should have been recited.
    Case("missing audio", lambda: _without("audio"), INVALID, ("audio is missing",)),
    Case("missing target", lambda: _without("target"), INVALID, ("target is missing",)),
    Case("surah 115", lambda: assess_request(target_=target(115, 1, None)), INVALID, ("surah 115", "1..114")),
    Case("surah 0", lambda: assess_request(target_=target(0, 1, None)), INVALID, ("surah 0", "1..114")),
    Case("ayah 8 of al-Fatiha", lambda: assess_request(target_=target(1, 8, None)), INVALID, ("ayah 8", "1..7")),
    Case("negative ayah", lambda: assess_request(target_=target(2, -3, None)), INVALID, ("ayah -3",)),
    Case(
        "start word past the ayah's end",
        lambda: assess_request(target_=target(8, 75, (40, 2))),
        INVALID,
        ("start_word 40",),
    ),
    Case("word count 0", lambda: assess_request(target_=target(8, 75, (17, 0))), INVALID, ("word_count",)),
    Case(
        "word range past the end of the Quran",
        lambda: assess_request(target_=target(114, 6, (0, 50))),
        INVALID,
        ("past the end of the quran",),
    ),
    Case(
        "ayah range backwards",
        lambda: assess_request(
            target_=common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=2, first_ayah=5, last_ayah=1))
        ),
        INVALID,
        ("last_ayah 1", "before first_ayah 5"),
    ),
    Case(
        "8.8 s of audio for 2:282, the longest ayah",
        lambda: assess_request(target_=target(2, 282, None)),
        "FAILED_PRECONDITION",
        ("frames", "phonemes"),
    ),
    # The reading (MoshafAttributes).
    Case(
        "moshaf: madd_monfasel_len 7",
        lambda: assess_request(moshaf={"madd_monfasel_len": 7}),
        INVALID,
        ("madd_monfasel_len=7", "valid: 2, 3, 4, 5"),
    ),
    Case("moshaf: rewaya warsh", lambda: assess_request(moshaf={"rewaya": "warsh"}), INVALID, ("rewaya", "hafs")),
    Case(
        "moshaf: unknown recitation_speed",
        lambda: assess_request(moshaf={"recitation_speed": "fast"}),
        INVALID,
        ("recitation_speed", "murattal"),
    ),
    Case(
        "moshaf: leen longer than 'arid (contradictory)",
        lambda: assess_request(moshaf={"madd_alleen_len": 6, "madd_aared_len": 2}),
        INVALID,
        ("madd_alleen_len", "madd_aared_len"),
    ),
    # Options.
    Case("content_threshold 1.5", lambda: _with_options(content_threshold=1.5), INVALID, ("content_threshold",)),
    Case(
        "unknown validator",
        lambda: _with_options(validators=["madd", "vibrato"]),
        INVALID,
        ("validators", "vibrato"),
    ),
    Case("negative band_frames", lambda: _with_options(band_frames=-5), INVALID, ("band_frames",)),
    Case(
        "NaN default_threshold",
        lambda: _with_options(default_threshold=float("nan")),
        INVALID,
        ("default_threshold",),
    ),
)


@dataclass(frozen=True)
class ValidAudio:
    """Unusual audio that must be accepted and assessed."""

    name: str
    build: Callable[[], bytes]
    name_hint: str = "recitation.wav"


VALID_AUDIO: tuple[ValidAudio, ...] = (
    ValidAudio("8 channels", lambda: wav(np.repeat(recitation()[:, None], 8, axis=1), 16_000)),
    ValidAudio("8 kHz", lambda: wav(resampled(8_000), 8_000)),
    ValidAudio("192 kHz", lambda: wav(resampled(192_000), 192_000)),
    ValidAudio("24-bit", lambda: wav(recitation(), 16_000, "PCM_24")),
    ValidAudio("32-bit float at 44.1 kHz", lambda: wav(resampled(44_100), 44_100, "FLOAT")),
    ValidAudio("MP3 named .wav", (AUDIO_DIR / "test.mp3").read_bytes, "recitation.wav"),
    # The header is not trusted: the duration is what the data holds, not the 2 h it claims.
    ValidAudio(
        "header claims 2 hours of data (file truncated)",
        lambda: with_fmt_field(recitation_wav(), 40, "<I", 2 * 3600 * 16_000 * 2),
    ),
    ValidAudio("header: byte rate and block align fields 0", _zero_rate_fields),
)


def _header(audio: common_pb2.Audio) -> gateway_pb2.AssessStreamRequest:
    request = assess_request()
    request.audio.CopyFrom(audio)
    return gateway_pb2.AssessStreamRequest(header=request)


def _chunk(data: bytes) -> gateway_pb2.AssessStreamRequest:
    return gateway_pb2.AssessStreamRequest(chunk=data)


def _pcm_header(rate: int = 16_000, encoding: int = common_pb2.PCM_ENCODING_S16LE) -> gateway_pb2.AssessStreamRequest:
    return _header(
        common_pb2.Audio(pcm=common_pb2.RawPcm(sample_rate_hz=rate, channels=1, encoding=encoding))  # type: ignore[arg-type]
    )


def _chunks(total_bytes: int, block: bytes) -> Iterator[gateway_pb2.AssessStreamRequest]:
    sent = 0
    while sent < total_bytes:
        size = min(len(block), total_bytes - sent)
        yield _chunk(block[:size])
        sent += size


def _pcm_block(rate: int = 16_000, channels: int = 1, size: int = 1 << 20) -> bytes:
    """`size` bytes of S16LE audio (the recitation, repeated), never silent."""
    samples = resampled(rate) if rate != 16_000 else recitation()
    frames = np.resize(samples, size // (2 * channels))
    return (np.repeat(frames[:, None], channels, axis=1) * 32767).astype("<i2").tobytes()


def pcm_stream(seconds: float, rate: int = 16_000) -> Iterator[gateway_pb2.AssessStreamRequest]:
    """A header announcing S16LE mono PCM, then `seconds` of audio in 1 MiB chunks."""
    yield _pcm_header(rate)
    yield from _chunks(int(seconds * rate) * 2, _pcm_block(rate))


def wav_file_stream(seconds: float, rate: int = 48_000, channels: int = 2) -> Iterator[gateway_pb2.AssessStreamRequest]:
    """A WAV file of `seconds` (16-bit) streamed as a file: the header states its length."""
    data_bytes = int(seconds * rate) * 2 * channels
    header = wav(np.zeros((1, channels), np.float32), rate)[:44]
    header = with_fmt_field(with_fmt_field(header, 40, "<I", data_bytes), 4, "<I", data_bytes + 36)
    yield _header(common_pb2.Audio(content=header, name_hint="two-hours.wav"))
    yield from _chunks(data_bytes, _pcm_block(rate, channels))


@dataclass(frozen=True)
class StreamCase:
    """One kind of AssessStream upload: the messages, the status, message words."""

    name: str
    messages: Callable[[], Iterator[gateway_pb2.AssessStreamRequest]]
    code: str
    words: tuple[str, ...]


def _short_pcm() -> bytes:
    return _pcm_block(size=16_000 * 2 * 3)


STREAM_CASES: tuple[StreamCase, ...] = (
    StreamCase("empty stream", lambda: iter(()), INVALID, ("without a header",)),
    StreamCase(
        "audio before the header",
        lambda: iter([_chunk(_short_pcm()), _pcm_header()]),
        INVALID,
        ("first message must be the header",),
    ),
    StreamCase(
        "two headers",
        lambda: iter([_pcm_header(), _chunk(_short_pcm()), _pcm_header()]),
        INVALID,
        ("second header",),
    ),
    StreamCase(
        "a message with neither header nor chunk",
        lambda: iter([_pcm_header(), gateway_pb2.AssessStreamRequest()]),
        INVALID,
        ("neither a header nor a chunk",),
    ),
    StreamCase(
        "PCM header without an encoding",
        lambda: iter([_pcm_header(encoding=common_pb2.PCM_ENCODING_UNSPECIFIED), _chunk(_short_pcm())]),
        INVALID,
        ("encoding",),
    ),
    StreamCase(
        "2 hours of 16 kHz PCM (limit 1200 s)",
        lambda: pcm_stream(2 * 3600),
        INVALID,
        ("passed 1200 s",),
    ),
    StreamCase(
        f"2 hours of 48 kHz stereo WAV (1.4 GB; limit {STREAM_LIMIT_MB} MiB)",
        lambda: wav_file_stream(2 * 3600),
        EXHAUSTED,
        (f"passed {STREAM_LIMIT_MB} mib",),
    ),
)


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


def multipart(fields: dict[str, str], audio: bytes | None, boundary: str = "muaalem-boundary") -> bytes:
    """A multipart/form-data body: text fields and an optional `audio` file part."""
    lines: list[bytes] = []
    for name, value in fields.items():
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
        ("surah 115",),
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
        "audio too short for the passage",
        "POST",
        "/v1/assess",
        lambda: json.dumps(request_json(assess_request(target_=target(2, 282, None)))).encode(),
        422,
        ("frames", "phonemes"),
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
    HttpCase("reference: surah not a number", "GET", "/v1/reference/anfal/75", None, 400, ("integer", "anfal")),
    HttpCase("reference: ayah 300 of al-Fatiha", "GET", "/v1/reference/1/300", None, 400, ("ayah 300",)),
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
