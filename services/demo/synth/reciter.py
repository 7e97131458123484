"""The synthetic reciter: an ayah (or a range) recited from its phonetic script, with the truth.

The truth says what was actually recited: the phonemes and groups with their times, each
group's sifat and reference word, the reference words with their times (absent when dropped),
and the mistakes with the words they are in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

from . import mistakes as mistakes_mod
from .dsp import RATE, Audio
from .espeak import Voice, bank_for
from .render import render
from .script import Group, groups_of, reference_for

TEMPO_RANGE = (0.1, 1.0)


@dataclass(frozen=True)
class Spec:
    surah: int
    ayah: int
    last_ayah: int = 0
    moshaf: dict[str, Any] = field(default_factory=dict)
    tempo: float = 0.3
    voice: Voice = field(default_factory=Voice)
    mistakes: tuple[mistakes_mod.Mistake, ...] = ()
    # (start_word, word_count) of the ayah instead of the whole ayah.
    words: tuple[int, int] | None = None
    # A floor of white noise this many dB under the speech (a room, a microphone): the demo model
    # was trained on renderings with 25-50 dB of it, never on digital silence. None: none.
    snr_db: float | None = 40.0

    def __post_init__(self) -> None:
        if not TEMPO_RANGE[0] <= self.tempo <= TEMPO_RANGE[1]:
            raise InvalidArgument(f"tempo {self.tempo} s/haraka: must be within {TEMPO_RANGE[0]}..{TEMPO_RANGE[1]}")


@dataclass
class Recitation:
    samples: Audio
    rate: int
    reference: common_pb2.Reference
    groups: list[Group]
    truth: dict[str, Any]

    @property
    def phonemes(self) -> str:
        return "".join(g.phonemes for g in self.groups)

    def write(self, wav_path: str | Path) -> Path:
        """Writes OUT.wav and OUT.truth.json beside it; returns the truth's path."""
        wav = Path(wav_path)
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, self.samples, self.rate, subtype="PCM_16")
        truth_path = truth_path_for(wav)
        truth_path.write_text(json.dumps(self.truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return truth_path


def truth_path_for(wav: str | Path) -> Path:
    path = Path(wav)
    return path.with_name(path.stem + ".truth.json")


def _stops(groups: Sequence[Group], reference: common_pb2.Reference) -> list[int]:
    """Group indexes that end an ayah (a stop pause follows them in a range)."""
    ayah_of = [int(w.ayah) for w in reference.words]
    stops = []
    for i, g in enumerate(groups[:-1]):
        nxt = groups[i + 1]
        known = g.word_index < len(ayah_of) and nxt.word_index < len(ayah_of)
        if known and ayah_of[g.word_index] != ayah_of[nxt.word_index]:
            stops.append(i)
    return stops


def recite(spec: Spec) -> Recitation:
    reference = reference_for(spec.surah, spec.ayah, spec.last_ayah, spec.moshaf, spec.words)
    groups = groups_of(reference)
    applied: list[mistakes_mod.Applied] = []
    seen_words: set[int] = set()
    for mistake in spec.mistakes:
        if mistake.word_index in seen_words:
            raise InvalidArgument(f"two mistakes in word {mistake.word_index}: one mistake per word")
        seen_words.add(mistake.word_index)
        groups, change = mistakes_mod.apply(groups, mistake, len(reference.words))
        applied.append(change)
    rendering = render(groups, bank_for(spec.voice), spec.tempo, _stops(groups, reference))
    if spec.snr_db is not None:
        rendering.samples = add_noise(rendering.samples, spec.snr_db, seed=_seed(spec))
    truth = _truth(spec, reference, groups, rendering, applied)
    return Recitation(rendering.samples, RATE, reference, groups, truth)


def _truth(spec: Spec, reference: common_pb2.Reference, groups: list[Group], rendering: Any,
           applied: list[mistakes_mod.Applied]) -> dict[str, Any]:
    word_spans: dict[int, list[float]] = {}
    truth_groups: list[dict[str, Any]] = []
    phonemes: list[dict[str, Any]] = []
    for g, (start, end), times in zip(groups, rendering.group_spans, rendering.phoneme_spans, strict=True):
        if g.reference_index >= 0:
            span = word_spans.setdefault(g.word_index, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
        truth_groups.append({
            "phonemes": g.phonemes, "start_s": round(start, 4), "end_s": round(end, 4),
            "word_index": g.word_index, "reference_group": g.reference_index,
            "sifat": {k: v for k, v in g.sifat.items() if k != "phonemes_group"},
        })
        phonemes.extend({"symbol": t.symbol, "start_s": round(t.start, 4), "end_s": round(t.end, 4)} for t in times)
    words = []
    for index, w in enumerate(reference.words):
        found = word_spans.get(index)
        span = found if found is not None else []
        words.append({
            "index": index, "uthmani": w.uthmani, "surah": int(w.surah), "ayah": int(w.ayah),
            "recited": found is not None,
            "start_s": round(span[0], 4) if span else None, "end_s": round(span[1], 4) if span else None,
        })
    return {
        "surah": spec.surah, "ayah": spec.ayah, "last_ayah": spec.last_ayah or spec.ayah,
        "moshaf": dict(spec.moshaf), "tempo_s_per_haraka": spec.tempo,
        "voice": {"name": spec.voice.name, "pitch": spec.voice.pitch, "rate": spec.voice.rate},
        "snr_db": spec.snr_db,
        "sample_rate": RATE, "duration_s": round(len(rendering.samples) / RATE, 4),
        "reference_phonemes": reference.phonemes,
        "phonemes": "".join(g.phonemes for g in groups),
        "groups": truth_groups, "phoneme_times": phonemes, "words": words,
        "mistakes": [
            {"kind": a.kind, "word_index": a.word_index, "word": reference.words[a.word_index].uthmani,
             "reference": a.reference, "recited": a.recited, "detail": a.detail}
            for a in applied
        ],
    }


def _seed(spec: Spec) -> int:
    """The same recitation gets the same noise (stable across runs and processes)."""
    import zlib

    key = f"{spec.surah}:{spec.ayah}:{spec.last_ayah}:{spec.tempo}:{spec.voice}:{spec.mistakes}:{spec.words}"
    return zlib.crc32(key.encode())


def add_noise(samples: Audio, snr_db: float, seed: int) -> Audio:
    power = float(np.mean(np.square(samples, dtype=np.float64))) or 1e-6
    noise = np.random.default_rng(seed).standard_normal(len(samples)).astype(np.float32)
    return (samples + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))).astype(np.float32)


def to_pcm16(samples: Audio) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
