"""Settings of live sessions: segmentation, following, and the limits on each session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, setting

_GROUP = "gateway"

VAD = setting(
    "MUAALEM_LIVE_VAD",
    "silero",
    "Voice-activity detector of live sessions: `silero` (Silero VAD's ONNX model, gated by the "
    "energy envelope) or `energy` (the energy envelope alone).",
    group=_GROUP,
)
VAD_THRESHOLD = setting(
    "MUAALEM_LIVE_VAD_THRESHOLD",
    0.3,
    "Silero speech probability above which a 32 ms frame is speech (recitation needs lower than conversation's 0.5).",
    group=_GROUP,
)
MIN_SILENCE_MS = setting(
    "MUAALEM_LIVE_MIN_SILENCE_MS",
    400,
    "Silence that ends a segment; shorter breaths inside a phrase, and a doubled stop's closure "
    "(up to 0.37 s at a slow tempo), do not.",
    group=_GROUP,
)
MAX_SEGMENT_S = setting(
    "MUAALEM_LIVE_MAX_SEGMENT_S",
    12.0,
    "A segment with no pause is cut here; its last word waits for the next segment.",
    group=_GROUP,
)
MAX_SESSION_S = setting("MUAALEM_LIVE_MAX_SESSION_S", 600.0, "Longest live session, in seconds of audio.", group=_GROUP)
IDLE_TIMEOUT_S = setting(
    "MUAALEM_LIVE_IDLE_TIMEOUT_S", 30.0, "A live session with no message for this long is closed.", group=_GROUP
)
MAX_SESSIONS = setting("MUAALEM_LIVE_MAX_SESSIONS", 64, "Live sessions one gateway serves at once.", group=_GROUP)
CAPACITY_SESSIONS = setting(
    "MUAALEM_LIVE_CAPACITY_SESSIONS",
    0,
    "Live sessions the asr behind this gateway keeps up with at real time (measured: the asr's "
    "replicas over its real-time factor on live segments, divided among the gateways; docs/live.md, "
    "Capacity). One more is refused at once with RESOURCE_EXHAUSTED and a retry delay. 0: measured "
    "by the gateway from the asr's own timings (gateway/asr_pace.py) once 20 s of audio went through it, "
    "MUAALEM_LIVE_MAX_SESSIONS alone until then.",
    group=_GROUP,
    ge=0,
)
ASR_REPLICAS = setting(
    "MUAALEM_LIVE_ASR_REPLICAS",
    1,
    "asr replicas behind the gateways, for the measured capacity (MUAALEM_LIVE_CAPACITY_SESSIONS 0).",
    group=_GROUP,
    ge=1,
)
GATEWAY_REPLICAS = setting(
    "MUAALEM_LIVE_GATEWAY_REPLICAS",
    1,
    "Gateway replicas sharing those asr replicas, for the measured capacity.",
    group=_GROUP,
    ge=1,
)
RETRY_AFTER_S = setting(
    "MUAALEM_LIVE_RETRY_AFTER_S",
    10.0,
    "The retry delay a live session refused for capacity is told (gRPC RetryInfo, the WebSocket's close message).",
    group=_GROUP,
    gt=0,
)
MAX_SESSIONS_PER_KEY = setting(
    "MUAALEM_LIVE_MAX_SESSIONS_PER_KEY", 4, "Live sessions one API key may hold open at once.", group=_GROUP
)
MAX_CHUNK_BYTES = setting(
    "MUAALEM_LIVE_MAX_CHUNK_BYTES", 256 * 1024, "Largest audio chunk of a live session.", group=_GROUP
)
MAX_BUFFERED_S = setting(
    "MUAALEM_LIVE_MAX_BUFFERED_S",
    30.0,
    "Audio handed to the stages ahead of their answers; more waits, decoded, in the session's "
    "intake (the connection is still read, so its keepalive holds) and is left out if the gateway drains.",
    group=_GROUP,
)
ENCODE_WHILE_RECITED = setting(
    "MUAALEM_LIVE_ENCODE_WHILE_RECITED",
    False,
    "Encode each segment while it is recited (the asr's TranscribeLive), live and in Assess alike, "
    "so that at the pause only its last window is left. Off by default until the streamed decode "
    "agrees with the whole segment's on 99 % of frames (96.9 % now: docs/transcribe-live.md); off, "
    "or an asr without it: the whole segment is sent at the pause.",
    group=_GROUP,
)
STAGE_TIMEOUT_S = setting(
    "MUAALEM_LIVE_STAGE_TIMEOUT_S",
    30.0,
    "Deadline of each stage call a live segment makes; a late stage marks the event degraded.",
    group=_GROUP,
)


@dataclass(frozen=True)
class LiveSettings:
    vad: str = "silero"
    vad_threshold: float = 0.3
    min_silence_ms: int = 400
    max_segment_s: float = 12.0
    max_session_s: float = 600.0
    idle_timeout_s: float = 30.0
    max_sessions: int = 64
    capacity_sessions: int = 0
    asr_replicas: int = 1
    gateway_replicas: int = 1
    retry_after_s: float = 10.0
    max_sessions_per_key: int = 4
    max_chunk_bytes: int = 256 * 1024
    max_buffered_s: float = 30.0
    stage_timeout_s: float = 30.0
    encode_while_recited: bool = False

    def admitted_at_once(self, measured: int | None = None) -> int:
        """The most sessions admitted at once: the capacity set, else the one measured (asr_pace.py),
        within the hard cap."""
        if self.capacity_sessions > 0:
            return min(self.capacity_sessions, self.max_sessions)
        if measured is not None:
            return min(measured, self.max_sessions)
        return self.max_sessions

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LiveSettings:
        vad = VAD.get(environ)
        if vad not in {"silero", "energy"}:
            raise ConfigError(f"MUAALEM_LIVE_VAD must be `silero` or `energy`, got {vad!r}")
        threshold = VAD_THRESHOLD.get(environ)
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"MUAALEM_LIVE_VAD_THRESHOLD must be within (0, 1), got {threshold}")
        return cls(
            vad=vad,
            vad_threshold=threshold,
            min_silence_ms=MIN_SILENCE_MS.get(environ),
            max_segment_s=MAX_SEGMENT_S.get(environ),
            max_session_s=MAX_SESSION_S.get(environ),
            idle_timeout_s=IDLE_TIMEOUT_S.get(environ),
            max_sessions=MAX_SESSIONS.get(environ),
            capacity_sessions=CAPACITY_SESSIONS.get(environ),
            asr_replicas=ASR_REPLICAS.get(environ),
            gateway_replicas=GATEWAY_REPLICAS.get(environ),
            retry_after_s=RETRY_AFTER_S.get(environ),
            max_sessions_per_key=MAX_SESSIONS_PER_KEY.get(environ),
            max_chunk_bytes=MAX_CHUNK_BYTES.get(environ),
            max_buffered_s=MAX_BUFFERED_S.get(environ),
            stage_timeout_s=STAGE_TIMEOUT_S.get(environ),
            encode_while_recited=ENCODE_WHILE_RECITED.get(environ),
        )
