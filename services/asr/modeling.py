"""The Wav2Vec2-BERT conformer encoder with its heads, in plain torch.

Serving does not import transformers: this module builds the same network as
`Wav2Vec2BertModel` (feature projection, conformer layers with Shaw "relative_key" attention and
a causal depthwise convolution, the strided adapter) plus the heads of the two checkpoint
formats, and loads their safetensors by the original key names:

- `MultiLevelCTC`: the author's `Wav2Vec2BertForMultilevelCTC`, one linear CTC head per level
  (`level_to_lm_head.<level>`), returning {level: logits (B, T', V)};
- `FrameClassifier`: `Wav2Vec2BertForAudioFrameClassification` (`classifier`), logits (B, T, labels).

Attention goes through `scaled_dot_product_attention` with the relative_key position bias as an
additive float mask. transformers builds that bias from a (T, T, head_dim) gather of the distance
embeddings (576 MB per layer at 30 s); here it is q·Eᵀ over the left+right+1 clamped distances,
(B, H, T, 73), followed by a gather over the distance index: the same numbers. The transformers
form stays available (`set_attention_impl("reference")`) for the equivalence test and the benchmark.

Padding follows the reference: padded frames are zeroed after the feature projection, are
masked as attention keys and are zeroed before each causal depthwise convolution, so in the
encoder a valid frame never sees padding. The adapter is where the reference reads padding: its
stride-2, kernel-3 convolutions run over the whole tensor, so when an item's valid length L is odd
its last valid output frame reads encoder frame L, and through the adapter's attention every
output frame depends on that value. Alone, frame L exists only when the item's Kaldi frame count
is odd (the feature extractor then ends it with one masked half-padding frame); otherwise the
convolution reads zero padding. In a batch frame L always exists, so the reference gives a padded
item different outputs (all frames, not just the last) than the same item alone whenever its
frame count is even and L odd. Here `input_frames` (per item, the frames the item has alone, as
`FeatureExtractor.extract` returns them) makes the adapter read zeros past each item's own
extent: a batch then equals every item alone, and alone (the default, every frame exists) the
numbers are the reference's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chunking import strided_frames
from .encoder_config import ACTIVATIONS, EncoderConfig

AttentionImpl = Literal["fast", "reference"]

class FeedForward(nn.Module):
    def __init__(self, size: int, intermediate: int, act: str) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(size, intermediate)
        self.output_dense = nn.Linear(intermediate, size)
        self.act = ACTIVATIONS[act]

    def forward(self, x: Tensor) -> Tensor:
        return self.output_dense(self.act(self.intermediate_dense(x)))


def _relative_key_index(length: int, left: int, right: int, device: torch.device) -> Tensor:
    """(T, T) index into the distance table: clamp(j - i, -left, right) + left."""
    positions = torch.arange(length, device=device)
    distance = positions[None, :] - positions[:, None]
    return distance.clamp(-left, right) + left


class SelfAttention(nn.Module):
    def __init__(
        self, size: int, heads: int, relative_key: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_size = size // heads
        self.scaling = self.head_size**-0.5
        self.linear_q = nn.Linear(size, size)
        self.linear_k = nn.Linear(size, size)
        self.linear_v = nn.Linear(size, size)
        self.linear_out = nn.Linear(size, size)
        self.relative_key = relative_key
        self.impl: AttentionImpl = "fast"
        if relative_key is not None:
            left, right = relative_key
            self.distance_embedding = nn.Embedding(left + right + 1, self.head_size)

    def forward(self, x: Tensor, key_bias: Tensor | None) -> Tensor:
        batch, length, _ = x.shape
        shape = (batch, length, self.heads, self.head_size)
        q = self.linear_q(x).view(shape).transpose(1, 2)
        k = self.linear_k(x).view(shape).transpose(1, 2)
        v = self.linear_v(x).view(shape).transpose(1, 2)
        if self.impl == "reference":
            out = self._reference(q, k, v, key_bias)
        else:
            bias = key_bias
            if self.relative_key is not None:
                position = self._position_bias(q)
                bias = position if bias is None else position + bias
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scaling)
        return self.linear_out(out.transpose(1, 2).reshape(batch, length, -1))

    def _position_bias(self, q: Tensor) -> Tensor:
        """scaling * q_i · E[clamp(j - i)], via the (B, H, T, P) products and a gather."""
        assert self.relative_key is not None
        left, right = self.relative_key
        batch, heads, length, _ = q.shape
        table = self.distance_embedding.weight.to(q.dtype)
        per_distance = torch.matmul(q, table.t()) * self.scaling
        index = _relative_key_index(length, left, right, q.device)
        if q.dtype == torch.bfloat16 and q.device.type == "cpu":
            # The same values: CPU gather on bfloat16 goes through copies of the (B, H, T, T)
            # tensor (1 s of a 2.9 s forward pass at 15 s); indexing with a broadcast row does not.
            rows = torch.arange(length, device=q.device)[:, None]
            return per_distance[:, :, rows, index]
        return per_distance.gather(3, index.expand(batch, heads, length, length))

    def _reference(self, q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor | None) -> Tensor:
        """transformers' eager formulation, kept to check and to measure the fast one against."""
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        if self.relative_key is not None:
            left, right = self.relative_key
            index = _relative_key_index(q.shape[2], left, right, q.device)
            embedded = self.distance_embedding(index).to(q.dtype)
            scores = scores + torch.einsum("bhld,lrd->bhlr", q, embedded) * self.scaling
        if key_bias is not None:
            scores = scores + key_bias
        return torch.matmul(scores.softmax(dim=-1), v)


_POINTWISE = ("pointwise_conv1.weight", "pointwise_conv2.weight")


def _squeeze_pointwise(module: nn.Module, state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    for name in _POINTWISE:
        weight = state.get(prefix + name)
        if weight is not None and weight.dim() == 3 and weight.shape[-1] == 1:
            state[prefix + name] = weight[:, :, 0]


def _unsqueeze_pointwise(module: nn.Module, state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    for name in _POINTWISE:
        if prefix + name in state:
            state[prefix + name] = state[prefix + name][:, :, None]


class ConvolutionModule(nn.Module):
    """Pointwise conv, GLU, causal depthwise conv, LayerNorm, activation, pointwise conv.

    The kernel-1 convolutions are held as nn.Linear on (B, T, C), with no transposes around
    them, and so that int8 quantization (torch's and ONNX Runtime's, both MatMul/Linear only)
    covers them; their checkpoint weights keep the Conv1d shape (out, in, 1) both ways.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        size, kernel = config.hidden_size, config.conv_depthwise_kernel_size
        self.layer_norm = nn.LayerNorm(size, eps=config.layer_norm_eps)
        self.pointwise_conv1 = nn.Linear(size, 2 * size, bias=False)
        self.depthwise_conv = nn.Conv1d(size, size, kernel, groups=size, bias=False)
        self.depthwise_layer_norm = nn.LayerNorm(size, eps=config.layer_norm_eps)
        self.pointwise_conv2 = nn.Linear(size, size, bias=False)
        self.act = ACTIVATIONS[config.hidden_act]
        self.kernel = kernel
        self.register_load_state_dict_pre_hook(_squeeze_pointwise)
        self.register_state_dict_post_hook(_unsqueeze_pointwise)

    def forward(self, x: Tensor, padding: Tensor | None) -> Tensor:
        h = self.layer_norm(x)
        if padding is not None:
            h = h.masked_fill(padding, 0.0)
        h = F.glu(self.pointwise_conv1(h), dim=-1)
        h = F.pad(h.transpose(1, 2), (self.kernel - 1, 0))
        h = F.conv1d(h, self.depthwise_conv.weight, groups=h.shape[1]).transpose(1, 2)
        h = self.act(self.depthwise_layer_norm(h))
        return self.pointwise_conv2(h)


class ConformerLayer(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        size, eps = config.hidden_size, config.layer_norm_eps
        relative = (
            (config.left_max_position_embeddings, config.right_max_position_embeddings)
            if config.position_embeddings_type == "relative_key"
            else None
        )
        self.ffn1_layer_norm = nn.LayerNorm(size, eps=eps)
        self.ffn1 = FeedForward(size, config.intermediate_size, config.hidden_act)
        self.self_attn_layer_norm = nn.LayerNorm(size, eps=eps)
        self.self_attn = SelfAttention(size, config.num_attention_heads, relative)
        self.conv_module = ConvolutionModule(config)
        self.ffn2_layer_norm = nn.LayerNorm(size, eps=eps)
        self.ffn2 = FeedForward(size, config.intermediate_size, config.hidden_act)
        self.final_layer_norm = nn.LayerNorm(size, eps=eps)

    def forward(self, x: Tensor, key_bias: Tensor | None, padding: Tensor | None) -> Tensor:
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_bias)
        x = x + self.conv_module(x, padding)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ConformerLayer(config) for _ in range(config.num_hidden_layers))


class FeatureProjection(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.feature_projection_input_dim, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.feature_projection_input_dim, config.hidden_size)

    def forward(self, features: Tensor) -> Tensor:
        return self.projection(self.layer_norm(features))


class AdapterLayer(nn.Module):
    """Strided conv (GLU) on both the residual and the attention branch, then attention and FFN."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        size, eps = config.output_hidden_size, config.layer_norm_eps
        kernel, stride = config.adapter_kernel_size, config.adapter_stride
        self.residual_layer_norm = nn.LayerNorm(size, eps=eps)
        self.residual_conv = nn.Conv1d(size, 2 * size, kernel, stride=stride, padding=stride // 2)
        self.self_attn_layer_norm = nn.LayerNorm(size, eps=eps)
        self.self_attn_conv = nn.Conv1d(size, 2 * size, kernel, stride=stride, padding=stride // 2)
        self.self_attn = SelfAttention(size, config.num_attention_heads)
        self.ffn_layer_norm = nn.LayerNorm(size, eps=eps)
        self.ffn = FeedForward(size, config.intermediate_size, config.adapter_act)

    @staticmethod
    def _conv_glu(conv: nn.Conv1d, x: Tensor, absent: Tensor | None) -> Tensor:
        if absent is not None:
            x = x.masked_fill(absent, 0.0)
        return F.glu(conv(x.transpose(1, 2)), dim=1).transpose(1, 2)

    def forward(self, x: Tensor, key_bias: Tensor | None, absent: Tensor | None) -> Tensor:
        """absent (B, T, 1): frames outside the item's own extent, read as zero padding."""
        residual = self._conv_glu(self.residual_conv, self.residual_layer_norm(x), absent)
        h = self._conv_glu(self.self_attn_conv, self.self_attn_layer_norm(x), absent)
        h = self.self_attn(h, key_bias) + residual
        return h + self.ffn(self.ffn_layer_norm(h))


class Adapter(nn.Module):
    """Optional projection, then the strided adapter layers (each halves the frame rate)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        if config.output_hidden_size != config.hidden_size:
            self.proj: nn.Linear | None = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm: nn.LayerNorm | None = nn.LayerNorm(
                config.output_hidden_size, eps=config.layer_norm_eps
            )
        else:
            self.proj = self.proj_layer_norm = None
        self.layers = nn.ModuleList(AdapterLayer(config) for _ in range(config.num_adapter_layers))

    def forward(self, x: Tensor, valid: Tensor | None, input_frames: Tensor | None) -> Tensor:
        """valid (B, T): the encoder's mask; input_frames (B,): each item's own extent."""
        if self.proj is not None and self.proj_layer_norm is not None:
            x = self.proj_layer_norm(self.proj(x))
        kernel, stride = self.config.adapter_kernel_size, self.config.adapter_stride
        # The convolutions pad stride // 2 frames; the reference computes the mask's lengths
        # with kernel // 2 (the same for the kernel 3, stride 2 of every Muaalem checkpoint).
        conv_padding, mask_padding = stride // 2, kernel // 2
        lengths = valid.sum(dim=1) if valid is not None else None
        extent = input_frames.to(x.device) if input_frames is not None else None
        for layer in self.layers:
            absent = None
            if extent is not None:
                positions = torch.arange(x.shape[1], device=x.device)
                absent = (positions[None, :] >= extent[:, None])[:, :, None]
                extent = strided_frames(extent, kernel, stride, conv_padding)
            strided_bias = None
            if lengths is not None:
                lengths = strided_frames(lengths, kernel, stride, mask_padding)
                out_positions = torch.arange(strided_frames(x.shape[1], kernel, stride, conv_padding), device=x.device)
                strided_bias = _key_bias(out_positions[None, :] < lengths[:, None], x.dtype)
            x = layer(x, strided_bias, absent)
        return x


def _key_bias(valid: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Additive (B, 1, 1, T) mask: 0 for valid keys, the dtype's lowest value for padding.
    None when no key is padding: adding zeros to every layer's (B, H, T, T) scores cost 6 % of a
    15 s forward pass on CPU. Exported graphs keep the mask (the test depends on the data)."""
    if valid is None:
        return None
    if not torch.compiler.is_exporting() and not torch.jit.is_tracing() and bool(valid.all()):
        return None
    zeros = torch.zeros(valid.shape, dtype=dtype, device=valid.device)
    return zeros.masked_fill(~valid, torch.finfo(dtype).min)[:, None, None, :]


class Backbone(nn.Module):
    """`Wav2Vec2BertModel` at inference: (features, mask) -> last hidden state."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config)
        self.intermediate_ffn = (
            FeedForward(config.hidden_size, config.intermediate_size, "relu")
            if config.use_intermediate_ffn_before_adapter
            else None
        )
        self.adapter = Adapter(config) if config.add_adapter else None

    def forward(
        self,
        features: Tensor,
        attention_mask: Tensor | None,
        input_frames: Tensor | None = None,
    ) -> Tensor:
        dtype = self.feature_projection.layer_norm.weight.dtype
        x = self.feature_projection(features.to(dtype))
        valid = attention_mask.bool() if attention_mask is not None else None
        padding = ~valid[:, :, None] if valid is not None else None
        if padding is not None:
            x = x.masked_fill(padding, 0.0)
        key_bias = _key_bias(valid, x.dtype)
        for layer in self.encoder.layers:
            x = layer(x, key_bias, padding)
        if self.intermediate_ffn is not None:
            x = x + 0.5 * self.intermediate_ffn(x)
        if self.adapter is None:
            return x
        return self.adapter(x, valid, input_frames)


class _EncoderModel(nn.Module):
    """What both heads share: the backbone, precision, lengths, attention switch."""

    wav2vec2_bert: Backbone
    # Set by the loaders: `name@digest[+dev]` and whether the weights are random dev weights.
    version: str = ""
    dev_weights: bool = False
    # Set by the loader from the checkpoint's tensors (0: count the module's own parameters).
    parameter_count: int = 0

    @property
    def config(self) -> EncoderConfig:
        return self.wav2vec2_bert.config

    @property
    def dtype(self) -> torch.dtype:
        return self.wav2vec2_bert.feature_projection.layer_norm.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.wav2vec2_bert.feature_projection.layer_norm.weight.device

    def num_parameters(self) -> int:
        return self.parameter_count or sum(p.numel() for p in self.parameters())

    def set_attention_impl(self, impl: AttentionImpl) -> None:
        if impl not in ("fast", "reference"):
            raise ValueError(f"attention impl must be 'fast' or 'reference', got {impl!r}")
        for module in self.modules():
            if isinstance(module, SelfAttention):
                module.impl = impl


class MultiLevelCTC(_EncoderModel):
    """`Wav2Vec2BertForMultilevelCTC`: {level: logits (B, T', V) float32}."""

    def __init__(self, config: EncoderConfig, level_to_vocab_size: Mapping[str, int]) -> None:
        super().__init__()
        self.wav2vec2_bert = Backbone(config)
        self.level_to_lm_head = nn.ModuleDict(
            {level: nn.Linear(config.output_hidden_size if config.add_adapter else config.hidden_size,
                              size)
             for level, size in level_to_vocab_size.items()}
        )

    @property
    def levels(self) -> list[str]:
        return list(self.level_to_lm_head.keys())

    def forward(
        self,
        features: Tensor,
        attention_mask: Tensor | None = None,
        input_frames: Tensor | None = None,
    ) -> dict[str, Tensor]:
        hidden = self.wav2vec2_bert(features, attention_mask, input_frames)
        return {level: head(hidden).float() for level, head in self.level_to_lm_head.items()}


class FrameClassifier(_EncoderModel):
    """`Wav2Vec2BertForAudioFrameClassification`: logits (B, T, num_labels) float32."""

    def __init__(self, config: EncoderConfig, num_labels: int) -> None:
        super().__init__()
        self.wav2vec2_bert = Backbone(config)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(
        self,
        features: Tensor,
        attention_mask: Tensor | None = None,
        input_frames: Tensor | None = None,
    ) -> Tensor:
        """input_frames is accepted for a uniform call; without an adapter nothing reads padding."""
        return self.classifier(self.wav2vec2_bert(features, attention_mask, input_frames)).float()
