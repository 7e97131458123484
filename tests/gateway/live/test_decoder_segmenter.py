"""The decoder and the segmenter of live sessions, fed in small chunks as a client would."""

from __future__ import annotations

import io
import time

import numpy as np
import numpy.typing as npt
import pytest

from services.common.audio import decode_bytes
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.live.decoder import decoder_for
from services.gateway.live.segmenter import Segmenter, has_speech
from services.gateway.live.settings import LiveSettings
from tests.conftest import AUDIO_DIR


def _recitation() -> npt.NDArray[np.float32]:
    return decode_bytes((AUDIO_DIR / "test.wav").read_bytes(), max_duration_s=60).samples


def _encode(samples: npt.NDArray[np.float32], fmt: str) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as box:
        stream = box.add_stream("libopus", rate=48000)
        stream.layout = "mono"  # type: ignore[union-attr]
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        for converted in resampler.resample(frame):
            for packet in stream.encode(converted):  # type: ignore[union-attr]
                box.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            box.mux(packet)
    return out.getvalue()


def _feed(config: gateway_pb2.LiveConfig, data: bytes, chunk: int) -> npt.NDArray[np.float32]:
    decoder = decoder_for(config)
    parts = [decoder.feed(data[k : k + chunk]) for k in range(0, len(data), chunk)]
    parts.append(decoder.finish())
    return np.concatenate(parts)


def test_raw_pcm_at_any_rate_and_channel_count_comes_out_at_16_khz_mono() -> None:
    x = _recitation()
    import soxr

    at_44k = soxr.resample(x, 16000, 44100).astype(np.float32)
    stereo = np.stack([at_44k, at_44k], axis=1)
    data = (np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()
    config = gateway_pb2.LiveConfig(
        pcm=common_pb2.RawPcm(sample_rate_hz=44100, channels=2, encoding=common_pb2.PCM_ENCODING_S16LE)
    )
    y = _feed(config, data, 4 * 1234)
    assert abs(len(y) - len(x)) < 200
    n = min(len(x), len(y)) - 400
    assert np.corrcoef(x[200:n], y[200:n])[0, 1] > 0.99


@pytest.mark.parametrize(
    "fmt,container", [("ogg", gateway_pb2.LIVE_CONTAINER_OGG), ("webm", gateway_pb2.LIVE_CONTAINER_WEBM)]
)
def test_opus_in_ogg_and_webm_is_decoded_as_it_arrives(fmt: str, container: int) -> None:
    x = _recitation()
    data = _encode(x, fmt)
    decoder = decoder_for(gateway_pb2.LiveConfig(container=container))  # type: ignore[arg-type]
    half = len(data) // 2
    total = [decoder.feed(data[k : min(k + 2000, half)]) for k in range(0, half, 2000)]
    # Incremental: the first half decodes before the rest arrives (the worker thread may lag
    # on a loaded machine, so it gets a moment).
    deadline = time.monotonic() + 10
    while sum(b.size for b in total) < 16000 and time.monotonic() < deadline:
        time.sleep(0.05)
        total.append(decoder.feed(b""))
    assert sum(b.size for b in total) >= 16000
    total += [decoder.feed(data[k : k + 2000]) for k in range(half, len(data), 2000)]
    total.append(decoder.finish())
    y = np.concatenate(total)
    assert abs(len(y) - len(x)) < 0.1 * 16000


@pytest.mark.parametrize(
    "config,words",
    [
        (gateway_pb2.LiveConfig(), "no audio layout"),
        (gateway_pb2.LiveConfig(pcm=common_pb2.RawPcm(sample_rate_hz=4000, encoding=1)), "8 kHz"),
        (gateway_pb2.LiveConfig(pcm=common_pb2.RawPcm(sample_rate_hz=16000)), "encoding"),
        (gateway_pb2.LiveConfig(pcm=common_pb2.RawPcm(sample_rate_hz=16000, encoding=1, channels=99)), "channels"),
    ],
)
def test_a_wrong_layout_is_refused_by_name(config: gateway_pb2.LiveConfig, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        decoder_for(config)


def test_garbage_in_a_container_is_an_invalid_argument() -> None:
    decoder = decoder_for(gateway_pb2.LiveConfig(container=gateway_pb2.LIVE_CONTAINER_OGG))
    decoder.feed(b"this is not an ogg stream at all" * 100)
    with pytest.raises(InvalidArgument, match="ogg"):
        decoder.finish()


def _segments(x: npt.NDArray[np.float32], settings: LiveSettings) -> list[tuple[float, float, bool]]:
    segmenter = Segmenter(settings)
    found = []
    for k in range(0, len(x), 1600):
        found += segmenter.feed(x[k : k + 1600])
    found += segmenter.finish()
    return [(s.start_s, s.end_s, s.closed_by_pause) for s in found]


def test_the_tuned_segmenter_cuts_the_sample_recitations_at_their_pauses() -> None:
    # 2:282's first 15 s: 4.3 s of room noise (-55 dB), then recitation whose energy never falls
    # near the room noise again; Silero alone heard "pauses" of 0.29-0.54 s in its held vowels
    # (at -22 dB, periodic), which cut words in two. test.wav (8:75 into 9:1) has no pause either.
    x = decode_bytes((AUDIO_DIR / "002282_15.wav").read_bytes(), max_duration_s=60).samples
    segments = _segments(x, LiveSettings())
    assert len(segments) == 1
    start, end, by_pause = segments[0]
    assert 4.1 <= start <= 4.4 and end >= 14.7 and by_pause
    assert len(_segments(_recitation(), LiveSettings())) == 1


def test_room_noise_spliced_into_a_recitation_is_a_pause_and_closes_the_segment() -> None:
    x = decode_bytes((AUDIO_DIR / "002282_15.wav").read_bytes(), max_duration_s=60).samples
    rate = 16000
    noise = x[int(0.5 * rate) : int(1.5 * rate)]  # the lead-in's room noise: 1 s
    first, second = x[int(4.2 * rate) : int(9.0 * rate)], x[int(9.0 * rate) :]
    spliced = np.concatenate([x[: int(4.2 * rate)], first, noise[: int(0.6 * rate)], second])
    segments = _segments(spliced, LiveSettings())
    assert len(segments) == 2
    assert all(by_pause for _, _, by_pause in segments)
    # The pause is where the noise was spliced in, give or take the pad kept around speech.
    assert 8.9 <= segments[0][1] <= 9.2 + 0.15
    assert 9.5 <= segments[1][0] <= 9.8 + 0.1
    # A pause too short (0.2 s) is not one.
    short = np.concatenate([x[: int(4.2 * rate)], first, noise[: int(0.2 * rate)], second])
    assert len(_segments(short, LiveSettings())) == 1


def test_a_segment_with_no_pause_is_cut_at_the_cap() -> None:
    x = decode_bytes((AUDIO_DIR / "fatiha_long_track.wav").read_bytes(), max_duration_s=60).samples
    segments = _segments(x, LiveSettings(max_segment_s=8.0))
    assert any(not by_pause for _, _, by_pause in segments)
    assert all(end - start <= 8.2 for start, end, _ in segments)


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(48000, np.float32),
        (np.random.default_rng(1).normal(0, 0.2, 48000)).astype(np.float32),
        (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)).astype(np.float32),
    ],
    ids=["silence", "white-noise", "tone"],
)
def test_no_speech_in_silence_noise_or_a_tone(signal: npt.NDArray[np.float32]) -> None:
    assert not has_speech(signal)


def test_a_recitation_has_speech() -> None:
    assert has_speech(_recitation())
