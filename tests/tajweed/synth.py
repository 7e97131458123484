"""Synthetic inputs for the tajweed tests and the sweep benchmark: real references from the
gateway's builder, alignments with durations chosen by the test, decodes written by hand.

Durations follow the model the validators assume (one haraka per consonant + short vowel,
n harakat per n madd symbols, a ghunnah of 2 harakat plus its voweled letter, a doubled
consonant one consonant longer than a single one), so a test states the truth directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from quran_transcript import chunck_phonemes

from services.common import tensors
from services.common.pb import common_pb2, tajweed_pb2
from services.gateway.reference import builder, moshaf, targets
from services.tajweed import phonetics
from services.tajweed.config import TajweedConfig
from services.tajweed.convert import request_from_proto
from services.tajweed.core import TajweedValidator
from services.tajweed.model import ValidateResult

FRAME_S = 0.04
LEAD_S = 0.3


def _attributes(attrs: tuple[tuple[str, object], ...]) -> common_pb2.MoshafAttributes:
    proto = common_pb2.MoshafAttributes()
    for name, value in attrs:
        setattr(proto, name, value)
    return proto


@cache
def _reference(surah: int, ayah: int, attrs: tuple[tuple[str, object], ...]) -> bytes:
    values = moshaf.to_dict(_attributes(attrs))
    return builder.build_reference(targets.ayah_target(surah, ayah), values).SerializeToString()


def reference(surah: int, ayah: int, **attrs: object) -> common_pb2.Reference:
    """A fresh copy of the reference of one ayah (built once per arguments)."""
    return common_pb2.Reference.FromString(_reference(surah, ayah, tuple(sorted(attrs.items()))))


@cache
def _range_reference(surah: int, first: int, last: int, attrs: tuple[tuple[str, object], ...]) -> bytes:
    values = moshaf.to_dict(_attributes(attrs))
    return builder.build_reference(targets.ayah_range_target(surah, first, last), values).SerializeToString()


def range_reference(surah: int, first: int, last: int, **attrs: object) -> common_pb2.Reference:
    return common_pb2.Reference.FromString(_range_reference(surah, first, last, tuple(sorted(attrs.items()))))


@cache
def _words_reference(surah: int, ayah: int, start: int, count: int, attrs: tuple[tuple[str, object], ...]) -> bytes:
    values = moshaf.to_dict(_attributes(attrs))
    target = targets.word_range_target(surah, ayah, start, count)
    return builder.build_reference(target, values).SerializeToString()


def words_reference(surah: int, ayah: int, start: int, count: int, **attrs: object) -> common_pb2.Reference:
    return common_pb2.Reference.FromString(_words_reference(surah, ayah, start, count, tuple(sorted(attrs.items()))))


def group_index(ref: common_pb2.Reference, phonemes: str, occurrence: int = 0) -> int:
    """Index of the n-th group spelled `phonemes`."""
    hits = [i for i, g in enumerate(ref.groups) if g.phonemes == phonemes]
    return hits[occurrence]


def natural_durations(ref: common_pb2.Reference, haraka_s: float, consonant_s: float) -> list[float]:
    """Each group's duration as a reciter with this tempo would say it correctly."""
    out = []
    for g in ref.groups:
        text = g.phonemes
        core = text[0]
        count = len(text) - len(text.lstrip(core))
        voweled = text[-1] in phonetics.HARAKAT
        if core in phonetics.MADD_SYMBOLS:
            out.append(count * haraka_s)
        elif count >= 3 and (core in phonetics.NASAL_CORES or voweled):  # a ghunnah, then the voweled letter
            out.append(2 * haraka_s + (haraka_s if voweled else 0.0))
        elif count >= 3:  # a leen run: n - 1 letters for n harakat
            out.append(count * haraka_s)
        elif count == 2:
            out.append(haraka_s + consonant_s if voweled else 2 * consonant_s)
        elif voweled:
            out.append(haraka_s)
        else:
            out.append(consonant_s)
    return out


@dataclass
class Timing:
    alignment: common_pb2.Alignment
    duration_s: float
    onsets: list[float]
    # Where each group's sound ends (before any pause inserted after it).
    ends: list[float]


def alignment(
    ref: common_pb2.Reference,
    durations: Sequence[float],
    *,
    policy: str = "spiky",
    jitter_frames: float = 0.0,
    rng: np.random.Generator | None = None,
    lead_s: float = LEAD_S,
    pauses: Mapping[int, float] | None = None,
) -> Timing:
    """Tokens for each reference phoneme, groups lasting `durations` (seconds).

    policy "spiky": each token holds one frame at the start of its share of the group and
    the rest are blanks no token owns (as services/alignment reports CTC spans); "tiled":
    tokens cover their whole share. `jitter_frames`: SD of noise added to every group
    boundary, in frames. `pauses`: group index -> silence (s) inserted after that group.
    """
    boundaries = [lead_s]
    for i, d in enumerate(durations):
        boundaries.append(boundaries[-1] + d + (pauses or {}).get(i, 0.0))
    if jitter_frames and rng is not None:
        noise = rng.normal(0.0, jitter_frames * FRAME_S, size=len(boundaries))
        boundaries = [b + n for b, n in zip(boundaries, noise, strict=True)]
    tokens = []
    onsets = []
    ends = []
    previous_end = 0
    index = 0
    for gi, g in enumerate(ref.groups):
        start_s = boundaries[gi]
        end_s = start_s + durations[gi]
        ends.append(end_s)
        n = g.phoneme_end - g.phoneme_start
        share = (end_s - start_s) / n
        for k in range(n):
            t0 = start_s + k * share
            first = max(previous_end, round(t0 / FRAME_S))
            last = first + 1 if policy == "spiky" else max(first + 1, round((t0 + share) / FRAME_S))
            if k == 0:
                onsets.append(first * FRAME_S)
            p = ref.phonemes[index]
            tokens.append(
                common_pb2.AlignedToken(
                    phoneme=p,
                    id=ref.phoneme_ids[index],
                    phoneme_index=index,
                    span=common_pb2.FrameSpan(
                        start_frame=first, end_frame=last, start_s=first * FRAME_S, end_s=last * FRAME_S
                    ),
                    gop_posterior=0.9,
                    llr=2.0,
                )
            )
            previous_end = last
            index += 1
    total = previous_end * FRAME_S + lead_s
    return Timing(
        alignment=common_pb2.Alignment(
            tokens=tokens, num_frames=round(total / FRAME_S), frame_duration_s=FRAME_S, confidence=1.0
        ),
        duration_s=total,
        onsets=onsets,
        ends=ends,
    )


def envelope(timing: Timing, *, loud_db: float = -20.0, quiet_db: float = -80.0, hop_s: float = 0.01) -> np.ndarray:
    """An energy envelope that is loud while the groups sound and quiet elsewhere (pauses included)."""
    frames = round(timing.duration_s / hop_s) + 1
    db = np.full(frames, quiet_db, dtype=np.float32)
    starts = timing.onsets
    for i, end in enumerate(timing.ends):
        db[round(starts[i] / hop_s) : round(end / hop_s)] = loud_db
    return db


def replace_group(ref: common_pb2.Reference, group: int, text: str) -> str:
    """The reference phonemes with one group spelled differently (what a model might decode)."""
    g = ref.groups[group]
    return ref.phonemes[: g.phoneme_start] + text + ref.phonemes[g.phoneme_end :]


def decode(
    phonemes: str,
    *,
    prob: float = 0.95,
    sifat: Mapping[int, Mapping[str, tuple[str, float]]] | None = None,
) -> common_pb2.Decode:
    """A decode of `phonemes`: two frames per token, sifat from the symbols unless overridden."""
    tokens = [
        common_pb2.DecodedToken(phoneme=p, prob=prob, start_frame=2 * i, end_frame=2 * i + 1)
        for i, p in enumerate(phonemes)
    ]
    entries = []
    for i, chunk in enumerate(chunck_phonemes(phonemes) if phonemes else []):
        labels: dict[str, tuple[str, float]] = {
            "ghonna": ("maghnoon" if chunk[0] in phonetics.NASAL_CORES else "not_maghnoon", prob),
            "qalqla": ("moqalqal" if phonetics.QALQALAH_MARK in chunk else "not_moqalqal", prob),
        }
        labels.update((sifat or {}).get(i, {}))
        entries.append(
            common_pb2.Sifat(
                phonemes_group=chunk,
                **{level: common_pb2.SifaValue(label=label, prob=p) for level, (label, p) in labels.items()},
            )
        )
    return common_pb2.Decode(phonemes=phonemes, tokens=tokens, sifat=entries)


def energy(db: np.ndarray, hop_s: float) -> tajweed_pb2.EnergyEnvelope:
    return tajweed_pb2.EnergyEnvelope(hop_s=hop_s, db=tensors.to_proto(db, "float32"))


def request(
    ref: common_pb2.Reference,
    timing: Timing | None = None,
    dec: common_pb2.Decode | None = None,
    *,
    validators: Sequence[str] = (),
    tolerance: float | None = None,
    include_correct: bool = True,
    envelope: tajweed_pb2.EnergyEnvelope | None = None,
    is_complete: bool | None = None,
    duration_s: float | None = None,
) -> tajweed_pb2.ValidateRequest:
    options = tajweed_pb2.ValidateOptions(validators=list(validators), include_correct=include_correct)
    if tolerance is not None:
        options.madd_tolerance_harakat = tolerance
    req = tajweed_pb2.ValidateRequest(reference=ref, options=options)
    if timing is not None:
        req.alignment.CopyFrom(timing.alignment)
        req.audio_duration_s = timing.duration_s
    if duration_s is not None:
        req.audio_duration_s = duration_s
    if dec is not None:
        req.decode.CopyFrom(dec)
    if envelope is not None:
        req.energy.CopyFrom(envelope)
    if is_complete is not None:
        req.is_complete = is_complete
    return req


def validate(req: tajweed_pb2.ValidateRequest, config: TajweedConfig | None = None) -> ValidateResult:
    cfg = config or TajweedConfig()
    return TajweedValidator(cfg).validate(request_from_proto(req, cfg))
