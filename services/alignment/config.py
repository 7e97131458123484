"""Settings of the alignment service (MUAALEM_ALIGNMENT_*)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, setting

THRESHOLDS = setting(
    "MUAALEM_ALIGNMENT_THRESHOLDS",
    "",
    "JSON file of per-phoneme LLR thresholds replacing the shipped "
    "`services/alignment/thresholds.json` (same shape).",
    group="alignment",
)
DEFAULT_THRESHOLD = setting(
    "MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD",
    0.0,
    "LLR threshold (nats per frame) of phonemes absent from the threshold table; "
    "a token whose LLR is below its threshold is flagged.",
    group="alignment",
)
BAND_FRAMES = setting(
    "MUAALEM_ALIGNMENT_BAND_FRAMES",
    0,
    "Frames either side of the uniform diagonal the Viterbi keeps when a call does not say. "
    "0: automatic (the whole lattice up to 40 s of audio; beyond, 500 frames, doubled while the "
    "best path runs along the band's edge, within MUAALEM_ALIGNMENT_MAX_TABLE_MB).",
    group="alignment",
)
MAX_TABLE_MB = setting(
    "MUAALEM_ALIGNMENT_MAX_TABLE_MB",
    64.0,
    "Memory bound of one alignment's Viterbi backpointer table (1 byte per frame x state in the band), "
    "in MiB; bands are narrowed to fit it.",
    group="alignment",
)


@dataclass(frozen=True)
class AlignmentConfig:
    thresholds_path: str
    default_threshold: float
    band_frames: int
    max_table_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlignmentConfig:
        default_threshold = DEFAULT_THRESHOLD.get(environ)
        if not math.isfinite(default_threshold):
            raise ConfigError(f"{DEFAULT_THRESHOLD.name} must be finite, got {default_threshold}")
        band = BAND_FRAMES.get(environ)
        if band < 0:
            raise ConfigError(f"{BAND_FRAMES.name} must be >= 0, got {band}")
        table_mb = MAX_TABLE_MB.get(environ)
        if not (math.isfinite(table_mb) and table_mb > 0):
            raise ConfigError(f"{MAX_TABLE_MB.name} must be > 0, got {table_mb}")
        return cls(
            thresholds_path=THRESHOLDS.get(environ),
            default_threshold=default_threshold,
            band_frames=band,
            max_table_bytes=int(table_mb * 1024 * 1024),
        )
