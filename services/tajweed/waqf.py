"""Waqf: a proper stop at the end, and stops in the middle only where the mushaf allows one.

The end (when the reference is read as stopping on its last word):
- the decoded group matched to the last letter must not end with a short vowel the reference
  does not have (a stop is on sukun; the reciter who joins a vowel did not stop); sounds
  decoded after that group are extra sounds (explain_error reports them), not its vowel;
- the energy must fall: the last 50 ms of the recording `waqf_fall_db` below its loud
  level (a recording cut while the voice still sounds has no fall);
- the segmenter's is_complete, when the request carries it, must not be false.
A joined vowel is WRONG; a missing fall or an incomplete recording makes the stop
UNCERTAIN, a joined vowel included (the recording, not necessarily the reciter, may be at
fault, and a voice still sounding at the end is no stop to judge).

In the middle: a pause is a pause in the audio: a lasting silence (the energy at the
recording's noise floor for at least `min_pause_s`, energy.py) between the last token of a
word and the first token of the next (timeline.py). A run of blank CTC frames is not a
pause: the model emits nothing through a held vowel or a quiet consonant, while the voice
goes on; without an energy envelope no mid-recitation stop is judged. A pause is right
at an ayah end or at a stop sign that allows stopping (م ج قلى صلى, ∴ once per pair, the
sakt sign); wrong at لا and, with less confidence, where the mushaf marks nothing.
Continuing through a م (compulsory stop) is wrong.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from services.tajweed import energy as energy_measures
from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import logistic, symbol_confidence
from services.tajweed.model import Finding, Measured, RuleKind, Verdict, Word
from services.tajweed.waqf_marks import Stop, WordStop, word_stops

SOURCE = "waqf"
_DB_SCALE = 3.0
_UNMARKED_CONFIDENCE = 0.6
_FORBIDDEN_CONFIDENCE = 0.85
_ALLOWED_CONFIDENCE = 0.9
_SKIPPED_CONFIDENCE = 0.7

STOP_NAMES = {
    Stop.MUST: ("م: الوقف لازم", "م (compulsory stop)"),
    Stop.FORBIDDEN: ("لا: لا يوقف هنا", "لا (do not stop)"),
    Stop.OPTIONAL: ("ج: الوقف جائز", "ج (stop allowed)"),
    Stop.CONTINUE_PREFERRED: ("صلى: الوصل أولى", "صلى (continuing preferred)"),
    Stop.STOP_PREFERRED: ("قلى: الوقف أولى", "قلى (stopping preferred)"),
    Stop.PAIRED: ("∴: الوقف على أحد الموضعين", "∴ (stop at one of the pair)"),
    Stop.SAKT: ("سكتة", "sakt (brief pause)"),
}


@dataclass(frozen=True)
class _Pause:
    word: int
    start_s: float
    end_s: float


def _finding(
    word: Word,
    *,
    time_span: tuple[float, float] | None,
    verdict: Verdict,
    confidence: float,
    expected: str,
    measured: Measured,
    texts: tuple[str, str],
    heard: str = "",
    expected_phonemes: str = "",
) -> Finding:
    return Finding(
        rule=RuleKind.WAQF,
        rule_name="Waqf",
        word_index=word.index,
        text_span=(word.text_start, word.text_end),
        time_span=time_span,
        expected_harakat=(),
        expected_text=expected,
        measured=measured,
        verdict=verdict,
        confidence=confidence,
        message_ar=texts[0],
        message_en=texts[1],
        phoneme_start=word.phoneme_start,
        phoneme_end=word.phoneme_end,
        expected_phonemes=expected_phonemes,
        heard_phonemes=heard,
        source=SOURCE,
    )


def _final_stop(analysis: Analysis) -> Finding | None:
    request = analysis.request
    reference = analysis.reference
    last = reference.groups[-1]
    word = reference.words[last.word_index]
    parts: list[str] = []
    joined: float | None = None
    heard = ""
    if request.decode is not None and analysis.match is not None:
        # The decoded group matched to the last letter: sounds decoded after it (a stretch cut
        # before the reciter stopped hears the next word begin) are extra sounds, which the
        # letter check reports, not a haraka given to the last letter.
        matched = analysis.decoded(last.index)
        heard = matched.phonemes if matched is not None else ""
        parts.append(f"decoded ending {heard or 'nothing'}")
        if (
            matched is not None
            and matched.core == last.core
            and heard[-1] in phonetics.HARAKAT
            and last.mark not in phonetics.HARAKAT
        ):
            joined = symbol_confidence(matched.tokens[-1].prob if matched.tokens else None)
    fall: float | None = None
    if analysis.energy is not None and len(analysis.energy.db):
        fall = energy_measures.tail_fall_db(analysis.energy)
        parts.append(f"energy falls {messages.num(fall)} dB at the end")
    if request.is_complete is not None:
        parts.append("segmenter: " + ("complete" if request.is_complete else "cut mid-speech"))
    if analysis.match is None and fall is None and request.is_complete is None:
        return None
    cut = request.is_complete is False or (fall is not None and fall < analysis.calibration.waqf_fall_db)
    # A vowel on the last letter is a stop done wrong only where the reciter stopped: a recording
    # that ends while the voice still sounds shows no stop at all (the reciter may go on).
    if joined is not None and not cut:
        verdict, confidence = Verdict.WRONG, joined
        texts = (
            "الوقف في آخر القراءة: وُصل الحرف الأخير بحركة، والوقف يكون بالسكون",
            "Final stop wrong: the last letter was given a vowel; a stop is on sukun",
        )
    elif cut:
        verdict = Verdict.UNCERTAIN
        votes = [0.9] if request.is_complete is False else []
        if fall is not None and fall < analysis.calibration.waqf_fall_db:
            votes.append(logistic((analysis.calibration.waqf_fall_db - fall) / _DB_SCALE))
        confidence = max(votes)
        texts = (
            "الوقف في آخر القراءة: التسجيل ينتهي والصوت مستمر، فلا يُحكم على الوقف",
            "Final stop unclear: the recording ends while the voice still sounds",
        )
    else:
        verdict = Verdict.CORRECT
        votes = [0.9] if request.is_complete else []
        if fall is not None:
            votes.append(logistic((fall - analysis.calibration.waqf_fall_db) / _DB_SCALE))
        if analysis.match is not None:
            votes.append(0.9)
        confidence = sum(votes) / len(votes)
        texts = ("الوقف في آخر القراءة: صحيح", "Final stop: right")
    end_s = request.audio_duration_s or (analysis.energy.duration_s if analysis.energy is not None else 0.0)
    time_span = analysis.group_time(last.index)
    if time_span is not None and end_s > time_span[0]:
        time_span = (time_span[0], end_s)
    return _finding(
        word,
        time_span=time_span,
        verdict=verdict,
        confidence=confidence,
        expected="a stop on sukun: no vowel after the last letter, then silence",
        measured=Measured(
            energy_ratio=10.0 ** (-fall / 20.0) if fall is not None else None,
            text="; ".join(parts),
        ),
        texts=texts,
        heard=heard,
        expected_phonemes=last.phonemes,
    )


def _pauses(analysis: Analysis) -> list[_Pause]:
    timeline = analysis.timeline
    reference = analysis.reference
    if timeline is None or analysis.energy is None:
        return []
    spoken = [w for w in reference.words if w.phoneme_end > w.phoneme_start]
    pauses: list[_Pause] = []
    for word, following in itertools.pairwise(spoken):
        if word.phoneme_end > following.phoneme_start:
            continue  # merged into the next word: no boundary to pause at
        silence = timeline.silence_after(word.phoneme_end - 1)
        if silence is not None:
            pauses.append(_Pause(word.index, silence[0], silence[1]))
    return pauses


def _judge_pause(stop: WordStop, pair_already_stopped: bool) -> tuple[Verdict, float, str, tuple[str, str]]:
    if stop.ayah_end:
        return Verdict.CORRECT, _ALLOWED_CONFIDENCE, "the end of an ayah", (
            "الوقف على رأس الآية: صحيح",
            "Stop at the end of an ayah: right",
        )
    if stop.stop is None:
        return Verdict.WRONG, _UNMARKED_CONFIDENCE, "no stop here: the mushaf marks none", (
            "وقفت حيث لا علامة وقف؛ إن احتجت للوقف فابدأ من موضع مناسب",
            "Stopped where the mushaf marks no stop; if you must stop, restart from a suitable word",
        )
    name_ar, name_en = STOP_NAMES[stop.stop]
    if stop.stop == Stop.FORBIDDEN:
        return Verdict.WRONG, _FORBIDDEN_CONFIDENCE, f"no stop: {name_en}", (
            f"وقفت عند علامة {name_ar}",
            f"Stopped at {name_en}",
        )
    if stop.stop == Stop.PAIRED and pair_already_stopped:
        return Verdict.WRONG, _UNMARKED_CONFIDENCE, f"one stop per pair: {name_en}", (
            "وقفت على موضعي التعانق كليهما، والوقف على أحدهما فقط",
            "Stopped at both marks of a ∴ pair; stop at only one of them",
        )
    return Verdict.CORRECT, _ALLOWED_CONFIDENCE, f"a stop is allowed: {name_en}", (
        f"الوقف عند علامة {name_ar}: صحيح",
        f"Stop at {name_en}: right",
    )


def validate(analysis: Analysis) -> list[Finding]:
    reference = analysis.reference
    findings: list[Finding] = []
    if reference.ends_with_waqf:
        final = _final_stop(analysis)
        if final is not None:
            findings.append(final)
    if analysis.timeline is None or analysis.energy is None:
        return findings
    stops = word_stops(reference.words)
    pauses = {p.word: p for p in _pauses(analysis)}
    pairs_stopped: set[tuple[int, int, int]] = set()
    last_word = reference.groups[-1].word_index
    for word in reference.words:
        stop = stops[word.index]
        pause = pauses.get(word.index)
        if pause is None:
            if stop.stop == Stop.MUST and word.index < last_word and word.phoneme_end > word.phoneme_start:
                findings.append(
                    _finding(
                        word,
                        time_span=analysis.range_time(word.phoneme_start, word.phoneme_end),
                        verdict=Verdict.MISSING,
                        confidence=_SKIPPED_CONFIDENCE,
                        expected="a stop: " + STOP_NAMES[Stop.MUST][1],
                        measured=Measured(text="no pause after the word"),
                        texts=(
                            "لم تقف عند علامة الوقف اللازم (م)",
                            "Continued through a compulsory stop (م)",
                        ),
                    )
                )
            continue
        verdict, confidence, expected, texts = _judge_pause(stop, stop.pair in pairs_stopped)
        if stop.pair is not None:
            pairs_stopped.add(stop.pair)
        findings.append(
            _finding(
                word,
                time_span=(pause.start_s, pause.end_s),
                verdict=verdict,
                confidence=confidence,
                expected=expected,
                measured=Measured(
                    duration_s=pause.end_s - pause.start_s,
                    text=f"pause of {messages.num(pause.end_s - pause.start_s, 2)} s after the word",
                ),
                texts=texts,
            )
        )
    return findings
