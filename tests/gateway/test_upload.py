"""Reassembling AssessStream uploads, with limits enforced while receiving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common.errors import InvalidArgument, TooLarge
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.upload import collect_stream


async def _parts(*items: gateway_pb2.AssessStreamRequest) -> AsyncIterator[gateway_pb2.AssessStreamRequest]:
    for item in items:
        yield item


def _header(pcm: bool = False) -> gateway_pb2.AssessStreamRequest:
    request = gateway_pb2.AssessRequest(target=common_pb2.Target(ayah=common_pb2.AyahTarget(surah=1, ayah=1)))
    if pcm:
        request.audio.pcm.CopyFrom(
            common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)
        )
    return gateway_pb2.AssessStreamRequest(header=request)


async def test_file_chunks_are_joined_in_order() -> None:
    request = await collect_stream(
        _parts(
            _header(), gateway_pb2.AssessStreamRequest(chunk=b"RIFF"), gateway_pb2.AssessStreamRequest(chunk=b"DATA")
        ),
        max_bytes=1 << 20,
        max_audio_s=60,
    )
    assert request.audio.content == b"RIFFDATA"
    assert request.target.ayah.surah == 1


async def test_pcm_duration_limit_stops_the_upload_early() -> None:
    second = b"\0\0" * 16000
    parts = [_header(pcm=True)] + [gateway_pb2.AssessStreamRequest(chunk=second) for _ in range(5)]
    with pytest.raises(InvalidArgument, match="passed 3 s"):
        await collect_stream(_parts(*parts), max_bytes=1 << 30, max_audio_s=3)


async def test_byte_limit() -> None:
    with pytest.raises(TooLarge, match="MiB"):
        await collect_stream(
            _parts(_header(), gateway_pb2.AssessStreamRequest(chunk=b"x" * (2 << 20))),
            max_bytes=1 << 20,
            max_audio_s=60,
        )


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], "without a header"),
        ([gateway_pb2.AssessStreamRequest(chunk=b"x")], "first message must be the header"),
        ([_header(), _header()], "second header"),
        ([_header(), gateway_pb2.AssessStreamRequest()], "neither"),
    ],
)
async def test_malformed_streams(parts: list[gateway_pb2.AssessStreamRequest], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await collect_stream(_parts(*parts), max_bytes=1 << 20, max_audio_s=60)
