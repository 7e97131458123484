"""The benchmark's recitations: real recordings cut or looped to 5, 15 and 30 s, each with the
passage it holds as the assessment's target.

Each clip is sent as a WAV file at its recording's own rate and channels (the gateway's audio
stage decodes and resamples it, as for a learner's upload); the peer and the engine-level
sections get the same audio as 16 kHz mono float32, decoded by services.common.audio.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.common import ROOT
from services.common import audio
from services.common.pb import asr_pb2, common_pb2, gateway_pb2

AUDIO_DIR = ROOT / "tests" / "data" / "audio"
SAMPLE = ROOT / "services" / "gateway" / "samples" / "test.wav"
# What the recordings' reciters read (the quran-muaalem fixture's attributes for test.wav).
MOSHAF: dict[str, Any] = {
    "madd_monfasel_len": 2,
    "madd_mottasel_len": 4,
    "madd_mottasel_waqf": 4,
    "madd_aared_len": 2,
}


@dataclass(frozen=True)
class ClipSpec:
    seconds: float
    recording: str
    surah: int
    ayah: int
    # (first imlaey word, count) or None
    words: tuple[int, int] | None = None
    last_ayah: int | None = None

    @property
    def target_label(self) -> str:
        if self.words is not None:
            first, count = self.words
            return f"{self.surah}:{self.ayah} words {first}-{first + count - 1}"
        if self.last_ayah is not None:
            return f"{self.surah}:{self.ayah}-{self.last_ayah}"
        return f"{self.surah}:{self.ayah}"


# test.wav is 8:75 from imlaey word 17 into 9:1 (8.8 s; its first 5 s hold five words);
# 002282_15.wav the first 15 s of 2:282 (about 15 words); the Fatiha track 27 s of 1:1-7.
SPECS: dict[float, ClipSpec] = {
    5.0: ClipSpec(5.0, "test.wav", 8, 75, words=(17, 5)),
    15.0: ClipSpec(15.0, "002282_15.wav", 2, 282, words=(0, 16)),
    30.0: ClipSpec(30.0, "fatiha_long_track.wav", 1, 1, last_ayah=7),
}


@dataclass(frozen=True)
class Clip:
    spec: ClipSpec
    source: str
    how: str
    wav: bytes
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return self.spec.seconds

    @property
    def name(self) -> str:
        return f"{self.spec.seconds:g} s"

    def assess_request(self, *, include_details: bool = False) -> gateway_pb2.AssessRequest:
        from services.client.options import build_request

        request: gateway_pb2.AssessRequest = build_request(
            self.wav,
            surah=self.spec.surah,
            ayah=self.spec.ayah,
            words=self.spec.words,
            last_ayah=self.spec.last_ayah,
            moshaf=MOSHAF,
            name_hint=self.source,
            # Random dev weights never decode the passage: without this the rules would be skipped.
            run_rules_on_mismatch=True,
            include_details=include_details,
        )
        return request

    def transcribe_request(self) -> asr_pb2.TranscribeRequest:
        return asr_pb2.TranscribeRequest(audio=common_pb2.Audio(content=self.wav, name_hint=self.source))

    def reference_text(self) -> tuple[str, dict[str, Any]]:
        """The passage's Uthmani text and the full MoshafAttributes the gateway resolves, for
        the peer, which phonetizes its own reference (it needs one to decode the sifat)."""
        return _reference_text(self.spec)


@cache
def _reference_text(spec: ClipSpec) -> tuple[str, dict[str, Any]]:
    from services.gateway.reference import builder, targets
    from services.gateway.reference import moshaf as moshaf_mod

    if spec.words is not None:
        target = targets.word_range_target(spec.surah, spec.ayah, *spec.words)
    elif spec.last_ayah is not None:
        target = targets.ayah_range_target(spec.surah, spec.ayah, spec.last_ayah)
    else:
        target = targets.ayah_target(spec.surah, spec.ayah)
    values = moshaf_mod.to_dict(common_pb2.MoshafAttributes(**MOSHAF))
    return builder.build_reference(target, values).uthmani, values


def _fitted(data: np.ndarray, frames: int) -> np.ndarray:
    """`frames` frames of `data`, cut, or looped when it is shorter."""
    repeats = -(-frames // data.shape[0])
    return np.concatenate([data] * repeats, axis=0)[:frames]


@cache
def clip(seconds: float) -> Clip:
    spec = SPECS.get(seconds) or SPECS[min(SPECS, key=lambda s: abs(s - seconds))]
    spec = ClipSpec(seconds, spec.recording, spec.surah, spec.ayah, spec.words, spec.last_ayah)
    path = AUDIO_DIR / spec.recording
    if not path.is_file():
        # A recording missing from tests/data: the sample shipped with the gateway, looped.
        path = SAMPLE
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    total = data.shape[0] / rate
    frames = round(seconds * rate)
    fitted = _fitted(data, frames)
    if total >= seconds:
        how = f"first {seconds:g} s of {path.name}"
    else:
        how = f"{path.name} ({total:.1f} s) looped to {seconds:g} s"
    buffer = io.BytesIO()
    sf.write(buffer, fitted, rate, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    samples = audio.decode_bytes(wav, name_hint=path.name, max_duration_s=3600).samples
    samples.setflags(write=False)
    channels = "mono" if data.shape[1] == 1 else f"{data.shape[1]} channels"
    return Clip(spec, path.name, f"{how} ({rate // 1000} kHz {channels})", wav, samples)


def describe(clips: list[Clip]) -> list[str]:
    from bench.common import table

    rows = [[c.name, c.how, c.spec.target_label] for c in clips]
    return table(["clip", "audio", "target"], rows)


def write_npy(clip_: Clip, directory: Path) -> Path:
    path = directory / f"clip-{clip_.seconds:g}s.npy"
    if not path.exists():
        np.save(path, np.asarray(clip_.samples, dtype=np.float32))
    return path
