"""A real gateway on loopback for the live tests: local mode (every stage in-process, the tiny
development checkpoint), gRPC and HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from services.common.pb import common_pb2, gateway_pb2

TARGET = common_pb2.Target(
    words=common_pb2.WordRangeTarget(surah=8, ayah=75, start_word=17, word_count=9)
)  # test.wav: 8:75 (word 17) into 9:1


def environ(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "MUAALEM_GATEWAY_HOST": "127.0.0.1",
        "MUAALEM_GATEWAY_PORT": "0",
        "MUAALEM_GATEWAY_METRICS_PORT": "-1",
        "MUAALEM_SHUTDOWN_DELAY_S": "0",
        "MUAALEM_GATEWAY_MODE": "local",
        "MUAALEM_GATEWAY_HTTP_PORT": "0",
        "MUAALEM_ASR_MODEL": str(tmp / "absent"),
        "MUAALEM_ASR_DEV_FALLBACK": "tiny",
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_CACHE_DIR": str(tmp / "cache"),
        **extra,
    }


def wav_pcm(path: Path) -> bytes:
    """The recording as 16 kHz mono s16le."""
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    assert rate == 16000
    return np.ascontiguousarray(samples.mean(axis=1).astype("<i2")).tobytes()


def live_config(target: common_pb2.Target = TARGET, rate: int = 16000) -> gateway_pb2.LiveConfig:
    return gateway_pb2.LiveConfig(
        target=target,
        pcm=common_pb2.RawPcm(sample_rate_hz=rate, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )


async def stream(
    config: gateway_pb2.LiveConfig, pcm: bytes, *, speed: float, chunk_s: float = 0.1, bytes_per_s: int = 32000
) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    """The config, then the audio at `speed` times real time (0: as fast as it is taken)."""
    yield gateway_pb2.AssessLiveRequest(config=config)
    step = int(chunk_s * bytes_per_s) // 2 * 2
    started = time.perf_counter()
    for offset in range(0, len(pcm), step):
        if speed > 0:
            due = started + offset / bytes_per_s / speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + step])


def last_verdicts(events: list[gateway_pb2.AssessLiveResponse]) -> dict[int, int]:
    verdicts: dict[int, int] = {}
    for event in events:
        if event.WhichOneof("kind") == "words":
            for word in event.words.words:
                verdicts[word.word_index] = word.verdict
    return verdicts
