"""Settings of the alignment service (MUAALEM_ALIGNMENT_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import setting

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
    ge=0,
)
MAX_TABLE_MB = setting(
    "MUAALEM_ALIGNMENT_MAX_TABLE_MB",
    64.0,
    "Memory bound of one alignment's Viterbi backpointer table (1 byte per frame x state in the band), "
    "in MiB; bands are narrowed to fit it.",
    group="alignment",
    gt=0,
)


@dataclass(frozen=True)
class AlignmentConfig:
    thresholds_path: str
    default_threshold: float
    band_frames: int
    max_table_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlignmentConfig:
        return cls(
            thresholds_path=THRESHOLDS.get(environ),
            default_threshold=DEFAULT_THRESHOLD.get(environ),
            band_frames=BAND_FRAMES.get(environ),
            max_table_bytes=int(MAX_TABLE_MB.get(environ) * 1024 * 1024),
        )
