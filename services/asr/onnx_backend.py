"""ONNX Runtime backend with the call signature of `MultiLevelCTC`.

Chosen by configuration only (MUAALEM_ASR_BACKEND=onnxruntime with MUAALEM_ASR_ONNX_PATH),
never as a silent fallback. Providers: CUDAExecutionProvider first when onnxruntime-gpu offers
it, then CPU. Inputs and outputs are torch tensors so that the engine does not care which backend
runs; the graph is float32 (or int8 weights), its outputs float32 logits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from services.common.errors import FailedPrecondition

from .export import INPUT_NAMES, METADATA_KEY, existing_graph, graph_inputs, output_name


def default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxMultiLevelCTC:
    """model(features, attention_mask, input_frames=None) -> {level: float32 logits (B, T', V)}."""

    def __init__(
        self, path: str | Path, providers: Sequence[str] | None = None, *, threads: int = 0
    ) -> None:
        import onnxruntime as ort

        self.path = existing_graph(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        chosen = list(providers) if providers else default_providers()
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FailedPrecondition(f"cannot load ONNX model {self.path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise FailedPrecondition(
                f"{self.path} was not written by `muaalem export-onnx` (no '{METADATA_KEY}' metadata)"
            )
        # What export_onnx recorded: levels, version, weights_digest, the adapter's config...
        self.metadata: dict[str, Any] = json.loads(meta)
        self.levels: list[str] = list(self.metadata["levels"])
        self.version: str = self.metadata["version"]
        # The digest of the checkpoint the graph was exported from.
        self.weights_digest: str = self.metadata["weights_digest"]
        self.dev_weights: bool = bool(self.metadata["dev_weights"])
        self.precision: str = self.metadata["precision"]
        self.providers: list[str] = self.session.get_providers()
        self.device = torch.device("cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu")
        self.dtype = torch.float32
        self._outputs = [output_name(level) for level in self.levels]

    def __call__(
        self, features: Tensor, attention_mask: Tensor | None = None, input_frames: Tensor | None = None
    ) -> dict[str, Tensor]:
        feats, mask, lengths = graph_inputs(features, attention_mask, input_frames)
        feeds = {INPUT_NAMES[0]: feats, INPUT_NAMES[1]: mask, INPUT_NAMES[2]: lengths}
        outputs = self.session.run(self._outputs, feeds)
        return {
            level: torch.from_numpy(np.asarray(value)).to(features.device)
            for level, value in zip(self.levels, outputs, strict=True)
        }

    def num_parameters(self) -> int:
        return int(self.metadata["parameters"])

