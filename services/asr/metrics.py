"""Prometheus metrics of the ASR stage: the batching queue, the model, and GPU memory.

`muaalem_asr_queue_depth` (inputs waiting for the model) is the custom metric the ASR
HorizontalPodAutoscaler scales on: unlike CPU or GPU utilisation it rises before latency does.
The `queue` label names the batcher ("asr" for the CTC model, "segmenter").
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

QUEUE_TIME = Histogram(
    "muaalem_asr_queue_seconds",
    "Time a model input waited in the batching queue before its batch started.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "muaalem_asr_batch_size",
    "Inputs per forward pass.",
    ["queue"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128),
)
COMPUTE_TIME = Histogram(
    "muaalem_asr_compute_seconds",
    "Time of one forward pass (a whole batch), in the model worker thread.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_CAPACITY = Gauge(
    "muaalem_asr_queue_capacity",
    "Model inputs the batching queue holds at most (MUAALEM_ASR_MAX_QUEUE_SIZE); past it calls are refused.",
    ["queue"],
)
QUEUE_DEPTH = Gauge(
    "muaalem_asr_queue_depth",
    "Model inputs waiting in the batching queue (the autoscaling signal).",
    ["queue"],
)
DROPPED = Counter(
    "muaalem_asr_dropped_total",
    "Inputs removed before reaching the model: caller cancelled, deadline passed, or queue full.",
    ["queue", "reason"],
)
GPU_MEMORY_TOTAL = Gauge(
    "muaalem_asr_gpu_memory_total_bytes",
    "Memory of the GPU the model runs on (only set on CUDA).",
    ["device"],
)
GPU_PEAK_MEMORY = Gauge(
    "muaalem_asr_gpu_peak_memory_bytes",
    "torch.cuda.max_memory_allocated since start-up (only set on CUDA).",
    ["device"],
)
MODEL = Gauge(
    "muaalem_asr_model_info",
    "1 for what serves: checkpoint, backend, precision, device, and why that precision (auto's choice).",
    ["model", "backend", "precision", "device", "precision_reason"],
)
STARTUP_SECONDS = Gauge(
    "muaalem_asr_startup_seconds",
    "Model load time at start-up (the openvino backend's compile, or its cached blob's read, included).",
)
