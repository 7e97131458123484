"""Bad input over AssessStream: uploads that lie about their size, format or order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from services.common.pb import common_pb2, gateway_pb2
from tests.reliability.builders import (
    EXHAUSTED,
    INVALID,
    STREAM_LIMIT_MB,
    assess_request,
    recitation,
    resampled,
    wav,
    with_fmt_field,
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
