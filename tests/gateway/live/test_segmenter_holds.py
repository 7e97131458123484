"""The segmenter on synthesized recitations of known timing: held madds and ghunnahs (which
Silero calls non-speech) never end a segment, in quiet and in a noisy room, and the stop between
two ayahs still does. (A doubled stop's closure is silence: at the slowest tempo it can outlast
the minimum silence, and the follower joins the two halves of the word, follow/follower.py.)"""

from __future__ import annotations

import itertools
import shutil

import pytest

from services.demo.synth.espeak import Voice
from services.demo.synth.reciter import Recitation, Spec, recite
from services.gateway.live.segmenter import Segment, Segmenter
from services.gateway.live.settings import LiveSettings
from tests.synth.held import held_runs

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (`make test` installs Debian's espeak-ng)"
)


def _segments(rec: Recitation) -> list[Segment]:
    segmenter = Segmenter(LiveSettings())
    found: list[Segment] = []
    for offset in range(0, len(rec.samples), 1600):
        found += segmenter.feed(rec.samples[offset : offset + 1600])
    return found + segmenter.finish()


def _inside_a_held_sound(rec: Recitation, at_s: float) -> list[str]:
    return [symbols for symbols, start_s, end_s in held_runs(rec.truth) if start_s - 0.03 < at_s < end_s + 0.03]


@pytest.mark.parametrize("snr_db", [40.0, 20.0])
@pytest.mark.parametrize("voice", ["ar", "ar+f2", "ar+klatt"])
def test_held_sounds_do_not_end_a_segment_and_the_stop_between_ayahs_does(voice: str, snr_db: float) -> None:
    # 108:1-2: إِنَّآ (a ghunnah and a madd of 4-5 harakat), أَعْطَيْنَـٰكَ, ٱلْكَوْثَرَ, then a stop
    # and فَصَلِّ لِرَبِّكَ وَٱنْحَرْ; at the slowest tempo, where holds are longest.
    rec = recite(Spec(108, 1, last_ayah=2, tempo=0.46, voice=Voice(voice), snr_db=snr_db))
    segments = _segments(rec)
    gaps = [(a.end_s + b.start_s) / 2 for a, b in itertools.pairwise(segments)]
    cuts = [(round(at, 2), _inside_a_held_sound(rec, at)) for at in gaps]
    assert all(not held for _, held in cuts), cuts
    ayah_of = [w["ayah"] for w in rec.truth["words"]]
    groups = rec.truth["groups"]
    ayahs = [ayah_of[g["word_index"]] for g in groups]
    turn = next(i for i in range(len(groups) - 1) if ayahs[i] != ayahs[i + 1])
    stop = (groups[turn]["end_s"], groups[turn + 1]["start_s"])
    assert any(stop[0] - 0.05 <= at <= stop[1] + 0.05 for at in gaps), (stop, gaps)
