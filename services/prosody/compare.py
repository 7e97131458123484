"""The comparison engine: a learner's recitation next to a reference reciter's.

Words are paired by the two alignments when both are there and sure (same reference text, so
the same word indexes); otherwise the reference's word spans are carried onto the learner's
audio by DTW on mean-normalised log-mel frames (no model that hears). Then:
- tempo ratio: the learner's haraka over the reference's (> 1: slower), or the slope of the
  DTW path over the reference's speech when a haraka is missing;
- key shift: the learner's median f0 above the reference's, in cents;
- per word: the DTW distance of the two semitone contours, each relative to its own median
  (key-invariant), and its similarity exp(-d / CONTOUR_SCALE_ST);
- each madd in harakat (the learner's own, and in the reference's harakat) against the reference's;
- rhythm and melody side by side, maqam same or not (the learner's maqam named as the teacher's
  when the learner's own pitch classes cannot tell the two apart, so a change of key alone never
  reads as another maqam);
- an overall similarity 0-100 (a weighted mean of the parts that could be measured) and the
  three heaviest feedback lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.prosody import feedback as fb
from services.prosody import maqam as maqam_mod
from services.prosody.dtw import dtw
from services.prosody.features import Madd, Recitation, Word
from services.prosody.maqam import MaqamEstimate
from services.prosody.melody import MIN_VOICED_FRAMES, Melody
from services.prosody.rhythm import Rhythm

MIN_ALIGNMENT_CONFIDENCE = 0.5
CONTOUR_SCALE_ST = 2.0
TEMPO_SCALE = 0.3  # |ln ratio| at which the tempo part falls to 1/e
MADD_SCALE = 1.5  # harakat
# Slopes in semitones per second: under FLAT_SLOPE a word is flat.
FLAT_SLOPE = 1.5
MAX_DTW_FRAMES = 1500
WEIGHTS = {"contour": 0.4, "madd": 0.25, "tempo": 0.15, "rhythm": 0.1, "maqam": 0.1}


@dataclass(frozen=True)
class WordComparison:
    index: int
    text: str
    learner_span: tuple[float, float]
    reference_span: tuple[float, float]
    contour_distance_st: float | None
    contour_similarity: float | None
    learner_slope: float
    reference_slope: float


@dataclass(frozen=True)
class MaddComparison:
    word_index: int
    text: str
    rule: str
    golden_len: int
    learner_harakat: float
    learner_in_reference_harakat: float
    reference_harakat: float


@dataclass(frozen=True)
class Comparison:
    word_alignment: str  # "alignment" or "dtw"
    tempo_ratio: float
    tempo_source: str  # "haraka" or "dtw"
    key_shift_cents: float
    words: tuple[WordComparison, ...]
    madds: tuple[MaddComparison, ...]
    learner_rhythm: Rhythm | None
    reference_rhythm: Rhythm | None
    learner_melody: Melody
    reference_melody: Melody
    learner_maqam: MaqamEstimate | None
    reference_maqam: MaqamEstimate | None
    same_maqam: bool | None
    contour_similarity: float | None
    parts: dict[str, float]
    similarity: float
    feedback: tuple[fb.Feedback, ...]


def _sure(r: Recitation) -> bool:
    return r.timing is not None and r.timing.confidence >= MIN_ALIGNMENT_CONFIDENCE and len(r.timing.words) > 0


def _path(learner: Recitation, reference: Recitation) -> tuple[npt.NDArray[np.int64], int]:
    """DTW path on acoustic frames (reference index, learner index), at a stride that keeps it cheap."""
    a, b = reference.audio.mel, learner.audio.mel
    stride = max(1, math.ceil(max(len(a), len(b)) / MAX_DTW_FRAMES))
    _, path = dtw(a[::stride], b[::stride])
    return path * stride, stride


def _map_time(path: npt.NDArray[np.int64], ref_frame: float, hop_s: float) -> float:
    """The learner time the path matches to a reference frame (the median of the matched frames)."""
    i = path[:, 0]
    nearest = i[np.argmin(np.abs(i - ref_frame))]
    return float(np.median(path[i == nearest, 1])) * hop_s


def _speech_span(r: Recitation) -> tuple[int, int]:
    db = r.audio.energy_db
    loud = float(np.percentile(db, 95)) if len(db) else 0.0
    speech = np.flatnonzero(db > loud - 30.0)
    return (int(speech[0]), int(speech[-1])) if len(speech) else (0, max(0, len(db) - 1))


def _dtw_tempo(path: npt.NDArray[np.int64], reference: Recitation) -> float:
    """Slope of the path between 10 % and 90 % of the reference's speech: robust to silences at either end."""
    lo, hi = _speech_span(reference)
    a, b = round(lo + 0.1 * (hi - lo)), round(lo + 0.9 * (hi - lo))
    if b - a < 1:
        return 1.0
    hop = reference.audio.pitch.hop_s
    return (_map_time(path, b, hop) - _map_time(path, a, hop)) / ((b - a) * hop)


def _contour(r: Recitation, start_s: float, end_s: float) -> npt.NDArray[np.float64]:
    st = r.audio.pitch.semitones()[r.audio.pitch.window(start_s, end_s)]
    return st[np.isfinite(st)]


def _motion(slope: float) -> str:
    return "rises" if slope > FLAT_SLOPE else "falls" if slope < -FLAT_SLOPE else "stays flat"


def _slope(r: Recitation, start_s: float, end_s: float) -> float:
    track = r.audio.pitch
    sl = track.window(start_s, end_s)
    st, t = track.semitones()[sl], track.times[sl]
    ok = np.isfinite(st)
    return float(np.polyfit(t[ok], st[ok], 1)[0]) if ok.sum() >= MIN_VOICED_FRAMES else 0.0


def _pairs(
    learner: Recitation, reference: Recitation
) -> tuple[str, list[tuple[Word, tuple[float, float]]], npt.NDArray[np.int64] | None]:
    """(method, [(reference word, learner span)], DTW path when one was computed)."""
    if _sure(learner) and _sure(reference):
        assert learner.timing is not None and reference.timing is not None
        mine = {w.index: w for w in learner.timing.words}
        pairs = [(w, (mine[w.index].start_s, mine[w.index].end_s)) for w in reference.timing.words if w.index in mine]
        if pairs:
            return "alignment", pairs, None
    path, _ = _path(learner, reference)
    hop = reference.audio.pitch.hop_s
    if reference.timing is not None and reference.timing.words:
        words = list(reference.timing.words)
    else:
        lo, hi = _speech_span(reference)
        words = [Word(-1, "", lo * hop, (hi + 1) * hop)]
    return (
        "dtw",
        [(w, (_map_time(path, w.start_s / hop, hop), _map_time(path, w.end_s / hop, hop))) for w in words],
        path,
    )


def _madds(learner: Recitation, reference: Recitation, words: dict[int, str]) -> list[MaddComparison]:
    if learner.timing is None or reference.timing is None:
        return []
    ref_h, mine_h = reference.timing.haraka_s(), learner.timing.haraka_s()
    if ref_h <= 0:
        return []
    mine: dict[tuple[int, str], list[Madd]] = {}
    for m in learner.timing.madds:
        mine.setdefault((m.word_index, m.rule), []).append(m)
    out = []
    seen: dict[tuple[int, str], int] = {}
    for m in reference.timing.madds:
        key = (m.word_index, m.rule)
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k >= len(mine.get(key, [])):
            continue
        lm = mine[key][k]
        own = lm.duration_s / (mine_h if mine_h > 0 else ref_h)
        out.append(
            MaddComparison(
                m.word_index,
                words.get(m.word_index, ""),
                m.rule,
                m.golden_len,
                round(own, 2),
                round(lm.duration_s / ref_h, 2),
                round(m.duration_s / ref_h, 2),
            )
        )
    return out


def _rhythm_part(a: Rhythm, b: Rhythm) -> float:
    return math.exp(-abs(a.npvi_v - b.npvi_v) / 20.0) * math.exp(-abs(a.percent_v - b.percent_v) / 10.0)


def compare(learner: Recitation, reference: Recitation) -> Comparison:
    method, pairs, path = _pairs(learner, reference)
    haraka_l = learner.timing.haraka_s() if learner.timing else 0.0
    haraka_r = reference.timing.haraka_s() if reference.timing else 0.0
    if method == "alignment" and haraka_l > 0 and haraka_r > 0:
        tempo, tempo_source = haraka_l / haraka_r, "haraka"
    else:
        if path is None:
            path, _ = _path(learner, reference)
        tempo, tempo_source = _dtw_tempo(path, reference), "dtw"

    ml, mr = learner.audio.pitch.median_hz, reference.audio.pitch.median_hz
    shift = 1200.0 * math.log2(ml / mr) if ml > 0 and mr > 0 else 0.0

    words: list[WordComparison] = []
    for w, (ls, le) in pairs:
        a, b = _contour(learner, ls, le), _contour(reference, w.start_s, w.end_s)
        dist = sim = None
        if len(a) >= MIN_VOICED_FRAMES and len(b) >= MIN_VOICED_FRAMES:
            dist, _ = dtw(a, b)
            sim = math.exp(-dist / CONTOUR_SCALE_ST)
        words.append(
            WordComparison(
                w.index,
                w.text,
                (ls, le),
                (w.start_s, w.end_s),
                dist,
                sim,
                _slope(learner, ls, le),
                _slope(reference, w.start_s, w.end_s),
            )
        )
    texts = {w.index: w.text for w, _ in pairs}
    madds = _madds(learner, reference, texts)
    rl = learner.timing.rhythm() if learner.timing and learner.timing.phones else None
    rr = reference.timing.rhythm() if reference.timing and reference.timing.phones else None
    mel_l, mel_r = learner.melody(), reference.melody()
    # Both from the pitch tracks (milliseconds), not from the features' own estimates: a teacher's
    # features may come from a cache written by an older estimator. The learner's estimate alone
    # picks between near-equal scores by a few cents of tracker noise (a transposed copy of the
    # teacher came out Kurd against Sikah), so the teacher's maqam is kept for the learner
    # whenever the learner's evidence cannot tell the two apart.
    qb = maqam_mod.estimate(reference.audio.pitch)
    qa = maqam_mod.estimate(learner.audio.pitch, prefer=qb.name if qb is not None else None)
    same = None if qa is None or qb is None else qa.name == qb.name

    sims = [w.contour_similarity for w in words if w.contour_similarity is not None]
    parts: dict[str, float] = {}
    if sims:
        parts["contour"] = float(np.mean(sims))
    if madds:
        parts["madd"] = float(
            np.mean([math.exp(-abs(m.learner_harakat - m.reference_harakat) / MADD_SCALE) for m in madds])
        )
    parts["tempo"] = math.exp(-abs(math.log(max(tempo, 1e-6))) / TEMPO_SCALE)
    if rl is not None and rr is not None:
        parts["rhythm"] = _rhythm_part(rl, rr)
    if same is not None:
        parts["maqam"] = 1.0 if same else 0.0
    total = sum(WEIGHTS[k] for k in parts)
    similarity = round(100.0 * sum(WEIGHTS[k] * v for k, v in parts.items()) / total, 1) if total else 0.0

    lines = _feedback(words, madds, tempo, mel_l, mel_r, qa, qb, reference)
    return Comparison(
        word_alignment=method,
        tempo_ratio=tempo,
        tempo_source=tempo_source,
        key_shift_cents=shift,
        words=tuple(words),
        madds=tuple(madds),
        learner_rhythm=rl,
        reference_rhythm=rr,
        learner_melody=mel_l,
        reference_melody=mel_r,
        learner_maqam=qa,
        reference_maqam=qb,
        same_maqam=same,
        contour_similarity=float(np.mean(sims)) if sims else None,
        parts={k: round(v, 4) for k, v in parts.items()},
        similarity=similarity,
        feedback=lines,
    )


def _feedback(
    words: list[WordComparison],
    madds: list[MaddComparison],
    tempo: float,
    mel_l: Melody,
    mel_r: Melody,
    qa: MaqamEstimate | None,
    qb: MaqamEstimate | None,
    reference: Recitation,
) -> tuple[fb.Feedback, ...]:
    """Candidates weighted by the share of the similarity they stand for; the three heaviest."""
    out: list[fb.Feedback] = []
    for m in madds:
        gap = abs(m.learner_harakat - m.reference_harakat)
        if gap >= 1.0:
            out.append(
                fb.madd(
                    m.text,
                    m.word_index,
                    m.learner_harakat,
                    m.reference_harakat,
                    WEIGHTS["madd"] * gap / max(1, len(madds)),
                )
            )
    for w in words:
        if w.contour_similarity is None or w.index < 0:
            continue
        mine, theirs = _motion(w.learner_slope), _motion(w.reference_slope)
        if mine != theirs:
            out.append(
                fb.contour(
                    w.text,
                    w.index,
                    mine,
                    theirs,
                    WEIGHTS["contour"] * (1 - w.contour_similarity) * 2 / max(1, len(words)),
                )
            )
    if abs(math.log(max(tempo, 1e-6))) > math.log(1.15):
        out.append(fb.tempo(tempo, WEIGHTS["tempo"] * (1 - math.exp(-abs(math.log(tempo)) / TEMPO_SCALE))))
    if mel_r.range_st >= 3.0 and mel_l.range_st < 0.6 * mel_r.range_st:
        out.append(fb.pitch_range(mel_l.range_st, mel_r.range_st, 0.05 * (1 - mel_l.range_st / mel_r.range_st)))
    if reference.timing and reference.timing.words and mel_r.final_lowering_st >= 2.0 and mel_l.final_lowering_st < 1.0:
        last = reference.timing.words[-1]
        out.append(fb.final_lowering(last.text, last.index, 0.03))
    if qa is not None and qb is not None and qa.name != qb.name:
        out.append(fb.maqam(qa.name, qb.name, WEIGHTS["maqam"] * min(qa.confidence, qb.confidence)))
    return tuple(sorted(out, key=lambda f: -f.weight)[:3])
