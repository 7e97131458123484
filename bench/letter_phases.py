"""What the letter frame phases cost (`python -m bench.letter_phases`, docs/benchmarks.md): the same
recitations, each with one injected letter mistake (so every one asks for its phases), assessed
through the mesh with MUAALEM_LETTER_PHASES at 1 and at 4, one mesh each, after a warm-up call;
the demo checkpoint serves the asr."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.demo_model_eval import assess_with, eval_ayahs, grid_spec, start_mesh
from services.common.errors import MeshError
from services.demo.synth.mistakes import Mistake
from services.demo.synth.reciter import Recitation, recite
from services.demo.synth.script import reference_for


def recitations(count: int, seed: int) -> list[Recitation]:
    rng = random.Random(seed)
    ayahs = eval_ayahs()
    out: list[Recitation] = []
    while len(out) < count:
        surah, ayah = rng.choice(ayahs)
        mistake = Mistake("letter", rng.randrange(len(reference_for(surah, ayah).words)))
        try:
            out.append(recite(grid_spec(rng, surah, ayah, (mistake,))))
        except MeshError:
            continue  # a word that cannot carry the mistake
    return out


def measure(checkpoint: str, phases: int, recited: list[Recitation]) -> str:
    os.environ["MUAALEM_LETTER_PHASES"] = str(phases)
    with tempfile.TemporaryDirectory(prefix="letter-phases-") as tmp:
        mesh = start_mesh(checkpoint, Path(tmp))
        try:
            assess = assess_with(mesh)
            assess(recited[0])
            totals: list[float] = []
            asr: list[float] = []
            phased: list[float] = []
            for recitation in recited:
                started = time.perf_counter()
                assessment = assess(recitation)
                totals.append((time.perf_counter() - started) * 1000)
                stages = {s.stage: s.duration_ms for s in assessment.stages}
                asr.append(stages.get("asr", 0.0))
                phased.append(stages.get("asr_phases", 0.0))
        finally:
            mesh.stop()
    asked = sum(p > 0 for p in phased)
    return (f"| {phases} | {statistics.median(totals):.0f} ms | {statistics.median(asr):.0f} ms | "
            f"{statistics.median(phased):.0f} ms | {asked} of {len(recited)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="services/asr/demo_model")
    parser.add_argument("--recitations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    recited = recitations(args.recitations, args.seed)
    audio = statistics.median(r.truth["duration_s"] for r in recited)
    print(f"{len(recited)} recitations, {audio:.1f} s of audio p50")
    print("| MUAALEM_LETTER_PHASES | Assess total p50 | asr stage p50 | asr_phases stage p50 | asked for phases |")
    print("|---|---|---|---|---|")
    for phases in (1, 4):
        print(measure(args.checkpoint, phases, recited), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
