"""The ASR service's settings: which weights, where they run, and how requests are batched and cut."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import ConfigError, setting
from services.common.settings import CACHE_DIR, DEFAULT_CACHE_DIR, MAX_AUDIO_S, MAX_STREAM_AUDIO_S

_GROUP = "asr"

MODEL = setting(
    "MUAALEM_ASR_MODEL",
    "obadx/muaalem-model-v3_2",
    "Multi-level CTC checkpoint: a Hugging Face hub id (read from the local hub cache) or a "
    "local directory with config.json, safetensors, vocab.json and preprocessor_config.json.",
    group=_GROUP,
    pattern=r"\s*\S.*",
    pattern_doc="a hub id or a checkpoint directory (not empty)",
)
SEGMENTER_MODEL = setting(
    "MUAALEM_SEGMENTER_MODEL",
    "obadx/recitation-segmenter-v2",
    "Pause segmenter checkpoint (recitation-segmenter-v2 format), hub id or directory; empty "
    "disables the segmenter (long audio is then cut in fixed windows only).",
    group=_GROUP,
)
DEV_FALLBACK = setting(
    "MUAALEM_ASR_DEV_FALLBACK",
    "",
    "`tiny` or `full`: when the real weights cannot be reached, create (or reuse) a random-weight "
    "development checkpoint of that size in MUAALEM_CACHE_DIR and serve it, marked dev_weights "
    "(outputs are noise). `demo`: serve the committed demo checkpoint instead, marked demo_weights "
    "(it hears the project's synthetic reciter, not people). Empty (production): start-up fails "
    "with instructions instead.",
    group=_GROUP,
    choices=("", "tiny", "full", "demo"),
)
DEVICE = setting(
    "MUAALEM_ASR_DEVICE",
    "auto",
    "`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.",
    group=_GROUP,
    pattern=r"auto|cpu|cuda(:\d+)?",
    pattern_doc="`auto`, `cpu`, `cuda` or `cuda:N`",
)
PRECISION = setting(
    "MUAALEM_ASR_PRECISION",
    "auto",
    "`auto` chooses by the hardware and logs why: float16 on CUDA; bfloat16 on a CPU with native "
    "bfloat16 (avx512_bf16 or AMX), float32 on other CPUs. Or `float32`, `bfloat16` (torch "
    "emulates it, slowly, where the CPU lacks it; openvino refuses it there), `float16` (CUDA) or "
    "`int8` (torch: dynamic quantisation on CPU; a graph backend: the graph's int8).",
    group=_GROUP,
    choices=("auto", "float32", "bfloat16", "float16", "int8"),
)
BACKEND = setting(
    "MUAALEM_ASR_BACKEND",
    "torch",
    "`torch`; `onnxruntime` (runs MUAALEM_ASR_ONNX_PATH, made by `muaalem export-onnx`); or "
    "`openvino` (CPU: runs that graph compiled by OpenVINO, the compiled model cached in "
    "MUAALEM_CACHE_DIR; with no MUAALEM_ASR_ONNX_PATH the checkpoint is exported there once); "
    "or `auto` (the images' default): torch on CUDA; on a CPU openvino where it has native "
    "bfloat16 (avx512_bf16 or AMX), onnxruntime elsewhere (each the fastest measured there; with no "
    "MUAALEM_ASR_ONNX_PATH the checkpoint is exported into MUAALEM_CACHE_DIR once).",
    group=_GROUP,
    choices=("torch", "onnxruntime", "openvino", "auto"),
)
ONNX_PATH = setting(
    "MUAALEM_ASR_ONNX_PATH",
    "",
    "The exported .onnx model the onnxruntime and openvino backends run.",
    group=_GROUP,
)
OPENVINO_BUCKET_FRAMES = setting(
    "MUAALEM_ASR_OPENVINO_BUCKET_FRAMES",
    0,
    "openvino backend: pad each batch's feature frames up to a multiple of this (masked, outputs "
    "unchanged) so the plugin sees few distinct shapes; 0 (default) keeps shapes fully dynamic, "
    "which measured faster (bench/openvino_shapes.py).",
    group=_GROUP,
    ge=0,
)
MAX_BATCH_SIZE = setting(
    "MUAALEM_ASR_MAX_BATCH_SIZE",
    8,
    "Most model inputs (clips or 20 s windows) run in one forward pass; 1 turns batching off.",
    group=_GROUP,
    ge=1,
)
MAX_QUEUE_DELAY_MS = setting(
    "MUAALEM_ASR_MAX_QUEUE_DELAY_MS",
    0.0,
    "Longest an input waits for others to join its batch while the model is idle. 0: a lone input runs at"
    " once; inputs that arrive while the model is busy are still batched together.",
    group=_GROUP,
    ge=0,
)
MAX_QUEUE_SIZE = setting(
    "MUAALEM_ASR_MAX_QUEUE_SIZE",
    64,
    "Model inputs allowed to wait at once; past it calls get RESOURCE_EXHAUSTED.",
    group=_GROUP,
    ge=1,
)
BUCKET_WIDTH_S = setting(
    "MUAALEM_ASR_BUCKET_WIDTH_S",
    2.5,
    "Inputs are batched only with inputs of a similar length (same bucket of this many seconds), "
    "so little compute is spent on padding; 0 puts every length in one bucket.",
    group=_GROUP,
    ge=0,
)
WINDOW_S = setting(
    "MUAALEM_ASR_WINDOW_S",
    20.0,
    "Audio longer than this runs as windows of this length (the model was trained on <= 20 s).",
    group=_GROUP,
    ge=2.0,
    le=20.0,
)
WINDOW_OVERLAP_S = setting(
    "MUAALEM_ASR_WINDOW_OVERLAP_S",
    0.4,
    "Overlap between consecutive windows; each output frame comes from the window where it is farthest from an edge.",
    group=_GROUP,
    ge=0,
)
STREAM_WINDOW_S = setting(
    "MUAALEM_ASR_STREAM_WINDOW_S",
    3.0,
    "TranscribeLive: the frames each window keeps (W); the encoder runs a window every W seconds "
    "of audio while the learner recites (docs/benchmarks.md, streaming section, chose it).",
    group=_GROUP,
    ge=0.4,
    le=20.0,
)
STREAM_LEFT_S = setting(
    "MUAALEM_ASR_STREAM_LEFT_S",
    2.0,
    "TranscribeLive: audio before a window's kept frames that it runs with as context (L).",
    group=_GROUP,
    ge=0,
    le=20.0,
)
STREAM_RIGHT_S = setting(
    "MUAALEM_ASR_STREAM_RIGHT_S",
    1.0,
    "TranscribeLive: audio after a window's kept frames that it waits for and runs with (R).",
    group=_GROUP,
    ge=0,
    le=10.0,
)
STREAM_MAX_AHEAD_S = setting(
    "MUAALEM_ASR_STREAM_MAX_AHEAD_S",
    20.0,
    "TranscribeLive: most audio a caller may send beyond the frames computed so far (progress "
    "messages say where the encoder is); past it the stream fails with RESOURCE_EXHAUSTED.",
    group=_GROUP,
    gt=0,
)
STREAM_IDLE_S = setting(
    "MUAALEM_ASR_STREAM_IDLE_S",
    30.0,
    "TranscribeLive: a stream with no message for this long is closed (DEADLINE_EXCEEDED).",
    group=_GROUP,
    gt=0,
)
SEGMENT_ABOVE_S = setting(
    "MUAALEM_ASR_SEGMENT_ABOVE_S",
    60.0,
    "Audio longer than this is first cut at pauses by the segmenter (when one is loaded).",
    group=_GROUP,
    gt=0,
)
SEGMENTER_BATCH_SIZE = setting(
    "MUAALEM_SEGMENTER_BATCH_SIZE",
    8,
    "19.995 s chunks the segmenter runs in one forward pass.",
    group=_GROUP,
    ge=1,
)
TORCH_THREADS = setting(
    "MUAALEM_ASR_TORCH_THREADS",
    0,
    "torch (and ONNX Runtime, OpenVINO) intra-op threads on CPU (0 keeps the default: one per core).",
    group=_GROUP,
    ge=0,
)

@dataclass(frozen=True)
class AsrConfig:
    """Everything the ASR engine reads from the environment, validated once at start-up."""

    model: str
    segmenter_model: str
    dev_fallback: str
    cache_dir: Path
    device: str
    precision: str
    backend: str
    onnx_path: str
    openvino_bucket_frames: int
    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int
    bucket_width_s: float
    window_s: float
    window_overlap_s: float
    stream_window_s: float
    stream_left_s: float
    stream_right_s: float
    stream_max_ahead_s: float
    stream_idle_s: float
    segment_above_s: float
    segmenter_batch_size: int
    max_audio_s: float
    max_stream_audio_s: float
    torch_threads: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AsrConfig:
        device = DEVICE.get(environ).lower()
        cache = CACHE_DIR.get(environ) or str(DEFAULT_CACHE_DIR)
        config = cls(
            model=MODEL.get(environ).strip(),
            segmenter_model=SEGMENTER_MODEL.get(environ).strip(),
            dev_fallback=DEV_FALLBACK.get(environ),
            cache_dir=Path(os.path.expanduser(cache)),
            device=device,
            precision=PRECISION.get(environ),
            backend=BACKEND.get(environ),
            onnx_path=ONNX_PATH.get(environ).strip(),
            openvino_bucket_frames=OPENVINO_BUCKET_FRAMES.get(environ),
            max_batch_size=MAX_BATCH_SIZE.get(environ),
            max_queue_delay_s=MAX_QUEUE_DELAY_MS.get(environ) / 1000.0,
            max_queue_size=MAX_QUEUE_SIZE.get(environ),
            bucket_width_s=BUCKET_WIDTH_S.get(environ),
            window_s=WINDOW_S.get(environ),
            window_overlap_s=WINDOW_OVERLAP_S.get(environ),
            stream_window_s=STREAM_WINDOW_S.get(environ),
            stream_left_s=STREAM_LEFT_S.get(environ),
            stream_right_s=STREAM_RIGHT_S.get(environ),
            stream_max_ahead_s=STREAM_MAX_AHEAD_S.get(environ),
            stream_idle_s=STREAM_IDLE_S.get(environ),
            segment_above_s=SEGMENT_ABOVE_S.get(environ),
            segmenter_batch_size=SEGMENTER_BATCH_SIZE.get(environ),
            max_audio_s=MAX_AUDIO_S.get(environ),
            max_stream_audio_s=MAX_STREAM_AUDIO_S.get(environ),
            torch_threads=TORCH_THREADS.get(environ),
        )
        config.validate()
        return config

    def validate(self) -> None:
        """What no single variable's range can say: the settings that depend on one another.
        Each variable's own range was checked when it was read (see the declarations above)."""
        if self.backend == "onnxruntime" and not self.onnx_path:
            raise ConfigError("MUAALEM_ASR_BACKEND=onnxruntime needs MUAALEM_ASR_ONNX_PATH")
        if self.backend == "openvino" and self.device.startswith("cuda"):
            raise ConfigError("MUAALEM_ASR_BACKEND=openvino runs on the CPU; set MUAALEM_ASR_DEVICE=cpu or auto")
        if self.window_overlap_s > self.window_s / 4:
            raise ConfigError(
                f"MUAALEM_ASR_WINDOW_OVERLAP_S={self.window_overlap_s}: must be within 0..MUAALEM_ASR_WINDOW_S/4"
                f" (0..{self.window_s / 4:g})"
            )
        if self.stream_max_ahead_s <= self.stream_window_s + self.stream_right_s:
            raise ConfigError(
                f"MUAALEM_ASR_STREAM_MAX_AHEAD_S={self.stream_max_ahead_s}: must be over MUAALEM_ASR_STREAM_WINDOW_S"
                f" + MUAALEM_ASR_STREAM_RIGHT_S ({self.stream_window_s + self.stream_right_s:g}), the audio a window"
                " waits for"
            )
        if self.segment_above_s < self.window_s:
            raise ConfigError(
                f"MUAALEM_ASR_SEGMENT_ABOVE_S={self.segment_above_s}: must be >= MUAALEM_ASR_WINDOW_S"
                f" ({self.window_s:g})"
            )
