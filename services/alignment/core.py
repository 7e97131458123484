"""The alignment core: validate, force-align the reference, score every token, roll up.

Transport-free: plain numpy in, plain dataclasses of numpy arrays out, services.common.errors
raised for bad input. The servicer converts protobuf on either side.

Spans. A token's span is the run of frames where the best path sits on that token's
(non-blank) state: [start, end) in frames, never empty, in reference order, never
overlapping. Blank frames between two tokens belong to neither token: they are the gap
[tokens[k].end, tokens[k + 1].start). A group's or word's span runs from the start of its
first token to the end of its last, so blanks inside it (between the alifs of a madd,
between a letter and its haraka) count towards its duration and blanks around it do not.
A consumer that wants spans tiling the audio can split each gap at its midpoint. A word
with an empty phoneme range gets an empty span placed at the end of the token before it
(frame 0 when there is none).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.alignment.confidence import score_tokens
from services.alignment.config import AlignmentConfig
from services.alignment.thresholds import ThresholdTable, call_table, load_table
from services.alignment.viterbi import best_path, required_frames
from services.alignment.vocabulary import BLANK_ID, default_vocabulary
from services.common.errors import FailedPrecondition, InvalidArgument

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class GroupRef:
    """A phoneme group of the reference: phonemes [start, end) of word `word_index`."""

    phonemes: str
    start: int
    end: int
    word_index: int


@dataclass(frozen=True)
class WordRef:
    """A word of the reference: phonemes [start, end), possibly empty."""

    uthmani: str
    start: int
    end: int


@dataclass(frozen=True)
class ReferenceInput:
    """What should have been said: one character of `phonemes` per id of `ids`."""

    phonemes: str
    ids: Sequence[int] | npt.NDArray[np.integer]
    groups: Sequence[GroupRef] = ()
    words: Sequence[WordRef] = ()


@dataclass(frozen=True)
class CallOptions:
    # Replaces the server's per-phoneme table for this call (phoneme -> LLR threshold).
    thresholds: Mapping[str, float] | None = None
    default_threshold: float | None = None
    # Frames either side of the uniform diagonal; 0 takes the server's choice.
    band_frames: int = 0
    # Labels by id; None takes the server's phoneme vocabulary.
    vocabulary: Sequence[str] | None = None


@dataclass(frozen=True)
class Spans:
    """Half-open frame intervals, one per item."""

    start: IntArray
    end: IntArray


@dataclass(frozen=True)
class TokenResults:
    """Per reference token, in reference order."""

    ids: IntArray
    spans: Spans
    mean_log_prob: FloatArray
    llr: FloatArray
    gop_posterior: FloatArray
    competitor: IntArray
    threshold: FloatArray
    flagged: BoolArray


@dataclass(frozen=True)
class RangeResults:
    """Per reference group or word, in reference order."""

    spans: Spans
    # Groups: the lowest token LLR; words: the mean token LLR (0.0 for an empty range).
    llr: FloatArray
    flagged: BoolArray


@dataclass(frozen=True)
class AlignmentResult:
    reference: ReferenceInput
    vocabulary: tuple[str, ...]
    num_frames: int
    frame_duration_s: float
    tokens: TokenResults
    groups: RangeResults
    words: RangeResults
    # Mean per-frame log-probability of the best path.
    path_log_prob: float
    # Share of tokens not flagged.
    confidence: float
    # Frames either side of the diagonal the Viterbi kept; None: the whole lattice.
    band_frames: int | None
    # The path ran along the edge of a partial band (a wider band might move it).
    touched_band_edge: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


class Aligner:
    """Forced alignment with confidence; safe to call from several threads at once."""

    def __init__(
        self,
        thresholds: ThresholdTable,
        *,
        band_frames: int = 0,
        max_table_bytes: int = 64 * 2**20,
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.band_frames = band_frames
        self.max_table_bytes = max_table_bytes
        self.vocabulary = tuple(vocabulary) if vocabulary is not None else default_vocabulary()

    @classmethod
    def from_config(cls, config: AlignmentConfig) -> Aligner:
        vocabulary = default_vocabulary()
        table = load_table(config.thresholds_path, vocabulary)
        return cls(
            ThresholdTable(default=config.default_threshold, per_phoneme=table),
            band_frames=config.band_frames,
            max_table_bytes=config.max_table_bytes,
            vocabulary=vocabulary,
        )

    def warm_up(self) -> None:
        """Loads (or compiles) the numba kernel so the first call does not pay for it."""
        ids = [1, 1, 2]  # a repeat and a skip: every branch of the kernel
        log_probs = np.full((8, len(self.vocabulary)), -5.0, dtype=np.float32)
        phonemes = "".join(self.vocabulary[i] for i in ids)
        self.align(log_probs, 0.04, ReferenceInput(phonemes=phonemes, ids=ids))

    def align(
        self,
        log_probs: npt.NDArray[np.floating],
        frame_duration_s: float,
        reference: ReferenceInput,
        options: CallOptions | None = None,
    ) -> AlignmentResult:
        options = options or CallOptions()
        num_frames, vocab_size = _check_log_probs(log_probs)
        if not (math.isfinite(frame_duration_s) and frame_duration_s > 0):
            raise InvalidArgument(
                f"frame_duration_s must be a positive number of seconds, got {frame_duration_s}"
            )
        if options.band_frames < 0:
            raise InvalidArgument(f"options.band_frames must be >= 0, got {options.band_frames}")
        vocabulary = self._vocabulary_for(options.vocabulary, vocab_size)
        ids = _check_reference(reference, vocabulary)
        table = call_table(self.thresholds, vocabulary, options.thresholds, options.default_threshold)

        needed = required_frames(ids)
        if num_frames < needed:
            repeats = needed - ids.size
            raise FailedPrecondition(
                f"the audio gives {num_frames} frames ({num_frames * frame_duration_s:.2f} s) but "
                f"aligning {ids.size} phonemes needs at least {needed} frames (one per phoneme plus "
                f"{repeats} blank{'s' if repeats != 1 else ''} between repeated neighbours)"
            )

        normalised = _log_softmax(log_probs)
        started = time.perf_counter()
        path = best_path(
            normalised,
            ids,
            band_frames=options.band_frames or self.band_frames,
            max_table_bytes=self.max_table_bytes,
        )
        after_viterbi = time.perf_counter()

        scores = score_tokens(normalised, ids, path.starts, path.ends)
        threshold = table.by_id(vocabulary)[ids]
        flagged = scores.llr < threshold
        token_spans = Spans(path.starts, path.ends)
        groups = _roll_up(_ranges(reference.groups), token_spans, scores.llr, flagged, min)
        words = _roll_up(_ranges(reference.words), token_spans, scores.llr, flagged, _mean)
        done = time.perf_counter()
        return AlignmentResult(
            reference=reference,
            vocabulary=vocabulary,
            num_frames=num_frames,
            frame_duration_s=frame_duration_s,
            tokens=TokenResults(
                ids=ids,
                spans=token_spans,
                mean_log_prob=scores.mean_log_prob,
                llr=scores.llr,
                gop_posterior=scores.gop_posterior,
                competitor=scores.competitor,
                threshold=threshold,
                flagged=flagged,
            ),
            groups=groups,
            words=words,
            path_log_prob=path.log_prob / num_frames,
            confidence=float(1.0 - flagged.mean()),
            band_frames=path.band.frames,
            touched_band_edge=path.touched_band_edge,
            timings_ms={
                "viterbi": (after_viterbi - started) * 1000,
                "confidence": (done - after_viterbi) * 1000,
            },
        )

    def _vocabulary_for(self, requested: Sequence[str] | None, vocab_size: int) -> tuple[str, ...]:
        if requested:
            if len(requested) != vocab_size:
                raise InvalidArgument(
                    f"vocabulary has {len(requested)} labels but phoneme_log_probs has "
                    f"{vocab_size} columns"
                )
            return tuple(requested)
        if len(self.vocabulary) != vocab_size:
            raise InvalidArgument(
                f"phoneme_log_probs has {vocab_size} columns but the server's phoneme vocabulary "
                f"has {len(self.vocabulary)} labels; send the vocabulary with the request"
            )
        return self.vocabulary


def _check_log_probs(log_probs: npt.NDArray[np.floating]) -> tuple[int, int]:
    if not isinstance(log_probs, np.ndarray) or log_probs.ndim != 2:
        shape = getattr(log_probs, "shape", None)
        raise InvalidArgument(f"phoneme_log_probs must be 2-D (frames, vocabulary), got shape {shape}")
    num_frames, vocab_size = log_probs.shape
    if vocab_size < 3:
        raise InvalidArgument(
            f"phoneme_log_probs has {vocab_size} columns; it needs the blank and at least two "
            "phonemes to compare a target with a competitor"
        )
    if not np.issubdtype(log_probs.dtype, np.floating):
        raise InvalidArgument(f"phoneme_log_probs must be floating point, got {log_probs.dtype}")
    if not np.isfinite(log_probs).all():
        raise InvalidArgument("phoneme_log_probs contains NaN or infinite values")
    return int(num_frames), int(vocab_size)


def _check_reference(reference: ReferenceInput, vocabulary: Sequence[str]) -> IntArray:
    ids = np.asarray(reference.ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise InvalidArgument("the reference has no phonemes")
    if len(reference.phonemes) != ids.size:
        raise InvalidArgument(
            f"reference.phonemes has {len(reference.phonemes)} characters but "
            f"reference.phoneme_ids has {ids.size} ids"
        )
    outside = np.flatnonzero((ids <= BLANK_ID) | (ids >= len(vocabulary)))
    if outside.size:
        i = int(outside[0])
        raise InvalidArgument(
            f"reference.phoneme_ids[{i}] = {ids[i]} is outside the vocabulary's phoneme ids "
            f"1..{len(vocabulary) - 1} (0 is the blank)"
        )
    for i, (char, token) in enumerate(zip(reference.phonemes, ids.tolist(), strict=True)):
        if vocabulary[token] != char:
            raise InvalidArgument(
                f"reference.phonemes[{i}] is {char!r} but reference.phoneme_ids[{i}] = {token} "
                f"is {vocabulary[token]!r} in the vocabulary"
            )
    num_words = len(reference.words)
    for kind, ranges in (("words", _ranges(reference.words)), ("groups", _ranges(reference.groups))):
        for i, (start, end) in enumerate(ranges):
            if not 0 <= start <= end <= ids.size:
                raise InvalidArgument(
                    f"reference.{kind}[{i}] covers phonemes [{start}, {end}), outside "
                    f"the {ids.size} phonemes of the reference"
                )
    for i, group in enumerate(reference.groups):
        if num_words and not 0 <= group.word_index < num_words:
            raise InvalidArgument(
                f"reference.groups[{i}].word_index = {group.word_index} but there are {num_words} words"
            )
    return ids


def _ranges(items: Sequence[GroupRef] | Sequence[WordRef]) -> list[tuple[int, int]]:
    return [(item.start, item.end) for item in items]


def _log_softmax(log_probs: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Per-frame normalisation: a no-op on log-probs up to float16 rounding; logits become
    log-probs, so posteriors and ratios mean what they say whatever the caller sent."""
    scores = np.asarray(log_probs, dtype=np.float32)
    shifted: npt.NDArray[np.float32] = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.ascontiguousarray(shifted)


def _roll_up(
    ranges: list[tuple[int, int]],
    tokens: Spans,
    llr: FloatArray,
    flagged: BoolArray,
    summarise: Callable[[list[float]], float],
) -> RangeResults:
    """Spans, LLR summary and flag of phoneme ranges from their tokens' results."""
    if not ranges:
        empty = np.zeros(0, dtype=np.int64)
        return RangeResults(Spans(empty, empty.copy()), np.zeros(0), np.zeros(0, dtype=np.bool_))
    bounds = np.array(ranges, dtype=np.int64)
    first, stop = bounds[:, 0], bounds[:, 1]
    filled = stop > first
    last = np.maximum(stop - 1, 0)
    # An empty range sits where the previous token ended.
    empty_at = np.where(first > 0, tokens.end[np.maximum(first - 1, 0)], 0)
    start = np.where(filled, tokens.start[np.minimum(first, llr.size - 1)], empty_at)
    end = np.where(filled, tokens.end[last], empty_at)
    flag_count = np.concatenate([[0], np.cumsum(flagged)])
    any_flagged = (flag_count[stop] - flag_count[first]) > 0
    values = llr.tolist()
    summary = [summarise(values[a:b]) if b > a else 0.0 for a, b in ranges]
    return RangeResults(Spans(start, end), np.array(summary, dtype=np.float64), any_flagged)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
