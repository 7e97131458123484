"""Following the reciter on posteriorgrams of known truth, through the real stages."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from tests.gateway.live.harness import build_assessor, join, pcm_config, recite_words, run_session
from tests.gateway.live.tone_asr import ToneAsr, tone_for

# 1:2-1:4: nine words, three ayahs.
TARGET = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=1, first_ayah=2, last_ayah=4))
CORRECT = gateway_pb2.WORD_VERDICT_CORRECT


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    return build_assessor(ToneAsr())


async def test_a_straight_recitation_is_followed_word_by_word(assessor: Assessor) -> None:
    audio = join(
        await recite_words(assessor, TARGET, 0, 4),
        await recite_words(assessor, TARGET, 4, 6),
        await recite_words(assessor, TARGET, 6, 9),
    )
    run = await run_session(assessor, pcm_config(TARGET), audio)
    started = run.of("started")[0].started
    assert len(started.words) == 9
    assert len(run.of("segment")) == 3
    assert [e.position.next_word for e in run.of("position")] == [4, 6, 9]
    assert {e.position.reason for e in run.of("position")} == {"advance"}
    verdicts = run.last_verdicts()
    assert set(verdicts) == set(range(9))
    live_first = {}
    for event in run.of("words"):
        if not event.words.revised:
            for word in event.words.words:
                live_first.setdefault(word.word_index, word.verdict)
    # The tones spell every phoneme right: no word has a letter wrong (their uniform timing
    # may still break a madd's length, a tajweed issue).
    assert set(live_first.values()) <= {CORRECT, gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE}, live_first
    assert CORRECT in live_first.values()
    assert {w.word_index: w.verdict for w in run.final.words} == verdicts
    assert all(e.words.delay_ms >= 0 for e in run.of("words"))


async def test_a_repeat_moves_the_position_back(assessor: Assessor) -> None:
    audio = join(
        await recite_words(assessor, TARGET, 0, 4),
        await recite_words(assessor, TARGET, 2, 6),
        await recite_words(assessor, TARGET, 6, 9),
    )
    run = await run_session(assessor, pcm_config(TARGET), audio)
    reasons = [(e.position.next_word, e.position.reason) for e in run.of("position")]
    assert reasons == [(4, "advance"), (6, "repeat"), (9, "advance")]


async def test_a_restart_of_the_ayah_is_recognised(assessor: Assessor) -> None:
    audio = join(
        await recite_words(assessor, TARGET, 0, 3),
        await recite_words(assessor, TARGET, 0, 6),
        await recite_words(assessor, TARGET, 6, 9),
    )
    run = await run_session(assessor, pcm_config(TARGET), audio)
    reasons = [(e.position.next_word, e.position.reason) for e in run.of("position")]
    assert reasons == [(3, "advance"), (6, "restart"), (9, "advance")]


async def test_skipped_words_are_reported_missing(assessor: Assessor) -> None:
    audio = join(await recite_words(assessor, TARGET, 0, 4), await recite_words(assessor, TARGET, 6, 9))
    run = await run_session(assessor, pcm_config(TARGET), audio)
    reasons = [(e.position.next_word, e.position.reason) for e in run.of("position")]
    assert reasons == [(4, "advance"), (9, "skip")]
    skip_event = run.of("words")[1].words
    assert list(skip_event.missing_words) == [4, 5]
    missing = {w.word_index: w.verdict for w in skip_event.words if w.word_index in (4, 5)}
    assert missing == {4: gateway_pb2.WORD_VERDICT_MISTAKE, 5: gateway_pb2.WORD_VERDICT_MISTAKE}


async def test_istiadha_and_basmala_are_recognised_not_judged(assessor: Assessor) -> None:
    from services.gateway.follow.preludes import prelude_phonemes as _prelude_phonemes
    from services.gateway.reference import moshaf

    istiadha, basmala = _prelude_phonemes(tuple(sorted(moshaf.to_dict(None).items())))
    audio = join(tone_for(istiadha), tone_for(basmala), await recite_words(assessor, TARGET, 0, 4))
    run = await run_session(assessor, pcm_config(TARGET), audio)
    assert [e.prelude.kind for e in run.of("prelude")] == ["istiadha", "basmala"]
    assert [e.position.next_word for e in run.of("position")] == [4]
    first_live = run.of("words")[0].words
    assert [w.word_index for w in first_live.words] == list(range(4))
    assert not run.of("off_target")


async def test_basmala_read_on_into_the_first_words_is_cut_off(assessor: Assessor) -> None:
    from services.gateway.follow.preludes import prelude_phonemes as _prelude_phonemes
    from services.gateway.reference import moshaf

    _, basmala = _prelude_phonemes(tuple(sorted(moshaf.to_dict(None).items())))
    audio = join(np.concatenate([tone_for(basmala), await recite_words(assessor, TARGET, 0, 2)]))
    run = await run_session(assessor, pcm_config(TARGET), audio)
    prelude = run.of("prelude")
    assert [e.prelude.kind for e in prelude] == ["basmala"]
    words = run.of("words")[0].words.words
    assert [w.word_index for w in words] == [0, 1]
    # The first word is timed after the basmala, not stretched over it.
    assert words[0].time_span.start_s >= prelude[0].prelude.time_span.end_s - 0.3


async def test_another_passage_is_off_target_then_followed_back(assessor: Assessor) -> None:
    elsewhere = common_pb2.Target(ayah=common_pb2.AyahTarget(surah=112, ayah=1))
    other = (await assessor.reference(elsewhere, None)).reference.phonemes
    audio = join(
        await recite_words(assessor, TARGET, 0, 4), tone_for(other), await recite_words(assessor, TARGET, 4, 9)
    )
    run = await run_session(assessor, pcm_config(TARGET), audio)
    off = run.of("off_target")
    assert len(off) == 1
    assert any(p.surah == 112 for p in off[0].off_target.likely_recited)
    reasons = [(e.position.next_word, e.position.reason) for e in run.of("position")]
    assert reasons == [(4, "advance"), (9, "follow")]


async def test_a_stage_down_mid_session_gives_degraded_events_and_the_session_goes_on() -> None:
    asr = ToneAsr()
    assessor = build_assessor(asr)
    audio = join(
        await recite_words(assessor, TARGET, 0, 4),
        await recite_words(assessor, TARGET, 4, 6),
        await recite_words(assessor, TARGET, 6, 9),
    )
    asr.calls = 0
    asr.fail_calls = {2}  # the second segment's transcription
    run = await run_session(assessor, pcm_config(TARGET), audio)
    degraded = [e for e in run.of("words") if list(e.degraded) == ["asr"]]
    assert len(degraded) == 1 and degraded[0].words.segment_index == 1
    # The next segment is still followed (words 4-5 were not heard, so they are skipped).
    assert [(e.position.next_word, e.position.reason) for e in run.of("position")] == [(4, "advance"), (9, "skip")]
    assert run.final.words and not run.final.degraded


async def test_a_client_faster_than_the_stages_is_slowed_not_buffered() -> None:
    """Backpressure: with the asr taking 0.4 s per call and at most 2 s of audio allowed to wait
    for it, feeding a minute of segments as fast as possible waits in feed()."""
    import asyncio
    import time

    from services.gateway.live.session import LiveSession
    from services.gateway.live.settings import LiveSettings

    asr = ToneAsr()
    assessor = build_assessor(asr)
    words = [await recite_words(assessor, TARGET, k, k + 1) for k in range(9)]
    audio = join(*words)
    slow_transcribe = asr.Transcribe

    async def slow(request, context):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.4)
        return await slow_transcribe(request, context)

    asr.Transcribe = slow  # type: ignore[method-assign]
    session = LiveSession(assessor, LiveSettings(vad="energy", max_buffered_s=2.0), pcm_config(TARGET))
    await session.start()
    data = audio.astype("<f4").tobytes()
    most_pending = 0.0
    started = time.perf_counter()
    for offset in range(0, len(data), 16000):
        await session.feed(data[offset : offset + 16000])
        most_pending = max(most_pending, session._pending_s)
    fed_in = time.perf_counter() - started
    await session.finish()
    await session.close()
    segments = 9
    # Without backpressure feeding takes a few ms; with it, it waits for most of the calls.
    assert fed_in > 0.4 * (segments - 4)
    assert most_pending < 2.0 + 3.0  # the cap plus at most one segment over it


async def test_a_segment_the_aligner_refuses_does_not_end_the_session() -> None:
    asr = ToneAsr()
    assessor = build_assessor(asr)
    audio = join(await recite_words(assessor, TARGET, 0, 4), await recite_words(assessor, TARGET, 4, 9))
    asr.calls = 0
    asr.truncate_calls = {1}  # the first segment's posteriorgram cannot hold its words
    run = await run_session(assessor, pcm_config(TARGET), audio)
    first = [e for e in run.of("words") if e.words.segment_index == 0]
    assert len(first) == 1 and list(first[0].degraded) == ["alignment"] and not first[0].words.words
    assert [(e.position.next_word, e.position.reason) for e in run.of("position")] == [(9, "skip")]
    assert run.final.words


async def test_a_lone_short_segment_is_decoded_with_the_word_before_it(
    assessor: Assessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.gateway.follow import follower as session

    # Tones make every word long: call a 3 s segment "short" for this test.
    monkeypatch.setattr(session, "LOOKBACK_BELOW_S", 3.0)
    audio = join(await recite_words(assessor, TARGET, 0, 4), await recite_words(assessor, TARGET, 4, 5))
    run = await run_session(assessor, pcm_config(TARGET), audio)
    second = run.of("words")[1].words
    assert [w.word_index for w in second.words] == [3, 4]  # word 3 again, as look-back
    assert [(e.position.next_word, e.position.reason) for e in run.of("position")] == [(4, "advance"), (5, "advance")]


@pytest.mark.parametrize("gain,code", [(0.03, "too_quiet"), (4.0, "clipping")])
async def test_quiet_and_clipping_recordings_are_warned(assessor: Assessor, gain: float, code: str) -> None:
    audio = np.clip(join(await recite_words(assessor, TARGET, 0, 4)) * gain, -1.0, 1.0).astype(np.float32)
    run = await run_session(assessor, pcm_config(TARGET), audio)
    assert [e.warning.code for e in run.of("warning")] == [code]
    assert run.of("final")
