"""Greedy CTC decode of every level, and the sifat of each decoded phoneme group.

Per level, vectorised over frames: the top-1 id per frame, runs of equal ids collapsed, blank
runs dropped; a token's probability is the mean top-1 probability over its run of frames, as in
quran_muaalem's `ctc_decode`. One deliberate difference: that function never emits a final
token whose run is a single last frame right after a blank (its loop stops one frame early);
here that token is kept, as CTC defines it.

Phonemes are grouped with quran-transcript's rule (`chunck_phonemes`: one or more copies of a
core letter plus at most one mark); sifa token i belongs to group i. When a sifa level decodes
to a different number of tokens than there are groups:

- with a reference (its phoneme groups and sifat, as `quran_phonetizer` gives them), and no more
  predicted groups than reference groups, the alignment is quran_muaalem's: the level's tokens
  are aligned to the reference sifat ids by edit distance, the predicted groups to the reference
  groups by their first phoneme, and group i gets the token aligned with its reference group.
  Where quran_muaalem then stores token ids as probabilities (a bug), the probabilities are
  kept; where it reports `[PAD]` for a reference group no token aligned to, the value is None;
- otherwise (no reference, or more predicted groups than reference groups, where quran_muaalem
  pairs by position) without a reference each group takes the sifa token whose frame span
  overlaps its own the most (ties to the earlier token); a group no token overlaps gets None.
  With a reference and more predicted than reference groups, pairing is by position as in
  quran_muaalem (groups past the level's last token get None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.errors import InvalidArgument

from .vocab import BLANK_ID, PHONEMES, Vocabulary

# Lowest log-probability kept (the wire floor, and the gap filler of chunking): float16 holds
# it exactly, and exp() of it is 0 to any precision used.
LOG_PROB_FLOOR = -1e4


@dataclass(frozen=True)
class Token:
    """One decoded token: its run of output frames is [start_frame, end_frame)."""

    phoneme: str
    id: int
    prob: float
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class SifaValue:
    label: str
    prob: float


@dataclass(frozen=True)
class GroupSifat:
    """A decoded phoneme group: its text, its tokens [token_start, token_end), its sifat."""

    phonemes: str
    token_start: int
    token_end: int
    sifat: Mapping[str, SifaValue | None]


@dataclass(frozen=True)
class DecodeResult:
    phonemes: str
    tokens: list[Token]
    groups: list[GroupSifat]
    # Per sifa level: "position", "reference" or "time" (how its tokens met the groups).
    sifa_alignment: dict[str, str] = field(default_factory=dict)
    # The phonemes decoded at the other frame phases (TranscribeOptions.frame_phases), phase 1 first.
    phase_phonemes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecodeReference:
    """What the recitation should be: per reference phoneme group its text and sifa labels."""

    groups: tuple[str, ...]
    labels: tuple[Mapping[str, str], ...]

    @classmethod
    def from_sifat(cls, sifat: Sequence[Any]) -> DecodeReference:
        """From quran_phonetizer's `sifat` (SifaOutput objects or their dicts)."""
        rows = [s if isinstance(s, Mapping) else s.model_dump() for s in sifat]
        for index, row in enumerate(rows):
            if not row.get("phonemes"):
                raise InvalidArgument(f"reference sifat entry {index} has no phonemes group")
        return cls(
            groups=tuple(str(row["phonemes"]) for row in rows),
            labels=tuple({k: str(v) for k, v in row.items() if k != "phonemes"} for row in rows),
        )


@dataclass(frozen=True)
class LevelRuns:
    """Greedy CTC tokens of one level as arrays."""

    ids: npt.NDArray[np.int64]
    probs: npt.NDArray[np.float64]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]


def greedy_runs(log_probs: npt.NDArray[np.floating], blank: int = BLANK_ID) -> LevelRuns:
    """(T, V) log-probabilities -> non-blank runs of the per-frame argmax."""
    if log_probs.ndim != 2:
        raise ValueError(f"expected (frames, vocabulary) log-probs, got shape {log_probs.shape}")
    frames = log_probs.shape[0]
    if frames == 0:
        empty = np.zeros(0, dtype=np.int64)
        return LevelRuns(empty, np.zeros(0), empty, empty)
    best = log_probs.argmax(axis=1)
    top = np.exp(np.take_along_axis(log_probs, best[:, None], axis=1)[:, 0].astype(np.float64))
    boundaries = np.flatnonzero(best[1:] != best[:-1]) + 1
    starts = np.concatenate(([0], boundaries)).astype(np.int64)
    ends = np.concatenate((boundaries, [frames])).astype(np.int64)
    cumulative = np.concatenate(([0.0], np.cumsum(top)))
    means = (cumulative[ends] - cumulative[starts]) / (ends - starts)
    keep = best[starts] != blank
    return LevelRuns(best[starts][keep].astype(np.int64), means[keep], starts[keep], ends[keep])


@cache
def _group_pattern() -> re.Pattern[str]:
    """chunck_phonemes' pattern, compiled once, to find each group's span in the string."""
    from quran_transcript.phonetics.sifa import phg

    core = "|".join(f"{re.escape(c)}+" for c in phg.core)
    return re.compile(f"((?:{core})[{re.escape(phg.residuals)}]?)")


def phoneme_groups(phonemes: str) -> list[tuple[str, int, int]]:
    """(text, start, end) character spans of chunck_phonemes' groups (one phoneme per char)."""
    return [(m.group(0), m.start(), m.end()) for m in _group_pattern().finditer(phonemes)]


def greedy_text(log_probs: npt.NDArray[np.floating], tokens: Sequence[str]) -> str:
    """The greedy CTC decode of one level as text (no timing, no sifat)."""
    return "".join(tokens[int(i)] for i in greedy_runs(np.asarray(log_probs)).ids)


def greedy_decode(
    log_probs: Mapping[str, npt.NDArray[np.floating]],
    vocab: Vocabulary,
    reference: DecodeReference | None = None,
    *,
    skip_sifat: bool = False,
) -> DecodeResult:
    """Decodes one utterance: log_probs maps level -> (T, V) over its valid frames."""
    if PHONEMES not in log_probs:
        raise ValueError("log_probs has no 'phonemes' level")
    runs = greedy_runs(np.asarray(log_probs[PHONEMES]))
    phoneme_tokens = vocab.tokens[PHONEMES]
    tokens = [
        Token(phoneme_tokens[int(i)], int(i), float(p), int(s), int(e))
        for i, p, s, e in zip(runs.ids, runs.probs, runs.starts, runs.ends, strict=True)
    ]
    text = "".join(t.phoneme for t in tokens)
    spans = phoneme_groups(text)
    levels = [] if skip_sifat else [lv for lv in vocab.sifa_levels if lv in log_probs]
    per_group: list[dict[str, SifaValue | None]] = [{} for _ in spans]
    how: dict[str, str] = {}
    if levels:
        group_frames = _group_frames(spans, runs)
        use_reference = reference is not None and 0 < len(spans) <= len(reference.groups)
        reference_mask = (
            _align_groups([g for g, _, _ in spans], reference.groups)
            if reference is not None and use_reference
            else None
        )
        for level in levels:
            level_runs = greedy_runs(np.asarray(log_probs[level]))
            labels = vocab.labels[level]
            if len(level_runs.ids) == len(spans):
                how[level] = "position"
                values = [SifaValue(labels[int(i)], float(p))
                          for i, p in zip(level_runs.ids, level_runs.probs, strict=True)]
                assigned: list[SifaValue | None] = list(values)
            elif reference is not None and reference_mask is not None:
                how[level] = "reference"
                reference_ids = _reference_ids(level, labels, reference)
                assigned = _by_reference(
                    level_runs, labels, reference_ids, reference_mask, len(spans)
                )
            elif reference is not None:
                how[level] = "position"
                assigned = [
                    SifaValue(labels[int(level_runs.ids[i])], float(level_runs.probs[i]))
                    if i < len(level_runs.ids) else None
                    for i in range(len(spans))
                ]
            else:
                how[level] = "time"
                assigned = _by_overlap(level_runs, labels, group_frames)
            for group, value in zip(per_group, assigned, strict=True):
                group[level] = value
    groups = [
        GroupSifat(phonemes=g, token_start=s, token_end=e, sifat=sifat)
        for (g, s, e), sifat in zip(spans, per_group, strict=True)
    ]
    return DecodeResult(phonemes=text, tokens=tokens, groups=groups, sifa_alignment=how)


def _reference_ids(level: str, labels: tuple[str, ...], reference: DecodeReference) -> list[int]:
    label_ids = {label: i for i, label in enumerate(labels) if i != BLANK_ID}
    ids = []
    for index, row in enumerate(reference.labels):
        label = row.get(level)
        if label not in label_ids:
            raise InvalidArgument(
                f"reference sifat entry {index}: {level}={label!r} is not one of {sorted(label_ids)}"
            )
        ids.append(label_ids[label])
    return ids


def _group_frames(
    spans: list[tuple[str, int, int]], runs: LevelRuns
) -> npt.NDArray[np.int64]:
    """(G, 2) frame span of each group: first token's start to last token's end."""
    if not spans:
        return np.zeros((0, 2), dtype=np.int64)
    first = np.array([s for _, s, _ in spans])
    last = np.array([e - 1 for _, _, e in spans])
    return np.stack((runs.starts[first], runs.ends[last]), axis=1)


def _by_overlap(
    runs: LevelRuns, labels: tuple[str, ...], group_frames: npt.NDArray[np.int64]
) -> list[SifaValue | None]:
    if len(group_frames) == 0:
        return []
    if len(runs.ids) == 0:
        return [None] * len(group_frames)
    # (G, N) overlap in frames between group spans and sifa token spans.
    overlap = np.minimum(group_frames[:, 1:2], runs.ends[None, :]) - np.maximum(
        group_frames[:, 0:1], runs.starts[None, :]
    )
    best = overlap.argmax(axis=1)
    has = overlap[np.arange(len(group_frames)), best] > 0
    return [
        SifaValue(labels[int(runs.ids[j])], float(runs.probs[j])) if ok else None
        for j, ok in zip(best, has, strict=True)
    ]


def _by_reference(
    runs: LevelRuns,
    labels: tuple[str, ...],
    reference_ids: list[int],
    reference_mask: list[bool],
    groups: int,
) -> list[SifaValue | None]:
    """quran_muaalem's two-step alignment (level to reference, reference to prediction)."""
    slots = _align_to_reference(reference_ids, [int(i) for i in runs.ids])
    kept = [slot for slot, keep in zip(slots, reference_mask, strict=True) if keep]
    values: list[SifaValue | None] = [
        SifaValue(labels[int(runs.ids[j])], float(runs.probs[j])) if j is not None else None
        for j in kept
    ]
    # At most one reference group per predicted group is kept; the groups after get None.
    return values + [None] * (groups - len(values))


def _edit_table(rows: Sequence[Any], cols: Sequence[Any]) -> npt.NDArray[np.int8]:
    """Choice table of quran_muaalem's edit-distance alignment: 3 diagonal (cost 0 on equal
    items, else 1), 1 skip a column (cost 0), 2 skip a row (cost 1); ties prefer 3, then 1.

    Row by row, each row vectorised: with free column skips a row's cost is the running
    minimum of its diagonal and row-skip costs, so one `minimum.accumulate` computes it.
    """
    n, m = len(rows), len(cols)
    choice = np.zeros((n + 1, m + 1), dtype=np.int8)
    if m == 0:
        return choice
    columns = np.asarray(cols)
    previous = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        diagonal = previous[:-1] + (columns != rows[i - 1])
        skip_row = previous[1:] + 1
        current = np.minimum.accumulate(np.concatenate(([i], np.minimum(diagonal, skip_row))))
        skip_col = current[:-1]
        choice[i, 1:] = np.where(
            (diagonal <= skip_col) & (diagonal <= skip_row), 3, np.where(skip_col <= skip_row, 1, 2)
        )
        previous = current
    return choice


def _align_groups(predicted: Sequence[str], reference: Sequence[str]) -> list[bool]:
    """Per reference group: whether a predicted group is aligned to it (first phonemes compared).

    Its length is len(reference); it has at most len(predicted) True values.
    """
    if len(predicted) == len(reference):
        return [True] * len(reference)
    choice = _edit_table([g[0] for g in predicted], [g[0] for g in reference])
    i, j = len(predicted), len(reference)
    mask: list[bool] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and choice[i, j] == 3:
            mask.append(True)
            i, j = i - 1, j - 1
        elif (i > 0 and j > 0 and choice[i, j] == 2) or j == 0:
            i -= 1
        else:
            mask.append(False)
            j -= 1
    return mask[::-1]


def _align_to_reference(reference: Sequence[int], predicted: Sequence[int]) -> list[int | None]:
    """Per reference position: the index of the predicted token aligned to it, or None."""
    if len(reference) == len(predicted):
        return list(range(len(predicted)))
    if not predicted:
        return [None] * len(reference)
    choice = _edit_table(reference, predicted)
    i, j = len(reference), len(predicted)
    slots: list[int | None] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and choice[i, j] == 3:
            slots.append(j - 1)
            i, j = i - 1, j - 1
        elif (i > 0 and j > 0 and choice[i, j] == 2) or j == 0:
            slots.append(None)
            i -= 1
        else:
            j -= 1
    return slots[::-1]
