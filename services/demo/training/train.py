"""Fitting the demo model: CTC on the phoneme level and the ten sifat levels, on CPU, for a
fixed wall-clock budget (the learning rate follows a cosine over the budget), then writing the
checkpoint in the real multi_level_ctc format with the demo marker and the recipe."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from services.asr.checkpoint import DEMO_MARKER, resolve_checkpoint
from services.asr.devmodel import PREPROCESSOR_CONFIG, multilevel_ctc_config, write_checkpoint_files
from services.asr.modeling import EncoderConfig, MultiLevelCTC
from services.asr.vocab import Vocabulary
from services.asr.weights import load_multilevel_ctc

# A few MB of weights: espeak-ng speech is regular, a small conformer learns it.
SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "conv_depthwise_kernel_size": 15,
    "output_hidden_size": 128,
}
PEAK_LR = 2e-3
WARMUP_STEPS = 100
BATCH_SECONDS = 20.0  # audio per batch (padded frames included): more, smaller steps on a slow CPU
PHONEME_WEIGHT = 0.5


def demo_config(seed: int) -> dict[str, Any]:
    config = multilevel_ctc_config("tiny", seed)
    config.pop("muaalem_dev_checkpoint", None)
    config.update(SHAPE)
    return config


def _batches(examples: list[dict[str, Any]], rng: random.Random) -> list[list[int]]:
    """Indexes grouped by similar length (little padding), batches shuffled."""
    order = sorted(range(len(examples)), key=lambda i: examples[i]["features"].shape[0] + rng.random() * 40)
    frames_budget = int(BATCH_SECONDS / 0.02)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([examples[j]["features"].shape[0] for j in current] + [examples[i]["features"].shape[0]])
        if current and longest * (len(current) + 1) > frames_budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _spec_augment(features: Tensor, rng: random.Random) -> Tensor:
    """Two short time masks and one band of mel bins, set to the utterance's mean (0)."""
    features = features.clone()
    frames = features.shape[0]
    for _ in range(2):
        width = rng.randint(0, 4)
        start = rng.randint(0, max(0, frames - width))
        features[start : start + width] = 0.0
    width = rng.randint(0, 8)
    start = rng.randint(0, 80 - width)
    features[:, start : start + width] = 0.0
    features[:, 80 + start : 80 + start + width] = 0.0
    return features


def _collate(examples: list[dict[str, Any]], rng: random.Random, augment: bool) -> dict[str, Any]:
    longest = max(e["features"].shape[0] for e in examples)
    features = torch.full((len(examples), longest, 160), float(PREPROCESSOR_CONFIG["padding_value"]))
    mask = torch.zeros((len(examples), longest), dtype=torch.int64)
    for row, e in enumerate(examples):
        f = e["features"].float()
        features[row, : f.shape[0]] = _spec_augment(f, rng) if augment else f
        mask[row, : e["valid_frames"]] = 1
    extents = torch.tensor([e["features"].shape[0] for e in examples])
    valid = torch.tensor([e["valid_frames"] for e in examples])
    return {"features": features, "mask": mask, "extents": extents, "valid": valid}


def output_lengths(valid: Tensor, config: EncoderConfig) -> Tensor:
    lengths = valid.clone()
    for _ in range(config.num_adapter_layers if config.add_adapter else 0):
        lengths = torch.where(lengths <= 0, 0, torch.div(lengths - 1, config.adapter_stride, rounding_mode="floor") + 1)
    return lengths


def ctc_loss(model: MultiLevelCTC, batch: dict[str, Any], examples: list[dict[str, Any]],
             weights: dict[str, float]) -> tuple[Tensor, dict[str, float]]:
    logits = model(batch["features"], batch["mask"], input_frames=batch["extents"])
    lengths = output_lengths(batch["valid"], model.config)
    total = torch.zeros(())
    parts: dict[str, float] = {}
    for level, weight in weights.items():
        log_probs = F.log_softmax(logits[level], dim=-1).transpose(0, 1)
        targets = [e["labels"][level].long() for e in examples]
        loss = F.ctc_loss(log_probs[: int(lengths.max())], torch.cat(targets), lengths,
                          torch.tensor([len(t) for t in targets]), blank=0, reduction="mean", zero_infinity=True)
        total = total + weight * loss
        parts[level] = float(loss.detach())
    return total, parts


def train(data_path: Path, out_dir: Path, seed: int, budget_s: float, threads: int = 2,
          log: Any = print, init_from: Path | None = None, peak_lr: float = PEAK_LR) -> dict[str, Any]:
    """Trains for budget_s of wall time; from init_from's weights (a checkpoint of this shape:
    a continued run on new renderings) or from a seeded random start."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    data = torch.load(data_path, weights_only=True)
    examples: list[dict[str, Any]] = data["examples"]
    held_out = examples[: max(8, len(examples) // 50)]  # a check on unseen renderings, same split
    examples = examples[len(held_out):]
    config = demo_config(seed)
    vocab = Vocabulary.from_quran_transcript()
    encoder = EncoderConfig.from_config(config)
    model = MultiLevelCTC(encoder, config["level_to_vocab_size"])
    started_from = None
    if init_from is not None:
        files = resolve_checkpoint(str(init_from))
        model.load_state_dict(load_multilevel_ctc(files, "cpu", "float32").state_dict())
        started_from = {"checkpoint": str(init_from), "weights_digest": files.weights_digest}
        log(f"starting from {init_from} ({files.weights_digest[:16]})")
    else:
        _init(model, seed)
    weights = {level: (PHONEME_WEIGHT if level == "phonemes" else (1 - PHONEME_WEIGHT) / len(vocab.sifa_levels))
               for level in vocab.levels}
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01, betas=(0.9, 0.98))
    started = time.monotonic()
    step, epoch, seen_s = 0, 0, 0.0
    last_save = started
    history: list[dict[str, Any]] = []
    done = False
    while not done:
        epoch += 1
        for indexes in _batches(examples, rng):
            elapsed = time.monotonic() - started
            if elapsed >= budget_s:
                done = True
                break
            lr = peak_lr * min(1.0, (step + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s))
            for group in optimizer.param_groups:
                group["lr"] = lr
            chosen = [examples[i] for i in indexes]
            model.train()
            loss, parts = ctc_loss(model, _collate(chosen, rng, augment=True), chosen, weights)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
            seen_s += sum(e["valid_frames"] for e in chosen) * 0.02
            if step % 25 == 0:
                log(f"step {step} epoch {epoch} {elapsed:.0f}s lr {lr:.2e} loss {float(loss):.3f} "
                    f"phonemes {parts['phonemes']:.3f}")
            if time.monotonic() - last_save > 600:
                _save(model, config, out_dir, {"steps": step, "partial": True})
                last_save = time.monotonic()
                check = evaluate(model, held_out, weights)
                history.append({"step": step, "elapsed_s": round(elapsed), "held_out": check})
                log(f"checkpoint at step {step}: {history[-1]}")
    wall = time.monotonic() - started
    recipe = {
        "seed": seed, "steps": step, "epochs_started": epoch, "wall_s": round(wall, 1), "threads": threads,
        "peak_lr": peak_lr, "started_from": started_from, "warmup_steps": WARMUP_STEPS, "batch_seconds": BATCH_SECONDS,
        "audio_seen_hours": round(seen_s / 3600, 2), "data": data["summary"], "shape": SHAPE,
        "parameters": sum(p.numel() for p in model.parameters()), "loss_weights": weights,
        "held_out": evaluate(model, held_out, weights), "history": history,
    }
    _save(model, config, out_dir, recipe)
    return recipe


def _init(model: MultiLevelCTC, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if param.dim() > 1:
            fan_in = param[0].numel()
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
        elif name.endswith("bias"):
            torch.nn.init.zeros_(param)


def evaluate(model: MultiLevelCTC, examples: list[dict[str, Any]], weights: dict[str, float]) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        loss, _ = ctc_loss(model, _collate(examples, random.Random(0), augment=False), examples, weights)
        batch = _collate(examples, random.Random(0), augment=False)
        logits = model(batch["features"], batch["mask"], input_frames=batch["extents"])["phonemes"]
        lengths = output_lengths(batch["valid"], model.config)
    errors = total = 0
    for row, e in enumerate(examples):
        best = logits[row, : int(lengths[row])].argmax(-1).tolist()
        decoded = [t for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t)]
        truth = e["labels"]["phonemes"].tolist()
        errors += _edit_distance(decoded, truth)
        total += len(truth)
    return {"loss": round(float(loss), 4), "per": round(errors / max(1, total), 4)}


def _edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _save(model: MultiLevelCTC, config: dict[str, Any], out_dir: Path, recipe: dict[str, Any]) -> None:
    config = {**config, DEMO_MARKER: {
        "note": "demo weights trained by `make demo-model` on the project's synthetic reciter "
                "(espeak-ng): they hear that voice, not people",
        "seed": recipe.get("seed"), "steps": recipe.get("steps"),
    }}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_checkpoint_files(out_dir, config, state, Vocabulary.from_quran_transcript().to_table())
    (out_dir / "recipe.json").write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
