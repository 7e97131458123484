"""What the ASR engine returns and describes itself with (plain dataclasses, no torch, no grpc)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.asr.decode import DecodeReference, DecodeResult
from services.asr.segmenter import LABEL_SAMPLES, SAMPLE_RATE, Segmentation

Samples = npt.NDArray[np.float32]
LogProbs = dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ModelVersion:
    """What produced an output; dev_weights: random development weights (outputs are noise)."""

    name: str
    weights_digest: str
    dev_weights: bool
    backend: str
    precision: str
    device: str
    # Why this backend and precision (auto's hardware choice, or the setting that asked for it).
    precision_reason: str = ""
    # The demo checkpoint: trained on the synthetic reciter; it hears that voice, not people.
    demo_weights: bool = False


@dataclass(frozen=True)
class TranscribeOptions:
    include_log_probs: bool = False
    # Levels whose log-probs to return; empty: all.
    levels: tuple[str, ...] = ()
    force_segmentation: bool = False
    skip_sifat: bool = False
    detect_completeness: bool = False
    # The reference the learner should have recited (its phoneme groups and their sifat): the
    # sifat decode aligns to it when a level's tokens do not match the decoded groups one to one.
    reference: DecodeReference | None = None
    # Also decode at this many frame phases (the input shifted by k/N of a frame, k = 1..N-1;
    # 0 or 1: none): DecodeResult.phase_phonemes.
    frame_phases: int = 0


@dataclass(frozen=True)
class Transcription:
    decode: DecodeResult
    # Only the requested levels, and only when include_log_probs was set.
    log_probs: LogProbs
    num_frames: int
    frame_duration_s: float
    audio_duration_s: float
    model_version: ModelVersion
    # (stage, milliseconds) in the order they ran.
    timings: tuple[tuple[str, float], ...]
    chunking: str
    segments: tuple[tuple[float, float], ...]
    is_complete: bool | None
    batch_size: int
    queue_ms: float


@dataclass(frozen=True)
class SegmentResult:
    segmentation: Segmentation
    model_version: ModelVersion
    audio_duration_s: float
    frame_duration_s: float = LABEL_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class ModelInfo:
    model_version: ModelVersion
    # level -> labels by id (index 0 the blank); sifat levels in quran-transcript's English names.
    vocabularies: Mapping[str, tuple[str, ...]]
    frame_duration_s: float
    sample_rate_hz: int
    max_audio_s: float
    window_s: float
    window_overlap_s: float
    segment_above_s: float
    segmenter_version: ModelVersion | None
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    parameters: int
    tajweed_calibration_json: str = ""


@dataclass(frozen=True)
class PlanRun:
    """How the pieces of one plan ran: stage times (ms) and the batching they met."""

    features_ms: float
    queue_ms: float
    model_ms: float
    batch_size: int
