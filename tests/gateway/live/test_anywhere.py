"""The locating phase of a live session (services/gateway/live/anywhere.py) without a network:
the live core in-process with the real alignment and tajweed stages, the tone stand-in asr, and
a passage index of a few surahs."""

from __future__ import annotations

import pytest

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.follow.preludes import moshaf_key, prelude_phonemes
from services.gateway.live import anywhere
from services.gateway.live.anywhere import ahead, ends_surah
from services.gateway.locate_settings import LocateConfig
from services.gateway.locating import LocateService
from services.gateway.reference.cache import MemoryStore
from services.gateway.stage_calls import StageCalls
from services.locate.index import WordPlace
from tests.gateway.live.harness import build_assessor, join, pcm_config, recite_words, run_session
from tests.gateway.live.tone_asr import ToneAsr, tone_for

LOCATE = common_pb2.Target(locate=common_pb2.LocateTarget())
SURAH_112 = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=112, first_ayah=1, last_ayah=4))


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    assessor = build_assessor(ToneAsr())
    assessor.locator = LocateService(MemoryStore(8), LocateConfig(surahs=(1, 27, 103, 112, 113, 114), workers=1))
    return assessor


def test_ahead_stops_at_ayah_ends_within_the_surah() -> None:
    # 2:255 has 50 words: 10 words after its 5th word lie inside it; its last word is the end.
    assert ahead(WordPlace(2, 255, 4), 10) == WordPlace(2, 255, 49)
    # 112:1-4 has 4 + 2 + 4 + 5 words: from 112:1's last word, 3 more words end in 112:3.
    assert ahead(WordPlace(112, 1, 3), 3) == WordPlace(112, 3, 3)
    assert ahead(WordPlace(112, 1, 3), 100) == WordPlace(112, 4, 4)
    assert ends_surah(WordPlace(112, 4, 4)) and not ends_surah(WordPlace(112, 3, 3))


async def test_segments_heard_while_locating_are_followed_on_their_decodes(
    assessor: Assessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows: list[float] = []
    transcribe = StageCalls.transcribe

    async def counted(self: StageCalls, audio, options, timeout):  # type: ignore[no-untyped-def]
        windows.append(round(audio.duration_s, 3))
        return await transcribe(self, audio, options, timeout)

    monkeypatch.setattr(StageCalls, "transcribe", counted)
    # The basmala alone cannot be placed (1:1 and 27:30); with 112:1-2 after it, it can.
    basmala = tone_for(prelude_phonemes(moshaf_key(None))[1])
    audio = join(basmala, await recite_words(assessor, SURAH_112, 0, 6))
    run = await run_session(assessor, pcm_config(LOCATE), audio)
    segments = [e.segment.time_span for e in run.of("segment")]
    assert len(segments) == 2
    answers = [e.located for e in run.of("located")]
    assert not answers[0].located.sure and answers[-1].located.sure and answers[-1].words
    assert [e.prelude.kind for e in run.of("prelude")] == ["basmala"]
    assert set(run.last_verdicts()) == set(range(6))
    # Each segment's window went to the asr once: while locating; the follower reused the decode.
    for span in segments:
        assert windows.count(round(span.end_s - span.start_s, 3)) == 1, (span, windows)


async def test_the_words_followed_grow_as_the_reciter_nears_their_end(
    assessor: Assessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Followed one word past the span found (to its ayah's end), the look-ahead soon passes the
    # words followed: the section's target grows, ayah by ayah, to the end of the surah.
    monkeypatch.setattr(anywhere, "FOLLOW_AHEAD_WORDS", 1)
    monkeypatch.setattr(anywhere, "AHEAD_WORDS", 3)
    audio = join(*[await recite_words(assessor, SURAH_112, a, b) for a, b in ((0, 4), (4, 6), (6, 10), (10, 15))])
    run = await run_session(assessor, pcm_config(LOCATE), audio)
    followed = [e.located for e in run.of("located") if e.located.words]
    assert followed[0].section == 0 and not followed[0].extended
    grown = followed[1:]
    assert grown and all(f.extended and f.section == 0 for f in grown)
    sizes = [len(f.words) for f in followed]
    assert sizes == sorted(sizes) and sizes[-1] == 15, sizes
    # The earlier words keep their indexes: each list begins with the words of the one before.
    for before, after in zip(followed, grown, strict=False):
        keys = [(w.surah, w.ayah, w.word_in_ayah, w.uthmani) for w in after.words]
        assert keys[: len(before.words)] == [(w.surah, w.ayah, w.word_in_ayah, w.uthmani) for w in before.words]
    assert run.final.target == SURAH_112
    assert {w.word_index: w.verdict for w in run.final.words} == run.last_verdicts()
    assert len(run.final.words) == 15 and run.final.content.status == gateway_pb2.CONTENT_STATUS_MATCH


async def test_a_jump_found_over_two_short_segments_starts_at_the_first(assessor: Assessor) -> None:
    # 112:1-2, then 103:1 (one word: too little to be sure of alone), then 103:2.
    surah_103 = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=103, first_ayah=1, last_ayah=3))
    audio = join(
        await recite_words(assessor, SURAH_112, 0, 6),
        await recite_words(assessor, surah_103, 0, 1),
        await recite_words(assessor, surah_103, 1, 5),
    )
    run = await run_session(assessor, pcm_config(LOCATE), audio)
    followed = [e.located for e in run.of("located") if e.located.words and not e.located.extended]
    places = [(f.section, f.relocated, f.located.passage.surah, f.located.passage.ayah) for f in followed]
    assert places == [(0, False, 112, 1), (1, True, 103, 1)], places
    # The one-word segment read a little like words ahead in 112 (a skip, alone); it is 103's
    # first word now, and 112's Assessment keeps nothing of it (no words "not recited").
    final = run.final
    assert final.target == common_pb2.Target(
        ayah_range=common_pb2.AyahRangeTarget(surah=103, first_ayah=1, last_ayah=2)
    )
    assert final.words[0].segment_index == 1 and len(final.words) == 5
    assert [s.index for s in final.segments] == [1, 2]
    earlier = final.sections[0]
    assert [s.index for s in earlier.segments] == [0] and len(earlier.words) == 6
    assert gateway_pb2.WORD_VERDICT_MISTAKE not in {w.verdict for w in earlier.words}
