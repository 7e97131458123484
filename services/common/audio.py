"""Audio in any container or raw PCM, at any rate and channel count, to 16 kHz mono float32.

Every rejection raises InvalidArgument with a message that names the problem, so a caller
learns what to fix; nothing here trusts a header: durations are checked before decoding
where the container states them, and again while decoding where it does not.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

log = logging.getLogger(__name__)

TARGET_RATE = 16_000
# Telephone speech: below 8 kHz the fricatives and the bursts that tell letters apart are gone,
# so the model's answer would be noise that looks like an assessment.
MIN_RATE = 8_000
MAX_RATE = 768_000
MAX_CHANNELS = 64
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")

_PCM_LAYOUT: dict[str, tuple[str, float]] = {
    # encoding -> (numpy dtype, scale to [-1, 1])
    "S16LE": ("<i2", 1.0 / 32768.0),
    "S32LE": ("<i4", 1.0 / 2147483648.0),
    "F32LE": ("<f4", 1.0),
}
_PCM_ENCODINGS: dict[int, str] = {
    common_pb2.PCM_ENCODING_S16LE: "S16LE",
    common_pb2.PCM_ENCODING_S32LE: "S32LE",
    common_pb2.PCM_ENCODING_F32LE: "F32LE",
}


@dataclass(frozen=True)
class DecodedAudio:
    """16 kHz mono float32 samples and what the input was."""

    samples: npt.NDArray[np.float32]
    source_rate: int
    source_channels: int
    source_format: str

    @property
    def sample_rate(self) -> int:
        return TARGET_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / TARGET_RATE


def _describe(name_hint: str) -> str:
    return f" ({name_hint})" if name_hint else ""


def _check_duration(seconds: float, max_duration_s: float, name_hint: str) -> None:
    if seconds > max_duration_s:
        raise InvalidArgument(
            f"audio{_describe(name_hint)} is {seconds:.1f} s long, over the limit of "
            f"{max_duration_s:.0f} s for this call (long recitations go through the streaming upload)"
        )


def _check_rate(rate: int, name_hint: str) -> None:
    if rate < MIN_RATE or rate > MAX_RATE:
        low = rate < MIN_RATE
        advice = " (below 8 kHz the sounds that tell letters apart are lost: record at 16 kHz)" if low else ""
        raise InvalidArgument(
            f"audio{_describe(name_hint)} has a sample rate of {rate} Hz; supported rates are "
            f"{MIN_RATE}..{MAX_RATE} Hz{advice}"
        )


def _finish(
    frames: npt.NDArray[np.floating],
    rate: int,
    fmt: str,
    *,
    name_hint: str,
    max_duration_s: float,
    min_duration_s: float,
) -> DecodedAudio:
    """frames: (samples, channels). Checks, downmixes, resamples."""
    _check_rate(rate, name_hint)
    channels = frames.shape[1] if frames.ndim == 2 else 1
    if channels < 1 or channels > MAX_CHANNELS:
        raise InvalidArgument(f"audio{_describe(name_hint)} has {channels} channels; at most {MAX_CHANNELS}")
    if frames.shape[0] == 0:
        raise InvalidArgument(f"audio{_describe(name_hint)} contains no samples")
    _check_duration(frames.shape[0] / rate, max_duration_s, name_hint)
    if not np.isfinite(frames).all():
        raise InvalidArgument(f"audio{_describe(name_hint)} contains NaN or infinite samples")
    mono = frames.mean(axis=1) if frames.ndim == 2 else frames
    mono = mono.astype(np.float32, copy=False)
    if rate != TARGET_RATE:
        import soxr

        mono = soxr.resample(mono, rate, TARGET_RATE, quality="HQ").astype(np.float32, copy=False)
    duration = len(mono) / TARGET_RATE
    if duration < min_duration_s:
        raise InvalidArgument(
            f"audio{_describe(name_hint)} is {duration * 1000:.0f} ms long; "
            f"at least {min_duration_s * 1000:.0f} ms is needed"
        )
    return DecodedAudio(
        samples=np.ascontiguousarray(mono), source_rate=rate, source_channels=channels, source_format=fmt
    )


def decode_pcm(
    data: bytes,
    *,
    sample_rate_hz: int,
    channels: int,
    encoding: str,
    name_hint: str = "",
    max_duration_s: float = 120.0,
    min_duration_s: float = 0.0,
) -> DecodedAudio:
    """Raw interleaved PCM. `encoding` is S16LE, S32LE or F32LE."""
    if encoding not in _PCM_LAYOUT:
        raise InvalidArgument(f"raw PCM needs an encoding (one of {', '.join(_PCM_LAYOUT)}), got {encoding or 'none'}")
    channels = channels or 1
    if channels < 0 or channels > MAX_CHANNELS:
        raise InvalidArgument(f"raw PCM channel count {channels} is out of range 1..{MAX_CHANNELS}")
    if sample_rate_hz <= 0:
        raise InvalidArgument("raw PCM needs sample_rate_hz > 0")
    if not data:
        raise InvalidArgument("audio is empty (0 bytes)")
    frame_bytes = np.dtype(_PCM_LAYOUT[encoding][0]).itemsize * channels
    if len(data) % frame_bytes:
        raise InvalidArgument(
            f"raw PCM is {len(data)} bytes, not a whole number of {channels}-channel "
            f"{encoding} frames ({frame_bytes} bytes each)"
        )
    _check_duration(len(data) / frame_bytes / max(sample_rate_hz, 1), max_duration_s, name_hint)
    return _finish(
        pcm_frames(data, encoding, channels),
        sample_rate_hz,
        f"pcm_{encoding.lower()}",
        name_hint=name_hint,
        max_duration_s=max_duration_s,
        min_duration_s=min_duration_s,
    )


def pcm_frames(data: bytes, encoding: str, channels: int) -> npt.NDArray[np.float32]:
    """(frames, channels) float32 in [-1, 1] of interleaved PCM holding whole frames."""
    dtype, scale = _PCM_LAYOUT[encoding]
    return (np.frombuffer(data, dtype=dtype).astype(np.float32) * np.float32(scale)).reshape(-1, channels)


class PcmStream:
    """Raw PCM that arrives in pieces, as 16 kHz mono float32 pieces: laid end to end, the same
    samples decode_pcm gives for the whole (soxr's streaming resampler is the one-shot one run
    in pieces). The caller has checked the layout; every piece must hold whole frames."""

    def __init__(self, *, sample_rate_hz: int, channels: int, encoding: str) -> None:
        if encoding not in _PCM_LAYOUT:
            raise ValueError(f"unknown PCM encoding {encoding!r}")
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels or 1
        self.encoding = encoding
        self.frame_bytes = np.dtype(_PCM_LAYOUT[encoding][0]).itemsize * self.channels
        self.frames_in = 0
        self._resampler = None
        if sample_rate_hz != TARGET_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate_hz, TARGET_RATE, 1, dtype="float32", quality="HQ")

    def decode(self, data: bytes) -> npt.NDArray[np.float32]:
        if len(data) % self.frame_bytes:
            raise InvalidArgument(
                f"{len(data)} bytes are not a whole number of {self.channels}-channel {self.encoding} "
                f"frames ({self.frame_bytes} bytes each)"
            )
        frames = pcm_frames(data, self.encoding, self.channels)
        if not np.isfinite(frames).all():
            raise InvalidArgument("audio contains NaN or infinite samples")
        self.frames_in += frames.shape[0]
        mono = frames.mean(axis=1).astype(np.float32, copy=False)
        if self._resampler is None:
            return mono
        return np.asarray(self._resampler.resample_chunk(mono), dtype=np.float32)

    def flush(self) -> npt.NDArray[np.float32]:
        """What the resampler still holds, once no more audio comes."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)

    def output_samples(self, frames_in: int) -> int:
        """16 kHz samples that `frames_in` input frames make."""
        return round(frames_in * TARGET_RATE / self.sample_rate_hz)


def _decode_soundfile(data: bytes, name_hint: str, max_duration_s: float) -> tuple[npt.NDArray[np.float32], int, str]:
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as handle:
        if handle.samplerate > 0 and handle.frames > 0:
            # A header's rate field can lie: name a bad rate, not the duration it implies.
            _check_rate(int(handle.samplerate), name_hint)
            _check_duration(handle.frames / handle.samplerate, max_duration_s, name_hint)
        frames = handle.read(dtype="float32", always_2d=True)
        return frames, int(handle.samplerate), str(handle.format).lower()


def _decode_av(data: bytes, name_hint: str, max_duration_s: float) -> tuple[npt.NDArray[np.float32], int, str]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise InvalidArgument(f"file{_describe(name_hint)} has no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise InvalidArgument(f"audio{_describe(name_hint)} does not state its sample rate")
        resampler = av.AudioResampler(format="fltp")
        chunks: list[npt.NDArray[np.float32]] = []
        total = 0
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                block = converted.to_ndarray().astype(np.float32, copy=False)
                chunks.append(block)
                total += block.shape[1]
            # A tiny compressed file can expand to hours: stop as soon as it is too long.
            _check_duration(total / rate, max_duration_s, name_hint)
        if not chunks:
            raise InvalidArgument(f"audio{_describe(name_hint)} decodes to no samples")
        width = max(block.shape[0] for block in chunks)
        planar = np.concatenate([np.broadcast_to(b, (width, b.shape[1])) for b in chunks], axis=1)
        return planar.T, rate, str(container.format.name).split(",")[0]


def decode_bytes(
    data: bytes,
    *,
    name_hint: str = "",
    max_duration_s: float = 120.0,
    min_duration_s: float = 0.0,
) -> DecodedAudio:
    """A whole audio file: libsndfile first (wav, flac, ogg, mp3), then FFmpeg (m4a, opus...)."""
    if not data:
        raise InvalidArgument("audio is empty (0 bytes)")
    errors: list[str] = []
    for decoder in (_decode_soundfile, _decode_av):
        try:
            frames, rate, fmt = decoder(data, name_hint, max_duration_s)
        except InvalidArgument:
            raise
        except Exception as exc:
            # libsndfile names the in-memory buffer by its repr: a memory address, nothing to the caller.
            reason = _BUFFER_REPR.sub("the data", str(exc).strip()) or type(exc).__name__
            errors.append(f"{decoder.__name__.removeprefix('_decode_')}: {reason}")
            continue
        return _finish(
            frames,
            rate,
            fmt,
            name_hint=name_hint,
            max_duration_s=max_duration_s,
            min_duration_s=min_duration_s,
        )
    raise InvalidArgument(
        f"cannot decode the audio{_describe(name_hint)} ({len(data)} bytes): not a supported "
        f"audio file (wav, flac, ogg, mp3, m4a...) or damaged [{'; '.join(errors)}]"
    )


def pcm_encoding(value: int) -> str:
    """The proto's PcmEncoding as decode_pcm's name ("" when unset or unknown)."""
    return _PCM_ENCODINGS.get(value, "")


def pcm_bytes_per_second(layout: common_pb2.RawPcm) -> int:
    """Bytes one second of this raw PCM layout takes (0 when the layout is incomplete)."""
    encoding = pcm_encoding(layout.encoding)
    if not encoding or layout.sample_rate_hz <= 0 or layout.channels < 0:
        return 0
    width = np.dtype(_PCM_LAYOUT[encoding][0]).itemsize
    return width * max(layout.channels, 1) * layout.sample_rate_hz


def decode_raw_pcm(
    layout: common_pb2.RawPcm, data: bytes, *, name_hint: str, max_duration_s: float, min_duration_s: float
) -> DecodedAudio:
    """Raw PCM laid out as a RawPcm message says (its data may arrive separately, streamed)."""
    return decode_pcm(
        data,
        sample_rate_hz=layout.sample_rate_hz,
        channels=layout.channels,
        encoding=pcm_encoding(layout.encoding),
        name_hint=name_hint,
        max_duration_s=max_duration_s,
        min_duration_s=min_duration_s,
    )


def decode_message(message: common_pb2.Audio, *, max_duration_s: float, min_duration_s: float) -> DecodedAudio:
    """An Audio message (a file in any container, or raw PCM) as 16 kHz mono float32."""
    source = message.WhichOneof("source")
    if source == "content":
        return decode_bytes(
            message.content, name_hint=message.name_hint, max_duration_s=max_duration_s, min_duration_s=min_duration_s
        )
    if source == "pcm":
        return decode_raw_pcm(
            message.pcm,
            message.pcm.data,
            name_hint=message.name_hint,
            max_duration_s=max_duration_s,
            min_duration_s=min_duration_s,
        )
    raise InvalidArgument("audio is missing: set audio.content (a whole file) or audio.pcm (raw PCM)")


def peak_dbfs(samples: npt.NDArray[np.float32]) -> float:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return float("-inf") if peak <= 0 else 20.0 * float(np.log10(peak))
