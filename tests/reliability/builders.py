"""The recitation, audio files made from it (honest or with lying headers), and Assess requests."""

from __future__ import annotations

import io
import struct
from functools import cache

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.config import MAX_STREAM_MB
from tests.conftest import AUDIO_DIR

# The sample recitation and the passage it recites (8:75 from imlaey word 17, 9 words).
SURAH, AYAH, WORDS = 8, 75, (17, 9)

# The status codes the cases expect, by name.
INVALID = "INVALID_ARGUMENT"
EXHAUSTED = "RESOURCE_EXHAUSTED"

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


def without(field: str) -> gateway_pb2.AssessRequest:
    request = assess_request()
    request.ClearField(field)
    return request


def with_options(**options: object) -> gateway_pb2.AssessRequest:
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




def f32(samples: npt.NDArray[np.floating]) -> bytes:
    return np.asarray(samples, dtype="<f4").tobytes()


def nan_wav() -> bytes:
    samples = recitation().copy()
    samples[1000] = np.nan
    return wav(samples, 16_000, "FLOAT")


def inf_wav() -> bytes:
    samples = recitation().copy()
    samples[2000] = np.inf
    return wav(samples, 16_000, "FLOAT")


def zero_rate_fields() -> bytes:
    return with_fmt_field(with_fmt_field(recitation_wav(), 28, "<I", 0), 32, "<H", 0)
