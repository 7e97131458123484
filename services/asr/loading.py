"""Start-up: which device, which checkpoint (or the dev fallback), which backend and precision.

Everything here runs once, in a worker thread, before the engine serves. The ModelVersion that
names what serves is built in one place (`version_of`), for every backend and the segmenter.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.asr import chunking
from services.asr.config import AsrConfig
from services.asr.hardware import PrecisionChoice
from services.asr.results import ModelVersion
from services.common.errors import FailedPrecondition, Unavailable

if TYPE_CHECKING:
    from services.asr.checkpoint import CheckpointFiles
    from services.asr.features import FeatureExtractor

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise FailedPrecondition(f"MUAALEM_ASR_DEVICE={requested} but torch sees no CUDA device")
    return requested


def geometry_of(config: Mapping[str, Any], preprocessor: Mapping[str, Any]) -> chunking.FrameGeometry:
    """Output-frame arithmetic of a checkpoint, from its config.json and preprocessor config."""
    adapter = bool(config.get("add_adapter", False))
    return chunking.FrameGeometry(
        feature_stride=int(preprocessor.get("stride", 2)),
        adapter_stride=int(config.get("adapter_stride", 2)),
        adapter_layers=int(config.get("num_adapter_layers", 1)) if adapter else 0,
        adapter_kernel=int(config.get("adapter_kernel_size", 3)),
    )


def version_of(
    files: CheckpointFiles,
    *,
    backend: str,
    precision: str,
    device: str,
    dev_weights: bool = False,
    reason: str = "",
) -> ModelVersion:
    """What serves: the checkpoint's name and digest, and how it runs. dev_weights: also set
    when a graph says its weights were random (it is ORed with the checkpoint's own flag)."""
    return ModelVersion(
        name=files.name,
        weights_digest=files.weights_digest,
        dev_weights=files.dev_weights or dev_weights,
        backend=backend,
        precision=precision,
        device=device,
        precision_reason=reason,
        demo_weights=files.demo_weights,
    )


@dataclass(frozen=True)
class LoadedCtc:
    """The CTC model as the runner calls it, what it is, and its size."""

    model: Any
    version: ModelVersion
    parameters: int


def load_ctc(cfg: AsrConfig, files: CheckpointFiles, device: str, choice: PrecisionChoice) -> LoadedCtc:
    """The configured backend, or an error that says what to change: never a silent fallback."""
    precision, reason = choice.precision, choice.reason
    if cfg.backend == "openvino":
        from services.asr.openvino_backend import OpenVinoMultiLevelCTC

        graph = Path(cfg.onnx_path).expanduser() if cfg.onnx_path else ensure_graph(cfg, files)
        vino = OpenVinoMultiLevelCTC(
            graph,
            precision=precision,
            cache_dir=cfg.cache_dir / "openvino",
            threads=cfg.torch_threads,
            bucket_frames=cfg.openvino_bucket_frames,
        )
        check_graph_digest(cfg, files, vino.weights_digest)
        if vino.precision != precision:
            reason = f"{reason}; the graph {graph.name} is {vino.precision}"
        version = version_of(
            files, backend="openvino", precision=vino.precision, device="cpu", dev_weights=vino.dev_weights,
            reason=reason,
        )
        return LoadedCtc(vino, version, vino.num_parameters())
    if cfg.backend == "onnxruntime":
        from services.asr.onnx_backend import OnnxMultiLevelCTC, default_providers

        providers = default_providers() if device.startswith("cuda") else ["CPUExecutionProvider"]
        graph = Path(cfg.onnx_path).expanduser() if cfg.onnx_path else ensure_graph(cfg, files)
        onnx = OnnxMultiLevelCTC(graph, providers, threads=cfg.torch_threads)
        check_graph_digest(cfg, files, onnx.weights_digest)
        if onnx.precision != precision:
            reason = f"{reason}; the graph runs as exported ({onnx.precision})"
        version = version_of(
            files, backend="onnxruntime", precision=onnx.precision, device=str(onnx.device),
            dev_weights=onnx.dev_weights, reason=reason,
        )
        return LoadedCtc(onnx, version, onnx.num_parameters())
    from services.asr.weights import load_multilevel_ctc, use_onednn_linears

    model = load_multilevel_ctc(files, device, precision)
    if device == "cpu" and precision == "float32":
        use_onednn_linears(model)
    version = version_of(files, backend="torch", precision=precision, device=str(model.device), reason=reason)
    return LoadedCtc(model, version, model.num_parameters())


def ensure_graph(cfg: AsrConfig, files: CheckpointFiles) -> Path:
    """The checkpoint's float32 graph in MUAALEM_CACHE_DIR/onnx/<digest>/, exported on the first
    start that needs it (minutes and several GB of memory for the full-size model) and reused
    after; written beside its place and renamed in, so a concurrent start never reads half."""
    from services.asr.export import export_onnx

    directory = cfg.cache_dir / "onnx" / files.weights_digest
    graph = directory / "model.onnx"
    if graph.is_file():
        return graph
    directory.parent.mkdir(parents=True, exist_ok=True)
    log.warning(
        "exporting %s to %s for the %s backend (once; reused on later starts)", files.name, graph, cfg.backend
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{files.weights_digest}-", dir=directory.parent))
    try:
        export_onnx(files, staging / "model.onnx")
        try:
            os.replace(staging, directory)
        except OSError:
            if not graph.is_file():  # another start won the race: its graph is the same
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return graph


def check_graph_digest(cfg: AsrConfig, files: CheckpointFiles, graph_digest: str) -> None:
    """The graph carries the digest of the checkpoint it was exported from; serving it with
    another checkpoint's vocabulary would decode the wrong labels."""
    if graph_digest != files.weights_digest:
        raise FailedPrecondition(
            f"MUAALEM_ASR_ONNX_PATH={cfg.onnx_path} was exported from weights {graph_digest}, but "
            f"MUAALEM_ASR_MODEL={cfg.model} has weights {files.weights_digest}; export it again "
            "with `muaalem export-onnx`"
        )


@dataclass(frozen=True)
class SegmenterParts:
    """The pause segmenter, when one is configured: its classifier, the feature extractor and
    frame arithmetic its inputs are built with before queueing, and what it is."""

    classifier: Any
    extractor: FeatureExtractor
    geometry: chunking.FrameGeometry
    version: ModelVersion


def load_segmenter(cfg: AsrConfig, device: str, precision: str) -> SegmenterParts:
    from services.asr.features import FeatureExtractor
    from services.asr.weights import load_frame_classifier, use_onednn_linears

    try:
        files = resolve_files(cfg, cfg.segmenter_model, "frame_classifier")
    except Unavailable as exc:
        raise Unavailable(
            f"{exc.message} Or set MUAALEM_SEGMENTER_MODEL to empty to serve without the segmenter "
            "(long audio is then cut in fixed windows)."
        ) from exc
    # The segmenter always runs in torch, at the CTC model's precision where torch has it.
    torch_precision = precision if precision in ("float32", "bfloat16", "float16", "int8") else "float32"
    classifier = load_frame_classifier(files, device, torch_precision)
    if device == "cpu" and torch_precision == "float32":
        use_onednn_linears(classifier)
    return SegmenterParts(
        classifier=classifier,
        extractor=FeatureExtractor(files.preprocessor_config, device),
        geometry=geometry_of(files.config, files.preprocessor_config),
        version=version_of(files, backend="torch", precision=torch_precision, device=str(classifier.device)),
    )


def resolve_files(cfg: AsrConfig, name: str, kind: str) -> CheckpointFiles:
    """The configured checkpoint, or (dev fallback on) a random-weight one in the cache."""
    from services.asr.checkpoint import resolve_checkpoint

    try:
        return resolve_checkpoint(name, kind)
    except Unavailable as exc:
        size = cfg.dev_fallback
        if not size:
            raise
        if size == "demo":
            from services.asr.checkpoint import DEMO_CHECKPOINT

            if kind == "multi_level_ctc" and (DEMO_CHECKPOINT / "config.json").is_file():
                log.warning(
                    "SERVING THE DEMO CHECKPOINT %s (it hears the synthetic reciter, not people). Reason: %s",
                    DEMO_CHECKPOINT,
                    exc.message,
                )
                return resolve_checkpoint(str(DEMO_CHECKPOINT), kind)
            # No demo segmenter (short demo audio never reaches one), and without the demo
            # checkpoint (a checkout without it) the random tiny one keeps the mesh running.
            size = "tiny"
        target = cfg.cache_dir / "dev-checkpoints" / f"{kind}-{size}"
        log.warning(
            "SERVING RANDOM DEVELOPMENT WEIGHTS (%s, size %s) at %s: every output is noise and is "
            "marked dev_weights. Reason: %s",
            kind,
            size,
            target,
            exc.message,
        )
        return resolve_checkpoint(str(ensure_dev_checkpoint(target, kind, size)), kind)


def ensure_dev_checkpoint(target: Path, kind: str, size: str) -> Path:
    """Writes a random-weight checkpoint at `target` unless a complete one is there already.
    Written beside it and renamed into place, so that concurrent starts never read half a file."""
    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.devmodel import write_dev_checkpoint, write_dev_segmenter

    damaged = False
    if target.is_dir():
        try:
            if resolve_checkpoint(str(target), kind).dev_weights:
                return target
        except Exception as exc:  # a damaged cache entry is rewritten
            log.warning("rewriting damaged dev checkpoint %s: %s", target, exc)
        damaged = True
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    writer: Callable[..., Path] = write_dev_checkpoint if kind == "multi_level_ctc" else write_dev_segmenter
    try:
        writer(staging, size=size)
        if damaged:
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
