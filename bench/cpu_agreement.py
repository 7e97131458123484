"""How far each CPU option moves what a model that hears decodes: the committed demo checkpoint
(trained on the synthetic reciter) on synthetic recitations of ayat it never trained on.

The speed table runs the full-size architecture with random weights, whose flat log-probabilities
make argmax ties, so its agreement columns are a lower bound. Here every option serves the demo
checkpoint (its own ONNX exports; the static int8 graph calibrated on training-split ayat, never
on the ones measured) and decodes the same recitations; each is compared with torch fp32 (frame
argmax agreement, decode edit distance per phoneme) and with the truth (phoneme error rate).
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from bench.common import ROOT, table
from bench.models import Backend, log, prepare
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine, TranscribeOptions
from services.demo.synth.reciter import Recitation, recite

DEMO_CHECKPOINT = ROOT / "services/asr/demo_model"
OPTIONS = TranscribeOptions(include_log_probs=True, levels=("phonemes",))
# Training split (surahs 1-89) for calibration; the evaluation split (90-114) for measuring.
CALIBRATION_AYAT = ((2, 255), (36, 1), (55, 13), (67, 1), (78, 1), (87, 1))


@dataclass
class Agreement:
    frames_same: int = 0
    frames: int = 0
    edits_to_fp32: int = 0
    edits_to_truth: int = 0
    phonemes: int = 0

    def row(self, label: str) -> list[str]:
        return [
            label,
            f"{100 * self.frames_same / max(1, self.frames):.2f} %",
            f"{100 * self.edits_to_fp32 / max(1, self.phonemes):.2f} %",
            f"{100 * self.edits_to_truth / max(1, self.phonemes):.2f} %",
        ]


def _recitations(ayat: list[tuple[int, int]], seed: int) -> list[Recitation]:
    from bench.demo_model_eval import random_spec

    rng = random.Random(seed)
    return [recite(random_spec(rng, surah, ayah)) for surah, ayah in ayat]


def _calibration() -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="bench-calib-"))
    paths = []
    for i, recitation in enumerate(_recitations(list(CALIBRATION_AYAT), seed=11)):
        wav = folder / f"calib-{i}.wav"
        recitation.write(wav)
        paths.append(str(wav))
    return paths


async def measure(cache_dir: Path, backends: list[Backend], count: int, seed: int = 5) -> dict[str, Agreement]:
    from bench.demo_model_eval import eval_ayahs

    assets = prepare(str(DEMO_CHECKPOINT), "", cache_dir, backends, calibration=("synthetic", _calibration))
    ayat = random.Random(seed).sample(eval_ayahs(), count)
    recitations = _recitations(ayat, seed)
    results = {b.key: Agreement() for b in backends}
    reference = backends[0].key
    # The reference option's frame argmax and decode per recitation.
    best: dict[int, tuple[np.ndarray, str]] = {}
    for backend in backends:
        env = {
            "MUAALEM_ASR_MODEL": str(assets.checkpoint),
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_ASR_DEVICE": "cpu",
            "MUAALEM_CACHE_DIR": str(cache_dir),
            **backend.env(assets),
        }
        engine = AsrEngine(AsrConfig.from_env(env))
        await engine.start()
        try:
            result = results[backend.key]
            for i, recitation in enumerate(recitations):
                out = await engine.transcribe(recitation.samples, OPTIONS)
                argmax = out.log_probs["phonemes"].argmax(-1)
                if backend.key == reference:
                    best[i] = (argmax, out.decode.phonemes)
                ref_argmax, decoded = best[i]
                frames = min(len(argmax), len(ref_argmax))
                result.frames_same += int(np.sum(argmax[:frames] == ref_argmax[:frames]))
                result.frames += frames
                result.edits_to_fp32 += Levenshtein.distance(out.decode.phonemes, decoded)
                result.edits_to_truth += Levenshtein.distance(out.decode.phonemes, recitation.phonemes)
                result.phonemes += len(recitation.phonemes)
        finally:
            await engine.close()
        log(f"cpu-options agreement: {backend.key} done")
    return results


def render(backends: list[Backend], results: dict[str, Agreement], count: int) -> list[str]:
    phonemes = results[backends[0].key].phonemes
    return [
        "### Agreement on a model that hears",
        "",
        f"The demo checkpoint (`services/asr/demo_model`, trained on the synthetic reciter) served by "
        f"each option, on {count} synthetic recitations of evaluation-split ayat ({phonemes} phonemes; "
        "tempos and voices drawn as in docs/demo-model.md). Compared with "
        f"{backends[0].label}: the share of frames with the same most likely phoneme, and decode edits "
        "per phoneme; and each option's own phoneme error rate against the truth. The static int8 "
        "graphs are calibrated on training-split ayat.",
        "",
        *table(
            ["CPU option", "frame argmax agreement", f"decode edits vs {backends[0].label}", "phoneme error rate"],
            [results[b.key].row(b.label) for b in backends],
        ),
    ]
