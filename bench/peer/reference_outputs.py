"""Reference outputs of the model author's own classes (run with .venv-peer/bin/python).

Builds a small `Wav2Vec2BertForMultilevelCTC` with quran-muaalem's classes, saves it the way the
real checkpoint is saved (save_pretrained, the feature extractor's config, the author's
vocab.json), runs the author's `Muaalem` in float32 on each clip alone (logits, features,
phonemes, probabilities, sifat) and on all clips as one padded batch (features and logits), and
dumps everything for tests/asr/test_conformance.py to compare with services.asr. With
--dev-checkpoint it also loads a `muaalem dev-model` checkpoint with the author's class and dumps
its logits on each clip.

Usage: reference_outputs.py INPUTS_JSON OUT_DIR [--dev-checkpoint DIR]

INPUTS_JSON: {"clips": [{"name", "wave" (a .npy of 16 kHz float32 samples), "uthmani",
"moshaf" (MoshafAttributes fields)}]}. OUT_DIR receives checkpoint/, arrays.npz, decode.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quran_muaalem import Muaalem
from quran_muaalem.modeling.configuration_multi_level_ctc import (
    Wav2Vec2BertForMultilevelCTCConfig,
)
from quran_muaalem.modeling.modeling_multi_level_ctc import Wav2Vec2BertForMultilevelCTC
from quran_muaalem.modeling.vocab import build_quran_phoneme_script_vocab
from quran_transcript import MoshafAttributes, quran_phonetizer
from transformers import SeamlessM4TFeatureExtractor

SEED = 1234
SAMPLING_RATE = 16_000


def build_checkpoint(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    build_quran_phoneme_script_vocab(str(directory / "vocab.json"))
    vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    sizes = {level: len(table) for level, table in vocab.items()}
    # A fresh dict each time: the author's config class mutates its default argument. Binary
    # fractions, because it rejects weights whose float sum exceeds 1.
    weights = {level: (0.375 if level == "phonemes" else 0.0625) for level in sizes}
    config = Wav2Vec2BertForMultilevelCTCConfig(
        level_to_vocab_size=sizes,
        level_to_loss_weight=weights,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        add_adapter=True,
        num_adapter_layers=1,
        adapter_stride=2,
        adapter_kernel_size=3,
        mask_time_prob=0.0,
    )
    torch.manual_seed(SEED)
    model = Wav2Vec2BertForMultilevelCTC(config)
    _rescale(model)
    model.save_pretrained(str(directory))
    SeamlessM4TFeatureExtractor(padding_value=1.0).save_pretrained(str(directory))


@torch.no_grad()
def _rescale(model: torch.nn.Module) -> None:
    """Scale-preserving random weights: HF's small init gives near-uniform, tie-prone outputs."""
    generator = torch.Generator().manual_seed(SEED)
    for name, param in model.named_parameters():
        shape = param.shape
        if "layer_norm" in name and name.endswith("weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bias"):
            value = 0.02 * torch.randn(shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            value = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        param.copy_(value)


def _unit(unit: Any) -> dict[str, Any] | None:
    if unit is None:
        return None
    return {"text": unit.text, "prob": float(unit.prob), "idx": int(unit.idx)}


def _decode_record(out: Any) -> dict[str, Any]:
    levels = [f for f in out.sifat[0].__dataclass_fields__ if f != "phonemes_group"] if out.sifat else []
    return {
        "phonemes": out.phonemes.text,
        "ids": [int(i) for i in out.phonemes.ids],
        "probs": [float(p) for p in out.phonemes.probs],
        "sifat": [
            {"phonemes_group": s.phonemes_group, **{lv: _unit(getattr(s, lv)) for lv in levels}}
            for s in out.sifat
        ],
    }


def _logits(model: torch.nn.Module, processor: Any, waves: list[np.ndarray]) -> dict[str, Any]:
    features = processor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt")
    logits = model(**features, return_dict=False)[0]
    return {
        "features": features["input_features"].numpy(),
        "mask": features["attention_mask"].numpy(),
        **{f"logits/{level}": value.numpy() for level, value in logits.items()},
    }


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs")
    parser.add_argument("out_dir")
    parser.add_argument("--dev-checkpoint")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    spec = json.loads(Path(args.inputs).read_text(encoding="utf-8"))
    clips = spec["clips"]
    waves = [np.load(clip["wave"]).astype(np.float32) for clip in clips]

    checkpoint = out_dir / "checkpoint"
    build_checkpoint(checkpoint)
    muaalem = Muaalem(str(checkpoint), device="cpu", dtype=torch.float32)
    muaalem.model.eval()

    arrays: dict[str, np.ndarray] = {}
    decodes: dict[str, Any] = {}
    for clip, wave in zip(clips, waves, strict=True):
        reference = quran_phonetizer(
            clip["uthmani"], MoshafAttributes(**clip["moshaf"]), remove_spaces=True
        )
        (out,) = muaalem([wave], [reference], sampling_rate=SAMPLING_RATE)
        decodes[clip["name"]] = _decode_record(out)
        for key, value in _logits(muaalem.model, muaalem.processor, [wave]).items():
            arrays[f"alone/{clip['name']}/{key}"] = value
    for key, value in _logits(muaalem.model, muaalem.processor, waves).items():
        arrays[f"batch/{key}"] = value

    if args.dev_checkpoint:
        dev = Wav2Vec2BertForMultilevelCTC.from_pretrained(args.dev_checkpoint).eval()
        for clip, wave in zip(clips, waves, strict=True):
            for key, value in _logits(dev, muaalem.processor, [wave]).items():
                arrays[f"dev/{clip['name']}/{key}"] = value

    save: Any = np.savez  # numpy's stub types **kwds as its own keyword flags
    save(out_dir / "arrays.npz", **arrays)
    (out_dir / "decode.json").write_text(
        json.dumps(decodes, ensure_ascii=False, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
