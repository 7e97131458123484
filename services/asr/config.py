"""The ASR service's settings: which weights, where they run, and how requests are batched and cut."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import ConfigError, setting
from services.common.settings import MAX_AUDIO_S, MAX_STREAM_AUDIO_S

_GROUP = "asr"

MODEL = setting(
    "MUAALEM_ASR_MODEL",
    "obadx/muaalem-model-v3_2",
    "Multi-level CTC checkpoint: a Hugging Face hub id (read from the local hub cache) or a "
    "local directory with config.json, safetensors, vocab.json and preprocessor_config.json.",
    group=_GROUP,
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
)
CACHE_DIR = setting(
    "MUAALEM_CACHE_DIR",
    "",
    "Where development checkpoints are written and reused (default ~/.cache/muaalem).",
    group=_GROUP,
)
DEVICE = setting(
    "MUAALEM_ASR_DEVICE",
    "auto",
    "`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.",
    group=_GROUP,
)
PRECISION = setting(
    "MUAALEM_ASR_PRECISION",
    "auto",
    "`auto` (float16 on CUDA, float32 on CPU, where bfloat16 measured ~1.7x slower), "
    "`float32`, `bfloat16`, `float16` or `int8` (dynamic quantisation, CPU).",
    group=_GROUP,
)
BACKEND = setting(
    "MUAALEM_ASR_BACKEND",
    "torch",
    "`torch`, or `onnxruntime` (runs MUAALEM_ASR_ONNX_PATH; made by `muaalem export-onnx`).",
    group=_GROUP,
)
ONNX_PATH = setting(
    "MUAALEM_ASR_ONNX_PATH",
    "",
    "The exported .onnx model the onnxruntime backend runs.",
    group=_GROUP,
)
MAX_BATCH_SIZE = setting(
    "MUAALEM_ASR_MAX_BATCH_SIZE",
    8,
    "Most model inputs (clips or 20 s windows) run in one forward pass; 1 turns batching off.",
    group=_GROUP,
)
MAX_QUEUE_DELAY_MS = setting(
    "MUAALEM_ASR_MAX_QUEUE_DELAY_MS",
    0.0,
    "Longest an input waits for others to join its batch while the model is idle. 0: a lone input runs at"
    " once; inputs that arrive while the model is busy are still batched together.",
    group=_GROUP,
)
MAX_QUEUE_SIZE = setting(
    "MUAALEM_ASR_MAX_QUEUE_SIZE",
    64,
    "Model inputs allowed to wait at once; past it calls get RESOURCE_EXHAUSTED.",
    group=_GROUP,
)
BUCKET_WIDTH_S = setting(
    "MUAALEM_ASR_BUCKET_WIDTH_S",
    2.5,
    "Inputs are batched only with inputs of a similar length (same bucket of this many seconds), "
    "so little compute is spent on padding; 0 puts every length in one bucket.",
    group=_GROUP,
)
WINDOW_S = setting(
    "MUAALEM_ASR_WINDOW_S",
    20.0,
    "Audio longer than this runs as windows of this length (the model was trained on <= 20 s).",
    group=_GROUP,
)
WINDOW_OVERLAP_S = setting(
    "MUAALEM_ASR_WINDOW_OVERLAP_S",
    0.4,
    "Overlap between consecutive windows; each output frame comes from the window where it is farthest from an edge.",
    group=_GROUP,
)
SEGMENT_ABOVE_S = setting(
    "MUAALEM_ASR_SEGMENT_ABOVE_S",
    60.0,
    "Audio longer than this is first cut at pauses by the segmenter (when one is loaded).",
    group=_GROUP,
)
SEGMENTER_BATCH_SIZE = setting(
    "MUAALEM_SEGMENTER_BATCH_SIZE",
    8,
    "19.995 s chunks the segmenter runs in one forward pass.",
    group=_GROUP,
)
TORCH_THREADS = setting(
    "MUAALEM_ASR_TORCH_THREADS",
    0,
    "torch (and ONNX Runtime) intra-op threads on CPU (0 keeps the default: one per core).",
    group=_GROUP,
)

DEFAULT_CACHE_DIR = Path("~/.cache/muaalem")
_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")
_BACKENDS = ("torch", "onnxruntime")
_DEV_SIZES = ("", "tiny", "full", "demo")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{name}={value!r}: expected one of {shown}")
    return value


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
    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int
    bucket_width_s: float
    window_s: float
    window_overlap_s: float
    segment_above_s: float
    segmenter_batch_size: int
    max_audio_s: float
    max_stream_audio_s: float
    torch_threads: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AsrConfig:
        device = DEVICE.get(environ).strip().lower()
        if not (device in _DEVICES or device.startswith("cuda:")):
            raise ConfigError(f"MUAALEM_ASR_DEVICE={device!r}: expected auto, cpu, cuda or cuda:N")
        cache = CACHE_DIR.get(environ) or str(DEFAULT_CACHE_DIR)
        config = cls(
            model=MODEL.get(environ).strip(),
            segmenter_model=SEGMENTER_MODEL.get(environ).strip(),
            dev_fallback=_choice("MUAALEM_ASR_DEV_FALLBACK", DEV_FALLBACK.get(environ).strip(), _DEV_SIZES),
            cache_dir=Path(os.path.expanduser(cache)),
            device=device,
            precision=_choice("MUAALEM_ASR_PRECISION", PRECISION.get(environ).strip(), _PRECISIONS),
            backend=_choice("MUAALEM_ASR_BACKEND", BACKEND.get(environ).strip(), _BACKENDS),
            onnx_path=ONNX_PATH.get(environ).strip(),
            max_batch_size=MAX_BATCH_SIZE.get(environ),
            max_queue_delay_s=MAX_QUEUE_DELAY_MS.get(environ) / 1000.0,
            max_queue_size=MAX_QUEUE_SIZE.get(environ),
            bucket_width_s=BUCKET_WIDTH_S.get(environ),
            window_s=WINDOW_S.get(environ),
            window_overlap_s=WINDOW_OVERLAP_S.get(environ),
            segment_above_s=SEGMENT_ABOVE_S.get(environ),
            segmenter_batch_size=SEGMENTER_BATCH_SIZE.get(environ),
            max_audio_s=MAX_AUDIO_S.get(environ),
            max_stream_audio_s=MAX_STREAM_AUDIO_S.get(environ),
            torch_threads=TORCH_THREADS.get(environ),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("MUAALEM_ASR_MODEL is empty: name a hub id or a checkpoint directory")
        if self.backend == "onnxruntime" and not self.onnx_path:
            raise ConfigError("MUAALEM_ASR_BACKEND=onnxruntime needs MUAALEM_ASR_ONNX_PATH")
        if self.max_batch_size < 1:
            raise ConfigError(f"MUAALEM_ASR_MAX_BATCH_SIZE={self.max_batch_size}: must be >= 1")
        if self.max_queue_size < 1:
            raise ConfigError(f"MUAALEM_ASR_MAX_QUEUE_SIZE={self.max_queue_size}: must be >= 1")
        if self.max_queue_delay_s < 0:
            raise ConfigError("MUAALEM_ASR_MAX_QUEUE_DELAY_MS must be >= 0")
        if self.bucket_width_s < 0:
            raise ConfigError("MUAALEM_ASR_BUCKET_WIDTH_S must be >= 0")
        if not 2.0 <= self.window_s <= 20.0:
            raise ConfigError(f"MUAALEM_ASR_WINDOW_S={self.window_s}: must be within 2..20 s")
        if not 0.0 <= self.window_overlap_s <= self.window_s / 4:
            raise ConfigError(f"MUAALEM_ASR_WINDOW_OVERLAP_S={self.window_overlap_s}: must be within 0..window/4")
        if self.segment_above_s < self.window_s:
            raise ConfigError("MUAALEM_ASR_SEGMENT_ABOVE_S must be >= MUAALEM_ASR_WINDOW_S")
        if self.segmenter_batch_size < 1:
            raise ConfigError("MUAALEM_SEGMENTER_BATCH_SIZE must be >= 1")
        if self.max_audio_s <= 0 or self.max_stream_audio_s <= 0:
            raise ConfigError("MUAALEM_MAX_AUDIO_S and MUAALEM_MAX_STREAM_AUDIO_S must be > 0")
        if self.torch_threads < 0:
            raise ConfigError("MUAALEM_ASR_TORCH_THREADS must be >= 0")
