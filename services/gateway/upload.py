"""Reassembling a client-streamed recitation: a header, then audio bytes, bounded as they arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.common.audio import pcm_bytes_per_second
from services.common.errors import InvalidArgument, TooLarge
from services.common.pb import gateway_pb2


async def collect_stream(
    parts: AsyncIterator[gateway_pb2.AssessStreamRequest],
    *,
    max_bytes: int,
    max_audio_s: float,
) -> gateway_pb2.AssessRequest:
    """The AssessRequest the stream describes. Limits are enforced while receiving, so a two-hour
    upload is refused after its first minutes, not after it has been held in memory."""
    request: gateway_pb2.AssessRequest | None = None
    buffer = bytearray()
    bytes_per_second = 0.0
    async for part in parts:
        which = part.WhichOneof("part")
        if which == "header":
            if request is not None:
                raise InvalidArgument("AssessStream: a second header arrived; send one header, then audio chunks")
            request = gateway_pb2.AssessRequest()
            request.CopyFrom(part.header)
            if request.audio.WhichOneof("source") == "pcm":
                bytes_per_second = float(pcm_bytes_per_second(request.audio.pcm))
                buffer.extend(request.audio.pcm.data)
            else:
                buffer.extend(request.audio.content)
        elif which == "chunk":
            if request is None:
                raise InvalidArgument("AssessStream: the first message must be the header, not audio")
            buffer.extend(part.chunk)
        else:
            raise InvalidArgument("AssessStream: a message carried neither a header nor a chunk")
        if len(buffer) > max_bytes:
            raise TooLarge(
                f"AssessStream: the upload passed {max_bytes / (1 << 20):.0f} MiB, the limit of this gateway"
            )
        if bytes_per_second > 0 and len(buffer) / bytes_per_second > max_audio_s:
            raise InvalidArgument(
                f"AssessStream: the audio passed {max_audio_s:.0f} s, the longest recitation this gateway accepts"
            )
    if request is None:
        raise InvalidArgument("AssessStream: the stream ended without a header")
    if request.audio.WhichOneof("source") == "pcm":
        request.audio.pcm.data = bytes(buffer)
    else:
        request.audio.content = bytes(buffer)
    return request
