"""Synthetic inputs for the tajweed tests and the sweep benchmark: real references from the
gateway's builder, alignments with durations chosen by the test, decodes written by hand.

Durations follow the model the validators assume (one haraka per consonant + short vowel,
n harakat per n madd symbols, a ghunnah of 2 harakat plus its voweled letter, a doubled
consonant one consonant longer than a single one), so a test states the truth directly.
"""

from __future__ import annotations

import itertools
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


# A voweled letter's consonant takes this share of its haraka, the vowel the rest (the
# synthetic reciter's vowel is at least half of it); a qalqalah release lasts at most 70 ms.
ONSET_SHARE = 0.4
RELEASE_S = 0.07
VOWELS = phonetics.HARAKAT | phonetics.MADD_SYMBOLS | {phonetics.PH.fatha_momala, phonetics.PH.dama_mokhtalasa}


@dataclass
class Timing:
    alignment: common_pb2.Alignment
    duration_s: float
    # Each group's first token time, where its sound starts, and where it ends (before any
    # pause inserted after it).
    onsets: list[float]
    starts: list[float]
    ends: list[float]
    # The truth of every phoneme: where it sounds, (start, end) in seconds.
    phonemes: list[tuple[float, float]]
    symbols: str = ""


def _is_vowel_run(text: str) -> bool:
    """A group whose every symbol is a vowel sound: a madd, or the yaa/waw run of a leen."""
    core, count = text[0], len(text) - len(text.lstrip(text[0]))
    leen = count >= 3 and count == len(text) and core in phonetics.IDGHAM_GHUNNAH_CORES
    return core in phonetics.MADD_SYMBOLS or leen


def _letter_s(ref: common_pb2.Reference, durations: Sequence[float]) -> float:
    """The haraka the durations were drawn with: the median voweled single letter."""
    letters = [
        d for g, d in zip(ref.groups, durations, strict=True)
        if len(g.phonemes) == 2 and g.phonemes[0] in phonetics.CONSONANTS and g.phonemes[1] in VOWELS
    ]
    return float(np.median(letters)) if letters else max(durations)


def phoneme_truth(text: str, start: float, duration: float, letter_s: float) -> list[tuple[float, float]]:
    """Where each phoneme of a group sounds, the model the validators assume (tempo.py):
    a voweled letter is its consonant's onset and its vowel, one haraka in all; the copies
    before it (shadda, ghunnah) share the rest of the group, its hold; a madd's or leen's
    symbols share the group equally; an unvoweled letter's copies share it, after any
    qalqalah release or sakt mark is given its own short end."""
    n = len(text)
    if _is_vowel_run(text):
        bounds = [start + duration * k / n for k in range(n + 1)]
        return list(itertools.pairwise(bounds))
    if text[-1] in VOWELS:
        letter = min(letter_s, duration)
        copies = n - 1
        hold = (duration - letter) / (copies - 1) if copies > 1 else 0.0
        pieces = [hold] * (copies - 1) + [ONSET_SHARE * letter, (1 - ONSET_SHARE) * letter]
    else:
        core = text[0]
        copies = len(text) - len(text.lstrip(core))
        mark = min(RELEASE_S, duration / 3) if copies < n else 0.0
        pieces = [(duration - mark) / copies] * copies + ([mark] if copies < n else [])
    bounds = [start, *(start + x for x in itertools.accumulate(pieces))]
    return list(itertools.pairwise(bounds))


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

    Each phoneme sounds where phoneme_truth puts it; its token holds:
    - "spiky": one frame at the start of its sound, the rest blanks no token owns (as
      services/alignment reports the spans of a peaky CTC model);
    - "tiled": frames covering its whole sound;
    - "late": consonants as "spiky", but the vowels of each nucleus (a short vowel and the
      madd after it) spike at its very end, one frame each with a blank between: a CTC
      model that emits a held vowel only as it ends.
    `jitter_frames`: SD of noise added to every group boundary, in frames. `pauses`: group
    index -> silence (s) inserted after that group.
    """
    boundaries = [lead_s]
    for i, d in enumerate(durations):
        boundaries.append(boundaries[-1] + d + (pauses or {}).get(i, 0.0))
    if jitter_frames and rng is not None:
        noise = rng.normal(0.0, jitter_frames * FRAME_S, size=len(boundaries))
        boundaries = [b + n for b, n in zip(boundaries, noise, strict=True)]
    letter_s = _letter_s(ref, durations)
    truth: list[tuple[float, float]] = []
    vowel: list[bool] = []
    for gi, g in enumerate(ref.groups):
        truth.extend(phoneme_truth(g.phonemes, boundaries[gi], durations[gi], letter_s))
        run = _is_vowel_run(g.phonemes)
        vowel.extend(run or p in VOWELS for p in g.phonemes)
    frames = _frames(truth, vowel, policy)
    tokens = []
    for index, (first, last) in enumerate(frames):
        tokens.append(
            common_pb2.AlignedToken(
                phoneme=ref.phonemes[index],
                id=ref.phoneme_ids[index],
                phoneme_index=index,
                span=common_pb2.FrameSpan(
                    start_frame=first, end_frame=last, start_s=first * FRAME_S, end_s=last * FRAME_S
                ),
                gop_posterior=0.9,
                llr=2.0,
            )
        )
    onsets = [frames[g.phoneme_start][0] * FRAME_S for g in ref.groups]
    starts = [boundaries[gi] for gi in range(len(ref.groups))]
    ends = [boundaries[gi] + durations[gi] for gi in range(len(ref.groups))]
    total = max(frames[-1][1] * FRAME_S, ends[-1]) + lead_s
    return Timing(
        alignment=common_pb2.Alignment(
            tokens=tokens, num_frames=round(total / FRAME_S), frame_duration_s=FRAME_S, confidence=1.0
        ),
        duration_s=total,
        onsets=onsets,
        starts=starts,
        ends=ends,
        phonemes=truth,
        symbols=ref.phonemes,
    )


def _frames(truth: Sequence[tuple[float, float]], vowel: Sequence[bool], policy: str) -> list[tuple[int, int]]:
    """Each token's [first, last) frames under a placement policy (see alignment)."""
    if policy not in ("spiky", "tiled", "late"):
        raise ValueError(f"unknown policy {policy!r}")
    wanted: list[int] = [round(start / FRAME_S) for start, _ in truth]
    if policy == "late":
        index = 0
        while index < len(truth):
            if not vowel[index]:
                index += 1
                continue
            end = index
            while end < len(truth) and vowel[end]:
                end += 1
            last_frame = round(truth[end - 1][1] / FRAME_S) - 1
            for k in range(index, end):
                wanted[k] = last_frame - 2 * (end - 1 - k)
            index = end
    frames: list[tuple[int, int]] = []
    previous_end = 0
    for k, (_, end_s) in enumerate(truth):
        first = max(previous_end, wanted[k])
        last = max(first + 1, round(end_s / FRAME_S)) if policy == "tiled" else first + 1
        frames.append((first, last))
        previous_end = last
    return frames


def envelope(
    timing: Timing,
    *,
    loud_db: float = -20.0,
    quiet_db: float = -80.0,
    closure_db: float = -45.0,
    hop_s: float = 0.01,
) -> np.ndarray:
    """An energy envelope that is loud while the groups sound and quiet elsewhere (pauses included);
    a qalqalah letter is its closure (`closure_db`) and then its release, loud again."""
    frames = round(timing.duration_s / hop_s) + 1
    db = np.full(frames, quiet_db, dtype=np.float32)
    for start, end in zip(timing.starts, timing.ends, strict=True):
        db[round(start / hop_s) : round(end / hop_s)] = loud_db
    for k in range(len(timing.symbols) - 1):
        if timing.symbols[k + 1] == phonetics.QALQALAH_MARK:
            start, end = timing.phonemes[k]
            db[round(start / hop_s) : round(end / hop_s)] = closure_db
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
