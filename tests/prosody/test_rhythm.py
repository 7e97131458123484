"""Rhythm metrics on interval sequences of known durations: exact values worked by hand."""

from __future__ import annotations

import pytest

from services.prosody.rhythm import VOWELS, Interval, intervals, npvi, rhythm, rpvi, varco


def test_npvi_exact() -> None:
    # |0.1-0.3|/0.2 = 1, |0.3-0.1|/0.2 = 1  -> 100 * mean(1, 1) = 100
    assert npvi([0.1, 0.3, 0.1]) == pytest.approx(100.0)
    # |0.2-0.2| = 0, |0.2-0.4|/0.3 = 2/3 -> 100 * (0 + 2/3) / 2
    assert npvi([0.2, 0.2, 0.4]) == pytest.approx(100 / 3)
    assert npvi([0.15] * 5) == 0.0
    assert npvi([0.2]) == 0.0


def test_rpvi_and_varco_exact() -> None:
    assert rpvi([0.1, 0.3, 0.1]) == pytest.approx(0.2)
    # mean 0.2, population std sqrt(((0.1)^2 + 0 + (0.1)^2) / 3)
    assert varco([0.1, 0.2, 0.3]) == pytest.approx(100 * (0.02 / 3) ** 0.5 / 0.2)
    assert varco([0.2, 0.2]) == 0.0


def test_intervals_merge_runs_and_find_pauses() -> None:
    fatha, kasra, alif = "\u064e", "\u0650", "\u0627"
    phones = [
        ("ب", 0.0, 0.1),
        (fatha, 0.1, 0.2),
        (alif, 0.2, 0.5),  # a madd joins the vowel before it
        ("س", 0.5, 0.6),
        ("م", 0.6, 0.7),  # two consonants: one interval
        (kasra, 0.7, 0.8),
        ("ل", 1.3, 1.4),  # after a 0.5 s gap: a pause
        (fatha, 1.4, 1.5),
    ]
    got = intervals(phones)
    assert [(i.kind, round(i.start_s, 3), round(i.end_s, 3)) for i in got] == [
        ("C", 0.0, 0.1),
        ("V", 0.1, 0.5),
        ("C", 0.5, 0.7),
        ("V", 0.7, 0.8),
        ("P", 0.8, 1.3),
        ("C", 1.3, 1.4),
        ("V", 1.4, 1.5),
    ]
    r = rhythm(got)
    v, c = [0.4, 0.1, 0.1], [0.1, 0.2, 0.1]
    assert r.varco_c == pytest.approx(varco(c))
    assert r.npvi_v == pytest.approx(npvi(v))
    assert r.npvi_v == pytest.approx(100 * (0.3 / 0.25 + 0) / 2)
    assert r.rpvi_c_ms == pytest.approx(100.0)
    assert r.varco_v == pytest.approx(varco(v))
    assert r.percent_v == pytest.approx(100 * 0.6 / 1.0)
    assert r.articulation_rate == pytest.approx(3 / 1.0)
    assert r.pause_ratio == pytest.approx(0.5 / 1.5)


def test_rhythm_of_nothing() -> None:
    r = rhythm([Interval("P", 0.0, 1.0)])
    assert (r.percent_v, r.articulation_rate, r.pause_ratio) == (0.0, 0.0, 1.0)


def test_vowels_match_the_phonetic_script() -> None:
    from quran_transcript import alphabet

    ph = alphabet.phonetics
    expected = set(alphabet.phonetic_groups.harakat) | {ph.alif, ph.yaa_madd, ph.waw_madd, ph.alif_momala}
    assert expected == VOWELS
