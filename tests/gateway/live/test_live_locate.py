"""AssessLive with target.locate over a real gRPC server on loopback (issue 25): the real
alignment and tajweed stages, the tone stand-in asr (it hears exactly the phonemes it is played),
and a passage index of a few surahs (Al-Fatiha and An-Naml for the basmala, Ar-Rahman for its
refrain, 103-114). The recitations are streamed at real time, so that the session can decode the
segment still open as it would a reciter's: at 5 phonemes a second the tones are slow (about
1.4 s a word), so "within four words" is several probes in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
import websockets
from google.protobuf import json_format

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.follow.preludes import moshaf_key, prelude_phonemes
from services.gateway.server import HttpFrontEnd, build
from tests.conftest import serving
from tests.gateway.live.harness import build_assessor, join, local_stages, recite_words
from tests.gateway.live.servers import environ, stream
from tests.gateway.live.tone_asr import ToneAsr, tone_for

pytestmark = pytest.mark.slow

LOCATE = common_pb2.Target(locate=common_pb2.LocateTarget())
SURAHS = "1,27,55,103-114"
Events = list[gateway_pb2.AssessLiveResponse]


def _range(surah: int, first: int, last: int) -> common_pb2.Target:
    return common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=surah, first_ayah=first, last_ayah=last))


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[MeshServer, GatewayApp, int]]:
    # Tones are not speech to Silero: the sessions segment on energy alone; no segment is cut at
    # the length cap (the slow tones of nine words take 11 s).
    env = environ(
        tmp_path_factory.mktemp("live-locate"),
        MUAALEM_LIVE_VAD="energy",
        MUAALEM_LIVE_MAX_SEGMENT_S="20",
        MUAALEM_LOCATE_SURAHS=SURAHS,
        MUAALEM_LOCATE_WARM="true",
    )
    server, app, http = build(env, stages=local_stages(ToneAsr()))
    assert isinstance(http, HttpFrontEnd)
    async with serving(server, ready_timeout=120, grace=1):
        assert app.assessor.locator is not None
        await app.assessor.locator.search_for(None)  # the index, before any session times itself
        yield server, app, http.port


@pytest.fixture(scope="module")
async def stub(gateway: tuple[MeshServer, GatewayApp, int]) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway[0].port}") as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def _config() -> gateway_pb2.LiveConfig:
    return gateway_pb2.LiveConfig(
        target=LOCATE, pcm=common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)
    )


def _pcm(audio: npt.NDArray[np.float32]) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def _session(stub: gateway_pb2_grpc.GatewayServiceStub, audio: npt.NDArray[np.float32], speed: float) -> Events:
    return [event async for event in stub.AssessLive(stream(_config(), _pcm(audio), speed=speed), timeout=180)]


async def _recite(*stretches: tuple[common_pb2.Target, int, int]) -> npt.NDArray[np.float32]:
    """Each stretch (a target's words [first, end)) in tones, a pause after each."""
    assessor = build_assessor(ToneAsr())
    return join(*[await recite_words(assessor, target, first, end) for target, first, end in stretches])


def _of(events: Events, kind: str) -> Events:
    return [e for e in events if e.WhichOneof("kind") == kind]


def _place(passage: gateway_pb2.RecognizedPassage) -> tuple[int, int, int]:
    return passage.surah, passage.ayah, passage.start_word


def _first_segment_end(events: Events) -> tuple[int, float]:
    """The index in the stream of the first `segment` event, and the end of its audio."""
    k = next(i for i, e in enumerate(events) if e.WhichOneof("kind") == "segment")
    return k, events[k].segment.time_span.end_s


def _words_by(events: Events, section: int) -> dict[int, int]:
    """The last verdict of each word in the `words` events of one section (they follow its
    `located` event and precede the next section's)."""
    current = -1
    verdicts: dict[int, int] = {}
    for event in events:
        kind = event.WhichOneof("kind")
        if kind == "located" and event.located.words:
            current = event.located.section
        elif kind == "words" and current == section:
            verdicts.update((w.word_index, w.verdict) for w in event.words.words)
    return verdicts


async def test_a_recitation_from_mid_surah_is_located_before_its_pause_and_assessed_as_far_as_recited(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    # 113:2-3 (nine words, no pause between them); 113:4-5 are never recited.
    events = await _session(stub, await _recite((_range(113, 1, 5), 4, 13)), speed=1.0)
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds[0] == "started" and kinds[-1] == "final", kinds
    assert events[0].started.target == LOCATE and not events[0].started.words
    sure = [e for e in _of(events, "located") if e.located.located.sure]
    assert len(sure) == 1, _of(events, "located")
    located = sure[0].located
    assert (located.section, located.relocated) == (0, False)
    assert _place(located.located.passage) == (113, 2, 0)
    # Followed from there to the end of the surah: 113:2-5.
    assert (located.words[0].surah, located.words[0].ayah) == (113, 2)
    assert {w.ayah for w in located.words} == {2, 3, 4, 5}
    # Decided on the open segment, within four words, before the reciter's first pause.
    first_segment, first_end = _first_segment_end(events)
    assert events.index(sure[0]) < first_segment
    assert located.heard_s < first_end and located.words_heard <= 4, (located.heard_s, located.words_heard)
    # Every word recited got its verdict, counted in the located words.
    verdicts = _words_by(events, 0)
    assert set(verdicts) == set(range(9)), verdicts
    final = events[-1].final
    # The final covers what was recited (113:2-3), not 113:4-5 as "not recited".
    assert final.target == _range(113, 2, 3)
    assert {(w.surah, w.ayah) for w in final.words} == {(113, 2), (113, 3)}
    assert {w.word_index: w.verdict for w in final.words} == verdicts
    assert final.content.status == gateway_pb2.CONTENT_STATUS_MATCH
    assert final.located.sure and _place(final.located.passage) == (113, 2, 0)
    assert not final.sections


async def test_a_jump_to_another_surah_starts_a_new_section_within_four_words(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    # 112:1-2, a pause, then 103:1-2 (another surah) as one stretch.
    audio = await _recite((_range(112, 1, 4), 0, 6), (_range(103, 1, 3), 0, 5))
    events = await _session(stub, audio, speed=1.0)
    followed = [e.located for e in _of(events, "located") if e.located.words]
    assert [(f.section, f.relocated, _place(f.located.passage)) for f in followed] == [
        (0, False, (112, 1, 0)),
        (1, True, (103, 1, 0)),
    ]
    jump = followed[1]
    assert jump.located.sure
    segments = [e.segment for e in _of(events, "segment")]
    assert len(segments) == 2
    # Relocated within four words of the second stretch, before it ended.
    assert jump.heard_s < segments[1].time_span.end_s and jump.words_heard <= 4, (jump.heard_s, jump.words_heard)
    assert events.index(_of(events, "located")[-1]) < events.index(_of(events, "segment")[1])
    # No word of 112 is reported wrong for the jump, nor is 103 off target.
    assert not _of(events, "off_target")
    right = {gateway_pb2.WORD_VERDICT_CORRECT, gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE}
    assert set(_words_by(events, 0)) == set(range(6)) and set(_words_by(events, 0).values()) <= right
    final = events[-1].final
    assert final.target == _range(103, 1, 2) and final.located.sure
    assert {(w.surah, w.ayah) for w in final.words} == {(103, 1), (103, 2)}
    assert [s.target for s in final.sections] == [_range(112, 1, 2)]
    earlier = final.sections[0]
    assert _place(earlier.located.passage) == (112, 1, 0)
    assert earlier.content.status == gateway_pb2.CONTENT_STATUS_MATCH
    assert {(w.surah, w.ayah) for w in earlier.words} == {(112, 1), (112, 2)}
    assert gateway_pb2.WORD_VERDICT_MISTAKE not in {w.verdict for w in [*final.words, *earlier.words]}


async def _basmala() -> npt.NDArray[np.float32]:
    return join(tone_for(prelude_phonemes(moshaf_key(None))[1]))


@pytest.mark.parametrize("opening", ["ar-rahman-refrain", "basmala"])
async def test_an_ambiguous_opening_is_not_sure_and_lists_its_candidates(
    stub: gateway_pb2_grpc.GatewayServiceStub, opening: str
) -> None:
    if opening == "basmala":
        audio, same = await _basmala(), (27, 30, 4)
    else:
        refrain = common_pb2.Target(ayah=common_pb2.AyahTarget(surah=55, ayah=13))
        audio, same = await _recite((refrain, 0, 4)), (55, 16, 0)
    events = await _session(stub, audio, speed=0.0)
    answers = [e.located.located for e in _of(events, "located")]
    assert answers and not any(a.sure for a in answers), answers
    last = answers[-1]
    assert last.ambiguous and same in {_place(c) for c in last.candidates}, last
    final = events[-1].final
    assert not final.located.sure and final.located.ambiguous
    assert same in {_place(c) for c in final.located.candidates}


async def test_without_a_locator_a_live_locate_is_refused_naming_the_field(
    gateway: tuple[MeshServer, GatewayApp, int],
    stub: gateway_pb2_grpc.GatewayServiceStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway[1].assessor, "locator", None)

    async def config_only() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        # No audio after it: a write after the server ended the call would be the client's INTERNAL.
        yield gateway_pb2.AssessLiveRequest(config=_config())

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await anext(aiter(stub.AssessLive(config_only(), timeout=60)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target.locate" in (caught.value.details() or ""), caught.value.details()


async def test_the_websocket_relays_located_events_as_it_relays_every_event(
    gateway: tuple[MeshServer, GatewayApp, int],
) -> None:
    frames: list[dict[str, Any]] = []
    async with websockets.connect(f"ws://127.0.0.1:{gateway[2]}/v1/live", max_size=None) as ws:
        await ws.send(json.dumps({"config": json_format.MessageToDict(_config())}))
        pcm = _pcm(await _basmala())
        for offset in range(0, len(pcm), 32000):
            await ws.send(pcm[offset : offset + 32000])
        await ws.send(json.dumps({"end": True}))
        frames.extend([json.loads(frame) async for frame in ws])
    located = [f["located"] for f in frames if "located" in f]
    assert located and "final" in frames[-1], frames[-1]
    # proto3 JSON: the candidates of the basmala, 27:30 among them.
    candidates = located[-1]["located"]["candidates"]
    assert {(c["surah"], c["ayah"]) for c in candidates} >= {(27, 30)}, candidates
