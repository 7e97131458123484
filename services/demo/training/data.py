"""The demo model's data: synthetic recitations of the training split, as cached features and
CTC labels (one phoneme id per phoneme; one sifa id per phoneme group on each sifa level)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.asr.devmodel import PREPROCESSOR_CONFIG
from services.asr.features import FeatureExtractor
from services.asr.vocab import SIFA_LABEL_ARABIC, Vocabulary
from services.demo.synth.espeak import VOICES, Voice
from services.demo.synth.mistakes import KINDS, Mistake
from services.demo.synth.reciter import Recitation, Spec, recite
from services.tajweed.calibration import CALIBRATION_SURAHS

# Neither the calibration split (80-89, whose texts the thresholds are fitted on) nor the
# evaluation split (90-114). Runs 1 and 2 of the committed checkpoint trained on 1-89 (see
# docs/demo-model.md); every later run keeps the calibration texts unseen.
TRAIN_SURAHS = range(1, CALIBRATION_SURAHS.start)
WHOLE_AYAH_MAX_WORDS = 10
WINDOW_WORDS = (4, 8)
# A small grid of pitches and rates: each voice's syllables are rendered once.
PITCHES = (35, 50, 65)
RATES = (140, 170)
TEMPO_RANGE = (0.2, 0.5)
MISTAKE_RATE = 0.4


@dataclass(frozen=True)
class Item:
    surah: int
    ayah: int
    words: tuple[int, int] | None = None


def training_pool(rng: random.Random) -> list[Item]:
    """Every short ayah of the training split, and word windows of the long ones."""
    from services.gateway.reference import quran

    items: list[Item] = []
    for surah in TRAIN_SURAHS:
        for ayah in range(1, quran.ayah_count(surah) + 1):
            text = quran.ayah_text(surah, ayah)
            if len(text.uthmani_words) <= WHOLE_AYAH_MAX_WORDS:
                items.append(Item(surah, ayah))
                continue
            count = len(text.imlaey_words)
            start = 0
            while start < count - 2:
                size = min(rng.randint(*WINDOW_WORDS), count - start)
                items.append(Item(surah, ayah, (start, size)))
                start += size
    return items


def random_voice(rng: random.Random) -> Voice:
    return Voice(rng.choice(VOICES), rng.choice(PITCHES), rng.choice(RATES))


def random_mistakes(rng: random.Random, words: int) -> tuple[Mistake, ...]:
    if rng.random() >= MISTAKE_RATE or words < 2:
        return ()
    chosen = rng.sample(range(words), k=min(words, rng.choice((1, 1, 2))))
    return tuple(Mistake(rng.choice(KINDS), w) for w in chosen)


def labels(recitation: Recitation, vocab: Vocabulary) -> dict[str, list[int]]:
    phoneme_ids = {t: i for i, t in enumerate(vocab.tokens["phonemes"])}
    out: dict[str, list[int]] = {"phonemes": [phoneme_ids[p] for p in recitation.phonemes]}
    for level in vocab.sifa_levels:
        ids = {t: i for i, t in enumerate(vocab.tokens[level])}
        out[level] = [ids[f"[{SIFA_LABEL_ARABIC[g.sifat[level]]}]"] for g in recitation.groups]
    return out


def add_noise(samples: np.ndarray, rng: random.Random) -> np.ndarray:
    snr_db = rng.uniform(25.0, 50.0)
    power = float(np.mean(np.square(samples))) or 1e-6
    noise = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(len(samples)).astype(np.float32)
    return (samples + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def build(count: int, out: Path, seed: int, log: Any = print, budget_s: float = float("inf")) -> dict[str, Any]:
    """Renders `count` recitations of the training split (fewer when `budget_s` runs out first)
    and saves their features and labels to `out`."""
    rng = random.Random(seed)
    vocab = Vocabulary.from_quran_transcript()
    extractor = FeatureExtractor(PREPROCESSOR_CONFIG)
    pool = training_pool(rng)
    rng.shuffle(pool)
    examples: list[dict[str, Any]] = []
    seconds = 0.0
    started = time.monotonic()
    index = 0
    while len(examples) < count and index < 4 * count and time.monotonic() - started < budget_s:
        item = pool[index % len(pool)]
        index += 1
        try:
            from services.demo.synth.script import reference_for

            words = len(reference_for(item.surah, item.ayah, words=item.words).words)
            spec = Spec(item.surah, item.ayah, tempo=rng.uniform(*TEMPO_RANGE), voice=random_voice(rng),
                        mistakes=random_mistakes(rng, words), words=item.words)
            recitation = recite(spec)
        except Exception:
            # A mistake that word cannot carry, or a word window quran-transcript cannot cut
            # (it raises its own errors, e.g. a window edge inside a joined Uthmani word).
            continue
        wave = add_noise(recitation.samples, rng)
        batch = extractor.extract([wave])
        valid = int(batch.attention_mask[0].sum())
        extent = int(batch.features.shape[1])
        examples.append({
            "features": batch.features[0, :extent].to(torch.float16).clone(),
            "valid_frames": valid,
            "labels": {k: torch.tensor(v, dtype=torch.int16) for k, v in labels(recitation, vocab).items()},
            "key": f"{item.surah}:{item.ayah}" + (f"/{item.words[0]}+{item.words[1]}" if item.words else ""),
            "mistakes": [m.kind for m in spec.mistakes],
        })
        seconds += len(recitation.samples) / recitation.rate
        if len(examples) % 200 == 0:
            log(f"rendered {len(examples)}/{count} ({seconds / 3600:.2f} h audio, {time.monotonic() - started:.0f} s)")
    summary = {"examples": len(examples), "audio_hours": round(seconds / 3600, 3),
               "render_wall_s": round(time.monotonic() - started, 1), "seed": seed,
               "surahs": f"{TRAIN_SURAHS.start}-{TRAIN_SURAHS.stop - 1}", "tempo_range": TEMPO_RANGE,
               "mistake_rate": MISTAKE_RATE, "voices": list(VOICES)}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"examples": examples, "summary": summary}, out)
    return summary
