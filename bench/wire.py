"""The mesh's messages measured directly: the gateway's assessment logic runs in the benchmark
process against the mesh's stage servers, through stage clients that keep every request and
reply; each message is then sized, serialised and parsed on its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from bench.common import fmt_ms, median_ms, table
from services.common.pb import alignment_pb2, asr_pb2, gateway_pb2, tajweed_pb2
from services.gateway.stages import GrpcStages

REPEATS = 20


@dataclass
class RecordingStages(GrpcStages):
    """The mesh's stage clients, keeping (hop, message name, message) for every call."""

    messages: list[tuple[str, str, Message]] = field(default_factory=list)

    async def transcribe(self, request: asr_pb2.TranscribeRequest, timeout: float | None) -> asr_pb2.Transcription:
        transcription = await super().transcribe(request, timeout)
        self.messages.append(("asr", "TranscribeRequest", request))
        self.messages.append(("asr", "TranscribeResponse", asr_pb2.TranscribeResponse(transcription=transcription)))
        return transcription

    async def align(self, request: alignment_pb2.AlignRequest, timeout: float | None) -> alignment_pb2.AlignResponse:
        reply = await super().align(request, timeout)
        self.messages += [("alignment", "AlignRequest", request), ("alignment", "AlignResponse", reply)]
        return reply

    async def validate(
        self, request: tajweed_pb2.ValidateRequest, timeout: float | None
    ) -> tajweed_pb2.ValidateResponse:
        reply = await super().validate(request, timeout)
        self.messages += [("tajweed", "ValidateRequest", request), ("tajweed", "ValidateResponse", reply)]
        return reply


@dataclass(frozen=True)
class MessageCost:
    hop: str
    name: str
    size: int
    serialize_ms: float
    parse_ms: float


def cost(hop: str, name: str, message: Message) -> MessageCost:
    data = message.SerializeToString()
    kind = type(message)
    return MessageCost(
        hop=hop,
        name=name,
        size=len(data),
        serialize_ms=median_ms(message.SerializeToString, REPEATS),
        parse_ms=median_ms(lambda: kind.FromString(data), REPEATS),
    )


@dataclass(frozen=True)
class Traffic:
    costs: list[MessageCost]
    # What the assessment worked on: decoded and reference phonemes, output frames.
    decoded_phonemes: int
    reference_phonemes: int
    frames: int
    # (hop, message name, message) as they went over the wire.
    messages: list[tuple[str, str, Message]]

    def message(self, name: str) -> Message | None:
        return next((m for _, n, m in self.messages if n == name), None)


async def measure(
    addresses: dict[str, str], request: gateway_pb2.AssessRequest, environ: dict[str, str]
) -> Traffic:
    """Runs one assessment (after a warm-up one) through recording stage clients."""
    import asyncio

    from services.gateway.app import GatewayApp
    from services.gateway.config import GatewayConfig

    stages = RecordingStages(addresses["asr"], addresses["alignment"], addresses["tajweed"])
    app = GatewayApp.build(GatewayConfig.from_env(environ), stages=stages, environ=environ)
    try:
        await asyncio.to_thread(app.warm_up)
        await app.assess(request, None)
        stages.messages.clear()
        reply = await app.assess(request, None)
    finally:
        await app.close()
    messages = [("client", "AssessRequest", request), *stages.messages, ("client", "AssessResponse", reply)]
    transcription = next(m for _, name, m in messages if name == "TranscribeResponse").transcription  # type: ignore[attr-defined]
    align = next((m for _, name, m in messages if name == "AlignRequest"), None)
    return Traffic(
        costs=[cost(hop, name, message) for hop, name, message in messages],
        decoded_phonemes=len(transcription.decode.phonemes),
        reference_phonemes=len(align.reference.phonemes) if align is not None else 0,  # type: ignore[attr-defined]
        frames=transcription.num_frames,
        messages=messages,
    )


def render(per_clip: dict[str, Traffic]) -> list[str]:
    rows = []
    for clip_name, traffic in per_clip.items():
        for c in traffic.costs:
            rows.append(
                [clip_name, c.hop, c.name, f"{c.size / 1024:.1f}", fmt_ms(c.serialize_ms), fmt_ms(c.parse_ms)]
            )
    lines = table(["clip", "hop", "message", "KiB", "serialize ms", "parse ms"], rows)
    hops = []
    for clip_name, traffic in per_clip.items():
        for hop in ("client", "asr", "alignment", "tajweed"):
            mine = [c for c in traffic.costs if c.hop == hop]
            if mine:
                wire = sum(c.serialize_ms + c.parse_ms for c in mine)
                hops.append([clip_name, hop, f"{sum(c.size for c in mine) / 1024:.1f}", fmt_ms(wire)])
    lines += ["", "Per hop (request and reply, each serialised once and parsed once):", ""]
    lines += table(["clip", "hop", "KiB both ways", "protobuf ms"], hops)
    return lines
