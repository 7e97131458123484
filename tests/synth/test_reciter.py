"""The synthetic reciter: its truth matches its audio, and each mistake kind changes the truth
(and the audio) as it claims."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from services.common.errors import InvalidArgument
from services.demo.synth.dsp import RATE, frame_energy_db
from services.demo.synth.espeak import VOICES, Voice
from services.demo.synth.mistakes import KINDS, Mistake
from services.demo.synth.reciter import Recitation, Spec, recite
from services.demo.synth.script import P
from tests.synth.held import held_runs

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (`make test` installs Debian's espeak-ng)"
)

TEMPO = 0.3


def _recite(surah: int, ayah: int, *mistakes: str, last_ayah: int = 0, tempo: float = TEMPO,
            snr_db: float | None = None) -> Recitation:
    return recite(Spec(surah, ayah, last_ayah=last_ayah, tempo=tempo,
                       mistakes=tuple(Mistake.parse(m) for m in mistakes), snr_db=snr_db))


def _db(rec: Recitation, start: float, end: float) -> float:
    piece = rec.samples[int(start * RATE) : int(end * RATE)]
    return float(np.max(frame_energy_db(piece))) - float(np.max(frame_energy_db(rec.samples)))


def _group(rec: Recitation, word: int) -> list[dict]:
    return [g for g in rec.truth["groups"] if g["word_index"] == word]


def test_clean_recitation_says_the_reference_and_its_times_hold_speech() -> None:
    rec = _recite(112, 1)
    assert rec.truth["phonemes"] == rec.reference.phonemes
    assert rec.truth["mistakes"] == []
    # Every group's span holds speech; the edges before the first and after the last are silent.
    for g in rec.truth["groups"]:
        assert _db(rec, g["start_s"], g["end_s"]) > -30.0, g
    first, last = rec.truth["groups"][0], rec.truth["groups"][-1]
    assert _db(rec, 0.0, first["start_s"] - 0.02) < -60.0
    assert _db(rec, last["end_s"] + 0.02, rec.truth["duration_s"]) < -60.0
    # Groups tile the speech in order, and words cover their groups.
    ends = [(g["start_s"], g["end_s"]) for g in rec.truth["groups"]]
    assert all(a[1] == pytest.approx(b[0], abs=1e-3) for a, b in itertools.pairwise(ends))
    for word in rec.truth["words"]:
        assert word["recited"]
        spans = _group(rec, word["index"])
        if spans:
            assert word["start_s"] == pytest.approx(spans[0]["start_s"]) and word["end_s"] >= spans[-1]["end_s"] - 1e-3


def test_a_madd_lasts_its_harakat_at_the_tempo() -> None:
    for tempo in (0.25, 0.45):
        rec = _recite(112, 1, tempo=tempo)
        madd = next(g for g in rec.truth["groups"] if g["phonemes"][0] == P.alif)
        assert madd["end_s"] - madd["start_s"] == pytest.approx(len(madd["phonemes"]) * tempo, abs=0.01)
        # A voweled letter (onset and vowel: the haraka the tajweed service measures) lasts the
        # tempo, unless its onset is so long that the vowel keeps its floor of half a haraka.
        for g in rec.truth["groups"]:
            if len(g["phonemes"]) == 2 and g["phonemes"][1] in (P.fatha, P.dama, P.kasra):
                duration = g["end_s"] - g["start_s"]
                assert tempo - 0.01 <= duration <= tempo + max(0.01, 0.14 - tempo / 2) + 1e-6, g


def test_the_noise_floor_sits_under_the_speech_by_its_snr() -> None:
    quiet, noisy = _recite(112, 1), _recite(112, 1, snr_db=30.0)
    assert np.array_equal(_recite(112, 1, snr_db=30.0).samples, noisy.samples), "the same noise every time"
    edge = noisy.samples[: int(0.3 * RATE)]
    speech_power = float(np.mean(np.square(quiet.samples, dtype=np.float64)))
    noise_power = float(np.mean(np.square(edge, dtype=np.float64)))
    assert 10 * np.log10(speech_power / noise_power) == pytest.approx(30.0, abs=1.0)


def test_a_stop_between_ayahs_is_a_silent_pause() -> None:
    rec = _recite(112, 1, last_ayah=2)
    ayah_of = [w["ayah"] for w in rec.truth["words"]]
    groups = rec.truth["groups"]
    ayahs = [ayah_of[g["word_index"]] for g in groups]
    turn = next(i for i in range(len(groups) - 1) if ayahs[i] != ayahs[i + 1])
    gap = (groups[turn]["end_s"], groups[turn + 1]["start_s"])
    assert gap[1] - gap[0] == pytest.approx(0.6, abs=0.01)
    assert _db(rec, gap[0] + 0.03, gap[1] - 0.03) < -60.0


def test_each_mistake_kind_changes_the_truth_as_claimed() -> None:
    clean = _recite(112, 1)  # قُلْ هُوَ ٱللَّهُ أَحَدٌ
    ref = clean.reference.phonemes

    letter = _recite(112, 1, "letter:0")
    assert letter.truth["phonemes"] == ref.replace(P.qaf, P.kaf, 1)
    assert _group(letter, 0)[0]["sifat"]["hams_or_jahr"] == "hams"  # kaf is whispered, qaf is not

    haraka = _recite(112, 1, "haraka:0")
    assert _group(haraka, 0)[0]["phonemes"] == P.qaf + P.fatha

    drop = _recite(112, 1, "drop-word:1")
    assert not drop.truth["words"][1]["recited"]
    assert drop.truth["phonemes"] == ref.replace(P.haa + P.dama + P.waw + P.fatha, "", 1)
    assert drop.truth["duration_s"] < clean.truth["duration_s"] - 0.5

    extra = _recite(112, 1, "extra-word:1")
    assert extra.truth["phonemes"].startswith(ref[:7] + "وَءِذ")
    assert extra.truth["duration_s"] > clean.truth["duration_s"] + 0.5

    def madd_span(rec: Recitation) -> float:
        g = next(g for g in _group(rec, 2) if g["phonemes"][0] == P.alif)
        return g["end_s"] - g["start_s"]

    short = _recite(112, 1, "short-madd:2")
    assert P.alif * 2 not in short.truth["phonemes"] and madd_span(short) == pytest.approx(TEMPO, abs=0.01)
    long = _recite(112, 1, "long-madd:2")
    assert P.alif * 4 in long.truth["phonemes"] and madd_span(long) == pytest.approx(4 * TEMPO, abs=0.01)

    qalqalah = _recite(112, 1, "no-qalqalah:3")
    last = _group(qalqalah, 3)[-1]
    assert P.qlqla not in qalqalah.truth["phonemes"] and last["sifat"]["qalqla"] == "not_moqalqal"
    assert qalqalah.truth["duration_s"] < clean.truth["duration_s"]

    # 1:7 ... ٱلضَّآلِّينَ: no ghunnah there; 2:2's لِّلْمُتَّقِينَ neither; 108:1 إِنَّآ has one.
    ghunnah_clean = _recite(108, 1)
    ghunnah = _recite(108, 1, "no-ghunnah:0")
    g_clean, g_said = _group(ghunnah_clean, 0)[1], _group(ghunnah, 0)[1]
    assert g_clean["sifat"]["ghonna"] == "maghnoon" and g_said["sifat"]["ghonna"] == "not_maghnoon"
    assert len(g_said["phonemes"]) < len(g_clean["phonemes"])
    assert g_said["end_s"] - g_said["start_s"] < g_clean["end_s"] - g_clean["start_s"] - TEMPO

    for rec, kind in ((letter, "letter"), (drop, "drop-word"), (ghunnah, "no-ghunnah")):
        assert [m["kind"] for m in rec.truth["mistakes"]] == [kind]


def test_every_kind_is_known_and_bad_mistakes_are_refused_by_name() -> None:
    assert set(KINDS) >= {"letter", "haraka", "drop-word", "extra-word", "short-madd", "long-madd",
                          "no-ghunnah", "no-qalqalah"}
    with pytest.raises(InvalidArgument, match="kind must be one of"):
        Mistake.parse("mumble:1")
    with pytest.raises(InvalidArgument, match="has no sound this mistake can change"):
        _recite(112, 1, "no-ghunnah:0")
    with pytest.raises(InvalidArgument, match="has 4 words"):
        _recite(112, 1, "letter:9")
    with pytest.raises(InvalidArgument, match="tempo"):
        Spec(112, 1, tempo=3.0)
    with pytest.raises(InvalidArgument, match="only the Arabic voice"):
        Voice("en")


def test_cli_writes_the_audio_and_the_truth_beside_it(tmp_path: Path) -> None:
    from services.cli import main

    out = tmp_path / "r.wav"
    assert main(["synth", str(out), "--surah", "112", "--ayah", "1", "--voice", "ar+f2:60:160",
                 "--tempo", "0.35", "--mistake", "letter:0", "--mistake", "long-madd:2"]) == 0
    samples, rate = soundfile.read(out)
    truth = json.loads((tmp_path / "r.truth.json").read_text(encoding="utf-8"))
    assert rate == truth["sample_rate"] == RATE
    assert len(samples) / rate == pytest.approx(truth["duration_s"], abs=1e-3)
    assert [m["kind"] for m in truth["mistakes"]] == ["letter", "long-madd"]
    assert truth["voice"] == {"name": "ar+f2", "pitch": 60, "rate": 160}
    assert main(["synth", str(out), "--surah", "112", "--ayah", "1", "--mistake", "letter"]) == 2


@pytest.mark.parametrize("voice", VOICES)
def test_held_nasals_and_madds_sound_throughout_in_every_voice(voice: str) -> None:
    # Some voices say a sakin nasal as a murmur, a silence and a click, and end every vowel in a
    # faint decay: stretched, they made ghunnahs silent and madds a murmur at the noise floor, which
    # no reciter does (and the segmenter took for pauses inside words).
    rec = recite(Spec(108, 1, tempo=0.46, voice=Voice(voice), snr_db=None))
    held = held_runs(rec.truth)
    assert len(held) >= 3, rec.truth["phonemes"]
    peak = float(np.max(frame_energy_db(rec.samples)))
    for symbols, start_s, end_s in held:
        # The body of the held sound (40 ms in from either end: the joins fade) never falls quiet.
        piece = rec.samples[int((start_s + 0.04) * RATE) : int((end_s - 0.04) * RATE)]
        floor = float(np.min(frame_energy_db(piece))) - peak
        assert floor > -30.0, (voice, symbols, round(floor, 1))


def test_a_range_is_recited_ayah_by_ayah_as_stopped_on() -> None:
    from services.demo.synth.script import reference_for

    rec = _recite(112, 1, last_ayah=2)
    first, second = reference_for(112, 1), reference_for(112, 2)
    # أَحَدٌ as stopped on (its qalqalah), ٱللَّهُ as started: not أَحَدُنِ ٱللَّهُ with a pause inside.
    assert rec.truth["phonemes"] == first.phonemes + second.phonemes
    assert first.phonemes.endswith("دڇ") and second.phonemes.startswith("ءَ")
    ref = rec.reference
    assert [w.uthmani for w in ref.words] == [w.uthmani for w in (*first.words, *second.words)]
    for word in ref.words:
        assert ref.uthmani[word.uthmani_span.start : word.uthmani_span.end] == word.uthmani
    for group in ref.groups:
        assert ref.phonemes[group.phoneme_start : group.phoneme_end] == group.phonemes
        word = ref.words[group.word_index]
        assert word.phoneme_start <= group.phoneme_start < group.phoneme_end <= word.phoneme_end
