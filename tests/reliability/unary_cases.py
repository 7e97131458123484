"""Bad (and unusual but valid) input over unary Assess: each case names what it sends, the status
it must get and words its message must contain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.common.pb import common_pb2, gateway_pb2
from tests.conftest import AUDIO_DIR
from tests.reliability.builders import (
    EXHAUSTED,
    INVALID,
    assess_request,
    f32,
    inf_wav,
    nan_wav,
    noise,
    pcm_request,
    recitation,
    recitation_wav,
    resampled,
    target,
    wav,
    with_fmt_field,
    with_options,
    without,
    zero_rate_fields,
)


@dataclass(frozen=True)
class Case:
    """One kind of bad input over unary Assess: the request, the status and message words."""

    name: str
    build: Callable[[], gateway_pb2.AssessRequest]
    code: str
    words: tuple[str, ...]



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
    Case("float WAV with a NaN sample", lambda: assess_request(nan_wav()), INVALID, ("nan",)),
    Case("float WAV with an infinite sample", lambda: assess_request(inf_wav()), INVALID, ("infinite",)),
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
        lambda: pcm_request(f32(recitation()), 16_000, 1, common_pb2.PCM_ENCODING_UNSPECIFIED),
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
        lambda: pcm_request(f32(recitation()), 0, 1, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("sample_rate_hz",),
    ),
    Case(
        "raw PCM: 100 channels",
        lambda: pcm_request(f32(np.zeros(3_200 * 100)), 16_000, 100, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("channel count 100",),
    ),
    Case(
        "raw PCM: 5 MHz sample rate",
        lambda: pcm_request(f32(noise(1.0)), 5_000_000, 1, common_pb2.PCM_ENCODING_F32LE),
        INVALID,
        ("5000000 hz", "supported"),
    ),
    # What should have been recited.
    Case("missing audio", lambda: without("audio"), INVALID, ("audio is missing",)),
    Case("missing target", lambda: without("target"), INVALID, ("target is missing",)),
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
    # 8:75 recited, 2:282 (the longest ayah) named: the recitation is followed by its stretches,
    # none of which is 2:282, so this is a content mismatch (it was the aligner's refusal of a
    # passage too long for the audio when the whole file was aligned against the whole ayah).
    Case(
        "8.8 s of another ayah sent for 2:282, the longest ayah",
        lambda: assess_request(target_=target(2, 282, None)),
        "OK",
        ("content_status_mismatch",),
    ),
    # int32 extremes (issue 26: no field's range may end in INTERNAL).
    Case("surah 2^31-1", lambda: assess_request(target_=target(2**31 - 1, 1, None)), INVALID, ("surah", "1..114")),
    Case("surah -2^31", lambda: assess_request(target_=target(-(2**31), 1, None)), INVALID, ("surah", "1..114")),
    Case("ayah 2^31-1", lambda: assess_request(target_=target(8, 2**31 - 1, None)), INVALID, ("ayah", "1..75")),
    Case(
        "start_word 2^31-1",
        lambda: assess_request(target_=target(8, 75, (2**31 - 1, 1))),
        INVALID,
        ("start_word", "0..21"),
    ),
    Case(
        "word_count 2^31-1",
        lambda: assess_request(target_=target(8, 75, (17, 2**31 - 1))),
        INVALID,
        ("word_count", "1..6500"),
    ),
    Case(
        "last_ayah 2^31-1",
        lambda: assess_request(
            target_=common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=2, first_ayah=1, last_ayah=2**31 - 1))
        ),
        INVALID,
        ("last_ayah", "1..286"),
    ),
    Case(
        "moshaf: madd_monfasel_len -2^31",
        lambda: assess_request(moshaf={"madd_monfasel_len": -(2**31)}),
        INVALID,
        ("madd_monfasel_len", "valid: 2, 3, 4, 5"),
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
    Case("content_threshold 1.5", lambda: with_options(content_threshold=1.5), INVALID, ("content_threshold",)),
    Case(
        "unknown validator",
        lambda: with_options(validators=["madd", "vibrato"]),
        INVALID,
        ("validators", "vibrato"),
    ),
    Case("negative band_frames", lambda: with_options(band_frames=-5), INVALID, ("band_frames",)),
    Case(
        "NaN default_threshold",
        lambda: with_options(default_threshold=float("nan")),
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
    ValidAudio("header: byte rate and block align fields 0", zero_rate_fields),
)
