"""The energy checks on real audio: words synthesised by espeak-ng's Arabic voice and joined, so
that every word's time is known; a released vs a held final dal (qalqalah), a clean end vs a cut
one (waqf), a pause at a stop mark vs where there is none."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile

from services.common.pb import common_pb2
from services.tajweed.energy import energy_envelope
from services.tajweed.model import Finding, RuleKind, Verdict
from tests.tajweed import synth

ESPEAK = shutil.which("espeak-ng")
pytestmark = pytest.mark.skipif(
    ESPEAK is None, reason="espeak-ng is not installed (`make test` installs Debian's espeak-ng)"
)

# 112:1 and 2:2 spelled plainly for the synthesiser, word for word with the reference.
IKHLAS_RELEASED = ("قُلْ", "هُوَ", "اللَّهُ", "أَحَدَ")  # the dal released into a short vowel: a bounce
IKHLAS_HELD = ("قُلْ", "هُوَ", "اللَّهُ", "أَحَدْ")  # the dal held: no release
BAQARAH_2 = ("ذَلِكَ", "الْكِتَابُ", "لَا", "رَيْبَ", "فِيهِ", "هُدًى", "لِلْمُتَّقِينَ")
GAP_S = 0.03
EDGE_S = 0.4


@cache
def _word(text: str, workdir: str) -> tuple[np.ndarray, int]:
    """One word, its leading and trailing silence trimmed (40 dB under its peak)."""
    path = Path(workdir) / f"{abs(hash(text))}.wav"
    assert ESPEAK is not None
    subprocess.run([ESPEAK, "-v", "ar", "-w", str(path), text], check=True, capture_output=True)
    samples, rate = soundfile.read(path, dtype="float32")
    db, hop = energy_envelope(samples, rate)
    loud = np.flatnonzero(db > db.max() - 40.0)
    hop_n = round(hop * rate)
    return samples[loud[0] * hop_n : (loud[-1] + 1) * hop_n], rate


@dataclass
class Recitation:
    samples: np.ndarray
    rate: int
    spans: list[tuple[float, float]]


def recite(words: Sequence[str], workdir: Path, pauses: Mapping[int, float] | None = None) -> Recitation:
    pieces: list[np.ndarray] = []
    spans = []
    rate = 0
    t = EDGE_S
    for i, text in enumerate(words):
        audio, rate = _word(text, str(workdir))
        gap = (pauses or {}).get(i - 1, GAP_S) if i else EDGE_S
        pieces.append(np.zeros(round(gap * rate), dtype=np.float32))
        if i:
            t += gap
        pieces.append(audio)
        spans.append((t, t + len(audio) / rate))
        t += len(audio) / rate
    pieces.append(np.zeros(round(EDGE_S * rate), dtype=np.float32))
    return Recitation(np.concatenate(pieces), rate, spans)


def request_for(ref: common_pb2.Reference, recitation: Recitation, validators: Sequence[str]):  # type: ignore[no-untyped-def]
    """An alignment spreading each word's groups over its span (in proportion to their usual length)."""
    weights = synth.natural_durations(ref, 1.0, 0.6)
    durations = [0.0] * len(ref.groups)
    pauses: dict[int, float] = {}
    for w, (start, end) in enumerate(recitation.spans):
        members = [i for i, g in enumerate(ref.groups) if g.word_index == w]
        total = sum(weights[i] for i in members)
        for i in members:
            durations[i] = (end - start) * weights[i] / total
        if w + 1 < len(recitation.spans):
            pauses[members[-1]] = recitation.spans[w + 1][0] - end
    timing = synth.alignment(ref, durations, lead_s=recitation.spans[0][0], pauses=pauses)
    db, hop = energy_envelope(recitation.samples, recitation.rate)
    req = synth.request(ref, timing, validators=list(validators), envelope=synth.energy(db, hop))
    req.audio_duration_s = len(recitation.samples) / recitation.rate
    return req


def _only(findings: Sequence[Finding], rule: RuleKind) -> Finding:
    [finding] = [f for f in findings if f.rule == rule and not f.measured.text.startswith("pause")]
    return finding


def test_qalqalah_release_and_the_final_stop(tmp_path: Path) -> None:
    ref = synth.reference(112, 1)
    released = synth.validate(request_for(ref, recite(IKHLAS_RELEASED, tmp_path), ["qalqalah", "waqf"])).findings
    held = synth.validate(request_for(ref, recite(IKHLAS_HELD, tmp_path), ["qalqalah", "waqf"])).findings
    bounce, flat = _only(released, RuleKind.QALQALAH), _only(held, RuleKind.QALQALAH)
    assert bounce.measured.energy_ratio is not None and flat.measured.energy_ratio is not None
    # The release's level against the loud frames: a bounce near the vowels, none far under them.
    bounce_db = 20 * np.log10(bounce.measured.energy_ratio)
    flat_db = 20 * np.log10(flat.measured.energy_ratio)
    assert bounce_db > -6.0 and flat_db < -12.0, (bounce_db, flat_db)
    assert (bounce.verdict, flat.verdict) == (Verdict.CORRECT, Verdict.MISSING)
    assert "kubra" in bounce.message_en
    # Both end in silence: a clean stop, the energy falling by tens of dB.
    for findings in (released, held):
        stop = _only(findings, RuleKind.WAQF)
        assert stop.verdict == Verdict.CORRECT
        assert stop.measured.energy_ratio is not None and stop.measured.energy_ratio < 0.01


def test_a_recording_cut_mid_word_is_not_a_clean_stop(tmp_path: Path) -> None:
    ref = synth.reference(112, 1)
    full = recite(IKHLAS_HELD, tmp_path)
    start, end = full.spans[-1]
    cut_at = start + 0.85 * (end - start)  # in the last vowel of أَحَدْ, the voice still sounding
    cut = Recitation(full.samples[: round(cut_at * full.rate)], full.rate, [*full.spans[:-1], (start, cut_at)])
    stop = _only(synth.validate(request_for(ref, cut, ["waqf"])).findings, RuleKind.WAQF)
    assert stop.verdict == Verdict.UNCERTAIN
    assert stop.measured.energy_ratio is not None and stop.measured.energy_ratio > 0.1


def _pauses(findings: Sequence[Finding]) -> dict[int, Verdict]:
    return {f.word_index: f.verdict for f in findings if f.measured.text.startswith("pause")}


def test_pauses_only_where_a_stop_is_allowed(tmp_path: Path) -> None:
    ref = synth.reference(2, 2)
    fluent = synth.validate(request_for(ref, recite(BAQARAH_2, tmp_path), ["waqf"])).findings
    assert _pauses(fluent) == {}
    at_mark = synth.validate(request_for(ref, recite(BAQARAH_2, tmp_path, {3: 0.6}), ["waqf"])).findings
    assert _pauses(at_mark) == {3: Verdict.CORRECT}  # رَيْبَ carries ∴
    unmarked = synth.validate(request_for(ref, recite(BAQARAH_2, tmp_path, {2: 0.6}), ["waqf"])).findings
    assert _pauses(unmarked) == {2: Verdict.WRONG}  # لَا carries no stop sign
    [pause] = [f for f in unmarked if f.measured.text.startswith("pause")]
    assert pause.measured.duration_s == pytest.approx(0.6, abs=0.05)
