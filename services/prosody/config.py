"""Settings of the prosody service (MUAALEM_PROSODY_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, setting
from services.common.settings import MAX_AUDIO_S

THREADS = setting(
    "MUAALEM_PROSODY_THREADS",
    1,
    "onnxruntime threads of the SwiftF0 pitch model per process (the model gains little past a few; "
    "scale with replicas instead).",
    group="prosody",
)
MIN_AUDIO_S = setting(
    "MUAALEM_PROSODY_MIN_AUDIO_S",
    0.25,
    "Shortest audio the prosody stage analyses, in seconds (shorter: INVALID_ARGUMENT).",
    group="prosody",
)


@dataclass(frozen=True)
class ProsodyConfig:
    threads: int
    min_audio_s: float
    max_audio_s: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProsodyConfig:
        threads = THREADS.get(environ)
        if threads < 1:
            raise ConfigError(f"{THREADS.name} must be >= 1, got {threads}")
        min_s = MIN_AUDIO_S.get(environ)
        if not min_s > 0:
            raise ConfigError(f"{MIN_AUDIO_S.name} must be > 0, got {min_s}")
        return cls(threads=threads, min_audio_s=min_s, max_audio_s=MAX_AUDIO_S.get(environ))
