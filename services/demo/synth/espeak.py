"""espeak-ng's Arabic voice, one syllable at a time, cached per voice.

Syllables are written as vowelled Arabic letters (`بَ`, `بْ`): espeak-ng reads those as the
sounds they spell, so no table of its phoneme mnemonics is needed. A voice is the Arabic voice
with an espeak-ng variant (`ar+m3`), a pitch and a speaking rate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from services.common.errors import FailedPrecondition, InvalidArgument

from .dsp import Audio, resample, trim

# Variants of the Arabic voice that stay intelligible (checked by ear and by the demo model).
VOICES: tuple[str, ...] = ("ar", "ar+m1", "ar+m3", "ar+m5", "ar+m7", "ar+f2", "ar+f4", "ar+klatt")


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: variant name, pitch (0-99) and rate (words per minute)."""

    name: str = "ar"
    pitch: int = 50
    rate: int = 150

    def __post_init__(self) -> None:
        if self.name.split("+")[0] != "ar":
            raise InvalidArgument(f"voice {self.name!r}: only the Arabic voice (ar, ar+VARIANT) recites")
        if not 0 <= self.pitch <= 99:
            raise InvalidArgument(f"voice pitch {self.pitch}: must be 0..99")
        if not 80 <= self.rate <= 400:
            raise InvalidArgument(f"voice rate {self.rate}: must be 80..400 words per minute")

    @classmethod
    def parse(cls, spec: str) -> Voice:
        """`NAME[:PITCH[:RATE]]`, e.g. `ar+m3:40:160`."""
        parts = spec.split(":")
        try:
            numbers = [int(p) for p in parts[1:]]
        except ValueError as exc:
            raise InvalidArgument(f"voice {spec!r}: expected NAME[:PITCH[:RATE]]") from exc
        return cls(parts[0], *numbers)


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise FailedPrecondition("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    return path


class SyllableBank:
    """Renders and caches trimmed 16 kHz clips of short vowelled texts for one voice."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self._clips: dict[str, Audio] = {}
        self._lock = threading.Lock()

    def clip(self, text: str) -> Audio:
        with self._lock:
            cached = self._clips.get(text)
        if cached is not None:
            return cached
        audio = trim(self._render(text))
        with self._lock:
            self._clips[text] = audio
        return audio

    def _render(self, text: str) -> Audio:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "u.wav"
            command = [
                espeak_binary(), "-v", self.voice.name, "-p", str(self.voice.pitch),
                "-s", str(self.voice.rate), "-w", str(out), text,
            ]
            subprocess.run(command, check=True, capture_output=True, timeout=30)
            samples, rate = soundfile.read(out, dtype="float32")
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        return resample(np.asarray(samples, dtype=np.float32), int(rate))


_BANKS: dict[Voice, SyllableBank] = {}
_BANKS_LOCK = threading.Lock()


def bank_for(voice: Voice) -> SyllableBank:
    with _BANKS_LOCK:
        bank = _BANKS.get(voice)
        if bank is None:
            bank = _BANKS[voice] = SyllableBank(voice)
        return bank
