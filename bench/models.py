"""The checkpoint every section runs (a random-weight development checkpoint in the real format,
unless --checkpoint names real weights) and the CPU execution options it can be served with.

Each option is a configuration of the asr service (MUAALEM_ASR_BACKEND, MUAALEM_ASR_PRECISION,
MUAALEM_ASR_ONNX_PATH): the benchmark chooses them explicitly, as a deployment would. The ONNX
graphs are exported once per checkpoint digest and kept in the cache directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT


@dataclass(frozen=True)
class Backend:
    key: str
    label: str
    backend: str
    precision: str
    # "fp32", "int8" (dynamic) or "int8-static": which exported graph a graph backend runs.
    graph: str = ""

    @property
    def runs_graph(self) -> bool:
        return self.backend in GRAPH_BACKENDS

    @property
    def int8(self) -> bool:
        return self.precision == "int8" or self.graph in ("int8", "int8-static")

    def env(self, assets: Assets) -> dict[str, str]:
        env = {"MUAALEM_ASR_BACKEND": self.backend, "MUAALEM_ASR_PRECISION": self.precision}
        if self.runs_graph:
            env["MUAALEM_ASR_ONNX_PATH"] = str(assets.onnx[self.graph])
        return env


# auto runs one of the graph backends on a CPU (torch on CUDA, where the graph is not read).
GRAPH_BACKENDS = ("onnxruntime", "openvino", "auto")
CALIBRATION = sorted(str(p) for p in (ROOT / "tests/data/audio").glob("*.wav"))
# Graph suffix and `muaalem export-onnx` flags of each exported graph.
GRAPHS: dict[str, tuple[str, list[str]]] = {
    "fp32": ("", []),
    "int8": ("-int8", ["--int8"]),
    # Static int8 calibrated on the repository's recitations.
    "int8-static": ("-int8-static", ["--int8-static", *CALIBRATION]),
}


BACKENDS: dict[str, Backend] = {
    b.key: b
    for b in (
        Backend("torch-fp32", "torch fp32", "torch", "float32"),
        Backend("torch-int8", "torch int8 (dynamic quantization)", "torch", "int8"),
        Backend("onnx-fp32", "ONNX Runtime fp32", "onnxruntime", "auto", "fp32"),
        Backend("onnx-int8", "ONNX Runtime int8 (dynamic quantization)", "onnxruntime", "auto", "int8"),
        Backend("onnx-int8-static", "ONNX Runtime int8 (static, calibrated)", "onnxruntime", "auto", "int8-static"),
        Backend("torch-bf16", "torch bf16", "torch", "bfloat16"),
        Backend("ov-fp32", "OpenVINO fp32", "openvino", "float32", "fp32"),
        Backend("ov-bf16", "OpenVINO bf16", "openvino", "bfloat16", "fp32"),
        Backend("ov-int8", "OpenVINO int8 (dynamic-quantized graph)", "openvino", "auto", "int8"),
        Backend("ov-int8-static", "OpenVINO int8 (static, calibrated)", "openvino", "auto", "int8-static"),
        # The service's default precision: float16 on CUDA; on a CPU bfloat16 where it is native.
        Backend("torch", "torch (precision auto)", "torch", "auto"),
        Backend("ov-auto", "OpenVINO (precision auto)", "openvino", "auto", "fp32"),
        # What `make serve`, `make demo` and the images run: hardware.choose_backend's pick.
        Backend("auto", "auto (MUAALEM_ASR_BACKEND=auto)", "auto", "auto", "fp32"),
    )
}


BF16_OPTIONS = ("torch-bf16", "ov-bf16")


def native_bf16() -> bool:
    from services.asr.hardware import native_bf16_flags

    return bool(native_bf16_flags())


def for_this_cpu(keys: str) -> str:
    """A default list of options without the bfloat16 ones where the CPU has no native bfloat16:
    the openvino backend refuses it there, and torch emulates it at minutes per 15 s clip."""
    if native_bf16():
        return keys
    return ",".join(k for k in keys.split(",") if k.strip() not in BF16_OPTIONS)


def backends(keys: str) -> list[Backend]:
    chosen = [k.strip() for k in keys.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in BACKENDS]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    return [BACKENDS[k] for k in chosen]


@dataclass
class Assets:
    checkpoint: Path
    version: str
    dev_weights: bool
    parameters: int
    onnx: dict[str, Path] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.version.rsplit("@", 1)[-1].removesuffix("+dev")

    def label(self) -> str:
        weights = "random dev weights" if self.dev_weights else "real weights"
        return f"`{self.checkpoint.name}` ({self.parameters / 1e6:.1f} M parameters, {weights}, digest {self.digest})"


def prepare(
    checkpoint: str | None,
    size: str,
    cache_dir: Path,
    needed: list[Backend],
    calibration: tuple[str, Callable[[], list[str]]] | None = None,
) -> Assets:
    """The checkpoint (written when it is a dev one not made yet) and the ONNX graphs `needed`
    (exported when missing: minutes and several GB of memory for the full-size model).
    `calibration`: (a name for the graph file, what makes the audio files) for the static int8
    graph instead of the repository's recitations; called only when that graph is exported."""
    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.loading import ensure_dev_checkpoint
    from services.asr.modeling import EncoderConfig
    from services.asr.weights import count_parameters

    if checkpoint:
        files = resolve_checkpoint(checkpoint, "multi_level_ctc")
    else:
        target = cache_dir / "dev-checkpoints" / f"multi_level_ctc-{size}"
        started = time.monotonic()
        path = ensure_dev_checkpoint(target, "multi_level_ctc", size)
        files = resolve_checkpoint(str(path), "multi_level_ctc")
        log(f"dev checkpoint {path} ready ({time.monotonic() - started:.0f} s)")
    sizes = {str(k): int(v) for k, v in files.config["level_to_vocab_size"].items()}
    assets = Assets(
        checkpoint=files.directory,
        version=files.version,
        dev_weights=files.dev_weights,
        parameters=count_parameters(EncoderConfig.from_config(files.config), sizes),
    )
    stem = files.directory.name
    for graph in sorted({b.graph for b in needed if b.runs_graph}):
        suffix, flags = GRAPHS[graph]
        if graph == "int8-static" and calibration is not None:
            suffix = f"{suffix}-{calibration[0]}"
        out = cache_dir / "onnx" / assets.digest / f"{stem}{suffix}.onnx"
        if not out.is_file():
            log(f"exporting {out} (once per checkpoint)")
            started = time.monotonic()
            if graph == "int8-static" and calibration is not None:
                flags = ["--int8-static", *calibration[1]()]
            command = [sys.executable, "-m", "services.cli", "export-onnx", str(files.directory), str(out)]
            subprocess.run(command + flags, check=True, cwd=ROOT)
            log(f"exported {out.name} in {time.monotonic() - started:.0f} s")
        assets.onnx[graph] = out
    return assets


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
