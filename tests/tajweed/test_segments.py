"""Durations from the aligned segments, on synthetic truth with exact timelines.

The truth (synth.phoneme_truth) says where every phoneme sounds; the placement policies
say where a CTC model would put its token: a spike at the start of the sound, frames
covering it, or, for vowels, a spike at the very end of the held vowel ("late": what a
peaky model does, and what made every madd look short when a group was measured from its
first spike to the next group's). Whatever the policy, the madd, the ghunnah and the
shadda must measure the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.alignment.convert import alignment_to_proto
from services.alignment.convert import reference_from_proto as alignment_reference
from services.alignment.core import Aligner
from services.alignment.thresholds import ThresholdTable
from services.common.pb import common_pb2
from services.tajweed.config import TajweedConfig
from services.tajweed.convert import request_from_proto
from services.tajweed.core import TajweedValidator
from services.tajweed.model import RuleKind, Verdict
from services.tajweed.timeline import Timeline
from tests.alignment import synth as posteriors
from tests.tajweed import synth

POLICIES = ("spiky", "tiled", "late")
TEMPOS = (0.22, 0.3, 0.38, 0.46)
MADD = {"MADD_TABEEI", "MADD_BADAL", "MADD_MUNFASIL", "MADD_MUTTASIL", "MADD_ARID", "MADD_LAZIM", "MADD_LEEN"}


def _timeline(req) -> Timeline:  # type: ignore[no-untyped-def]
    config = TajweedConfig()
    timeline = TajweedValidator(config).analyse(request_from_proto(req, config)).timeline
    assert timeline is not None
    return timeline


def _with_madd(ref: common_pb2.Reference, tempo: float, actual: int) -> list[float]:
    durations = synth.natural_durations(ref, tempo, 0.6 * tempo)
    for i, g in enumerate(ref.groups):
        if g.phonemes[0] in "اۦۥ":
            durations[i] = actual * tempo
    return durations


def _verdict(actual: int, expected: int) -> Verdict:
    if actual == expected:
        return Verdict.CORRECT
    return Verdict.TOO_SHORT if actual < expected else Verdict.TOO_LONG


@pytest.mark.parametrize("tempo", TEMPOS)
def test_late_spikes_measure_the_madd_right(tempo: float) -> None:
    """Every vowel's spikes at the end of its held vowel: each madd still measures its true
    length, and is judged from the timing alone (no decoded symbols to lean on)."""
    ref = synth.reference(2, 19)
    for actual in (2, 4, 6):
        timing = synth.alignment(ref, _with_madd(ref, tempo, actual), policy="late")
        result = synth.validate(synth.request(ref, timing, validators=["madd"]))
        assert result.tempo.haraka_s == pytest.approx(tempo, rel=0.05)
        findings = [f for f in result.findings if f.rule.value in MADD]
        assert len(findings) == 13
        for finding in findings:
            assert finding.measured.duration_harakat == pytest.approx(actual, abs=0.3), finding
            assert finding.verdict == _verdict(actual, finding.expected_harakat[0]), finding


def test_late_spikes_on_a_right_recitation_raise_no_madd_error() -> None:
    """The issue's false alarm: 'Madd too short' on a madd held right, its two symbols decoded."""
    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18), policy="late")
    result = synth.validate(synth.request(ref, timing, synth.decode(ref.phonemes), validators=["madd"]))
    [madd] = result.findings
    assert madd.rule == RuleKind.MADD_TABEEI
    assert madd.verdict == Verdict.CORRECT
    assert madd.measured.duration_harakat == pytest.approx(2.0, abs=0.25)
    assert madd.measured.symbol_count == 2


@pytest.mark.parametrize("tempo", (0.25, 0.4))
def test_every_policy_measures_the_same(tempo: float) -> None:
    """106:4 carries a munfasil, a leen at the stop, a shadda, idgham and ikhfa ghunnahs: the
    same truth gives the same lengths whatever the spikes' placement."""
    ref = synth.reference(106, 4)
    durations = synth.natural_durations(ref, tempo, 0.6 * tempo)
    measured: dict[str, dict[tuple[str, int], float]] = {}
    for policy in POLICIES:
        timing = synth.alignment(ref, durations, policy=policy)
        req = synth.request(ref, timing, validators=["madd", "ghunnah", "shadda"])
        result = synth.validate(req)
        assert all(f.verdict == Verdict.CORRECT for f in result.findings), (policy, result.findings)
        measured[policy] = {
            (f.source, f.phoneme_start): f.measured.duration_harakat
            for f in result.findings
            if f.measured.duration_harakat is not None
        }
    assert measured["spiky"].keys() == measured["late"].keys() == measured["tiled"].keys()
    for key, value in measured["spiky"].items():
        assert measured["late"][key] == pytest.approx(value, abs=0.2), key
        assert measured["tiled"][key] == pytest.approx(value, abs=0.3), key


def _tokens(frames: list[tuple[int, int]], ref: common_pb2.Reference) -> common_pb2.Alignment:
    tokens = [
        common_pb2.AlignedToken(
            phoneme=ref.phonemes[i],
            phoneme_index=i,
            span=common_pb2.FrameSpan(start_frame=a, end_frame=b, start_s=a * 0.04, end_s=b * 0.04),
        )
        for i, (a, b) in enumerate(frames)
    ]
    return common_pb2.Alignment(tokens=tokens, num_frames=frames[-1][1] + 10, frame_duration_s=0.04)


def test_the_blank_rule_on_a_hand_made_timeline() -> None:
    """قُلْ هُوَ ٱللَّهُ أَحَدْ with every token's frames chosen: each blank goes where the rule says."""
    ref = synth.reference(112, 1)
    # ق ُ ل ه ُ و َ ل ل َ ا ا ه ُ ء َ ح َ د ڇ
    frames = [(5, 6), (9, 10), (12, 13), (16, 17), (20, 21), (23, 24), (27, 28), (30, 31), (33, 34),
              (35, 36), (40, 41), (42, 43), (44, 45), (48, 49), (50, 51), (54, 55), (57, 58), (61, 62),
              (64, 65), (66, 67)]
    req = synth.request(ref, None, duration_s=3.0)
    req.alignment.CopyFrom(_tokens(frames, ref))
    timeline = _timeline(req)
    seconds = [(round(s / 0.04), round(e / 0.04)) for s, e in zip(timeline.starts, timeline.ends, strict=True)]
    # ق is a consonant before a vowel: its own frame; the blanks after it are the vowel's.
    assert seconds[0] == (5, 6)
    assert seconds[1] == (6, 12)  # ُ: from ق's end to ل's first frame
    assert seconds[2] == (12, 16)  # ل before a consonant: onset to onset
    # The held lam (للَ): first copy's first frame to the last copy's last frame.
    lam = timeline.segment(7)
    assert (lam.first, lam.last) == (7, 9)
    assert (round(lam.start_s / 0.04), round(lam.end_s / 0.04)) == (30, 34)
    # The nucleus َاا is one segment: from the lam's end to ه's first frame, however its spikes fall.
    nucleus = timeline.segment(9)
    assert (nucleus.first, nucleus.last, nucleus.vowel) == (9, 12, True)
    assert (round(nucleus.start_s / 0.04), round(nucleus.end_s / 0.04)) == (34, 44)
    # The last token, without an energy envelope, ends with its own frame.
    assert seconds[-1] == (66, 67)
    assert timeline.silences == {}


def _with_a_silence(frames: list[tuple[int, int]], silence: tuple[int, int], speech_end: int) -> Timeline:
    """112:1 with these token frames, over an envelope (10 ms hops) loud from 0.15 s to
    `speech_end`, silent before, after and over the `silence` hops."""
    ref = synth.reference(112, 1)
    db = np.full(speech_end + 25, -20.0, dtype=np.float32)
    db[:15] = -90.0
    db[silence[0] : silence[1]] = -90.0
    db[speech_end:] = -90.0
    req = synth.request(ref, None, envelope=synth.energy(db, 0.01), duration_s=len(db) / 100)
    req.alignment.CopyFrom(_tokens(frames, ref))
    return _timeline(req)


def test_a_silence_ends_the_segment_before_it() -> None:
    """The same tokens, and 0.9 s of silence between هُوَ and ٱللَّهُ: the vowel of وَ ends where the
    silence starts, the silence belongs to no segment, and it is the pause after the word."""
    frames = [(5, 6), (9, 10), (12, 13), (16, 17), (20, 21), (23, 24), (27, 28), (60, 61), (63, 64),
              (65, 66), (70, 71), (72, 73), (74, 75), (78, 79), (80, 81), (84, 85), (87, 88), (91, 92),
              (94, 95), (96, 97)]
    # 1.3-2.2 s: after وَ's vowel spike (1.08 s), before the lam's (2.4 s)
    timeline = _with_a_silence(frames, (130, 220), speech_end=390)
    fatha = timeline.segment(6)
    assert fatha.vowel
    assert (fatha.start_s, fatha.end_s) == (pytest.approx(0.96), pytest.approx(1.3))
    assert timeline.silence_after(6) == (pytest.approx(1.3), pytest.approx(2.2))
    # Blanks after the silence go to no segment when a consonant comes next.
    assert timeline.starts[7] == pytest.approx(2.4)
    # The last token runs to where the speech ends, the trailing silence.
    assert timeline.ends[-1] == pytest.approx(3.9)


def test_a_silence_inside_a_held_sound_is_not_counted() -> None:
    """The two alifs of ٱللَّهُ with 0.6 s of silence between them (a reciter stopping inside the
    madd): the nucleus is its sound, not the silence."""
    frames = [(5, 6), (9, 10), (12, 13), (16, 17), (20, 21), (23, 24), (27, 28), (30, 31), (33, 34),
              (35, 36), (40, 41), (60, 61), (64, 65), (68, 69), (70, 71), (74, 75), (77, 78), (81, 82),
              (84, 85), (86, 87)]
    # 1.7-2.3 s, between the first alif (1.6 s) and the second (2.4 s)
    timeline = _with_a_silence(frames, (170, 230), speech_end=355)
    nucleus = timeline.segment(10)
    assert (nucleus.first, nucleus.last) == (9, 12)
    assert (nucleus.start_s, nucleus.end_s) == (pytest.approx(1.36), pytest.approx(2.56))
    assert nucleus.duration == pytest.approx(1.2 - 0.6)


def test_a_quiet_run_between_the_copies_of_a_held_consonant_is_part_of_the_hold() -> None:
    """The doubled lam of ٱللَّهُ with 0.5 s under the silence threshold between its copies (a
    murmur or a closure under a noise floor): the model heard the letter on both sides, so the
    hold is first copy to last copy; the quiet run is still recorded, and a nucleus keeps
    subtracting its own (the test above)."""
    frames = [(5, 6), (9, 10), (12, 13), (16, 17), (20, 21), (23, 24), (27, 28), (30, 31), (50, 51),
              (53, 54), (58, 59), (60, 61), (62, 63), (66, 67), (68, 69), (72, 73), (75, 76), (79, 80),
              (82, 83), (84, 85)]
    # 1.35-1.85 s, between the lam's copies (1.2-1.24 s and 2.0-2.04 s)
    timeline = _with_a_silence(frames, (135, 185), speech_end=355)
    lam = timeline.segment(7)
    assert (lam.first, lam.last, lam.vowel) == (7, 9, False)
    assert timeline.silence_after(7) == (pytest.approx(1.35), pytest.approx(1.85))
    assert (lam.start_s, lam.end_s) == (pytest.approx(1.2), pytest.approx(2.04))
    assert lam.duration == pytest.approx(0.84)


def _posteriorgram(timing: synth.Timing, ref: common_pb2.Reference, seed: int) -> np.ndarray:
    """Log-probs where every token's frames carry it and every other frame is blank."""
    labels = np.zeros(timing.alignment.num_frames, dtype=np.int64)
    for token in timing.alignment.tokens:
        assert posteriors.VOCAB[token.id] == token.phoneme
        labels[token.span.start_frame : token.span.end_frame] = token.id
    return posteriors.posteriorgram(np.random.default_rng(seed), labels)


@pytest.mark.parametrize("tempo", (0.25, 0.4))
def test_the_aligner_and_the_validator_together_on_late_spikes(tempo: float) -> None:
    """The real CTC aligner on a posteriorgram that spikes every vowel late: its spans, read by
    the tajweed timeline, still measure each madd at its true length."""
    ref = synth.reference(2, 19)
    timing = synth.alignment(ref, _with_madd(ref, tempo, 4), policy="late")
    aligner = Aligner(ThresholdTable(default=0.0, per_phoneme={}))
    result = aligner.align(_posteriorgram(timing, ref, 19), 0.04, alignment_reference(ref))
    req = synth.request(ref, timing, validators=["madd"])
    req.alignment.CopyFrom(alignment_to_proto(result))
    findings = [f for f in synth.validate(req).findings if f.rule.value in MADD]
    assert findings
    for finding in findings:
        assert finding.measured.duration_harakat == pytest.approx(4.0, abs=0.3), finding
