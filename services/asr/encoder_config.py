"""The architecture facts of a Wav2Vec2-BERT checkpoint (config.json), checked for what the
layers in modeling.py implement, and the activations they name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from services.common.errors import FailedPrecondition

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "swish": F.silu,
    "silu": F.silu,
    "relu": F.relu,
    "gelu": F.gelu,
}


@dataclass(frozen=True)
class EncoderConfig:
    """The architecture facts read from config.json (defaults are Wav2Vec2BertConfig's)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    feature_projection_input_dim: int = 160
    hidden_act: str = "swish"
    layer_norm_eps: float = 1e-5
    position_embeddings_type: str | None = "relative_key"
    left_max_position_embeddings: int = 64
    right_max_position_embeddings: int = 8
    conv_depthwise_kernel_size: int = 31
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 1
    adapter_act: str = "relu"
    output_hidden_size: int = 1024
    use_intermediate_ffn_before_adapter: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EncoderConfig:
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            values[name] = config.get(name, getattr(defaults, name))
        if config.get("output_hidden_size") is None:
            values["output_hidden_size"] = values["hidden_size"]
        built = cls(**values)
        built.validate()
        return built

    def validate(self) -> None:
        problems = []
        if self.position_embeddings_type not in ("relative_key", None):
            problems.append(
                f"position_embeddings_type {self.position_embeddings_type!r} (only 'relative_key' "
                "or none is implemented; the Muaalem checkpoints use 'relative_key')"
            )
        for name in ("hidden_act", "adapter_act"):
            if getattr(self, name) not in ACTIVATIONS:
                problems.append(f"{name} {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads or (
            self.output_hidden_size % self.num_attention_heads
        ):
            problems.append("hidden sizes not divisible by num_attention_heads")
        if self.conv_depthwise_kernel_size % 2 == 0:
            problems.append("conv_depthwise_kernel_size must be odd")
        if problems:
            raise FailedPrecondition("unsupported encoder config: " + "; ".join(problems))

    @property
    def frame_stride(self) -> int:
        """Feature frames per output frame."""
        return self.adapter_stride**self.num_adapter_layers if self.add_adapter else 1
