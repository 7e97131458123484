"""Fits the tajweed calibration of a checkpoint on the calibration split and writes it beside it.

    .venv/bin/python -m bench.calibrate --checkpoint services/asr/demo_model

1. A copy of the checkpoint without its calibration.json is served through the whole mesh, and
   synthetic recitations of surahs 80-89 (neither trained nor evaluated on), clean and with one
   injected mistake each, are assessed (bench.demo_model_eval's grid of tempos, voices and noise);
   every finding is kept with its truth.
2. The letter threshold (`letter_min_confidence`) is the highest confidence under which a letter
   or haraka error becomes UNCERTAIN such that, on this split, every letter-level mistake kind
   (letter, haraka, drop-word, extra-word) keeps a recall of at least RECALL_FLOOR (or what it had
   with no threshold, if that was lower): the false alarms it removes are the model's own slips.
3. calibration.json is written beside the checkpoint with the surahs it was fitted on and the
   figures that chose it; the asr serves it with the model (GetModelInfo) and the tajweed stage
   judges under it. The other thresholds keep their documented defaults (fitted on nothing, as
   the file's note says) until this step fits them too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.demo_model_eval import CALIBRATION_SURAHS, mesh_figures
from services.tajweed.calibration import Calibration

LETTER_KINDS = ("letter", "haraka", "drop-word", "extra-word")
LETTER_RULES = {"RULE_PRONUNCIATION", "RULE_TASHKEEL"}
ERROR_VERDICTS = {"VERDICT_WRONG", "VERDICT_EXTRA", "VERDICT_MISSING"}
RECALL_FLOOR = 0.9
GRID = [round(0.01 * k, 2) for k in range(0, 96)]


def _letter_errors(rows: Sequence[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    return [r for r in rows if r["rule"] in LETTER_RULES and r["verdict"] in ERROR_VERDICTS
            and r["confidence"] >= threshold]


def letter_figures(rows: Sequence[dict[str, Any]], clean_words: int, threshold: float) -> dict[str, Any]:
    """Recall per letter-level kind and letter false alarms per 100 clean words at `threshold`."""
    kept = _letter_errors(rows, threshold)
    recitations: dict[str, set[int]] = {}
    for r in rows:
        recitations.setdefault(r["kind"], set()).add(r["recitation"])
    recall = {}
    for kind in LETTER_KINDS:
        found = {r["recitation"] for r in kept if r["kind"] == kind and kind in r["on_mistake"]}
        total = recitations.get(kind, set())
        recall[kind] = len(found) / len(total) if total else None
    flagged: set[tuple[int, int]] = set()
    for r in kept:
        near = {w + d for _, w in r["mistakes"] for d in (-1, 0, 1)}
        if r["word_index"] not in near:
            flagged.add((r["recitation"], r["word_index"]))
    return {"threshold": threshold, "recall": recall,
            "letter_false_alarms_per_100_clean_words": round(100 * len(flagged) / max(1, clean_words), 2)}


def choose_letter_threshold(rows: Sequence[dict[str, Any]], clean_words: int) -> tuple[float, list[dict[str, Any]]]:
    curve = [letter_figures(rows, clean_words, t) for t in GRID]
    floors = {k: min(RECALL_FLOOR, v) for k, v in curve[0]["recall"].items() if v is not None}
    allowed = [c for c in curve if all((c["recall"][k] or 0.0) >= floor for k, floor in floors.items())]
    return max(c["threshold"] for c in allowed), curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate")
    parser.add_argument("--checkpoint", type=Path, default=Path("services/asr/demo_model"))
    parser.add_argument("--trials", type=int, default=20, help="recitations per mistake kind")
    parser.add_argument("--clean-trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=80)
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        bare = Path(tmp) / "checkpoint"
        shutil.copytree(args.checkpoint, bare, ignore=shutil.ignore_patterns("calibration.json"))
        dump = Path(tmp) / "findings.jsonl"
        figures = mesh_figures(str(bare), args.trials, args.clean_trials, args.seed, surahs=CALIBRATION_SURAHS,
                               findings_out=dump, log=lambda m: print(m[:200], flush=True))
        rows = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    clean_words = int(figures["all"]["clean_words"])
    threshold, curve = choose_letter_threshold(rows, clean_words)
    chosen = next(c for c in curve if c["threshold"] == threshold)
    print(json.dumps({"before": curve[0], "chosen": chosen}, indent=1))
    surahs = tuple(CALIBRATION_SURAHS)
    calibration = replace(
        Calibration(),
        letter_min_confidence=threshold,
        fitted_on_surahs=surahs,
        note=(f"bench/calibrate.py, seed {args.seed}, {figures['all']['recitations']} recitations of surahs "
              f"{surahs[0]}-{surahs[-1]}: letter_min_confidence {threshold} keeps letter-level recall "
              f"{ {k: round(v, 2) for k, v in chosen['recall'].items() if v is not None} } and takes letter false "
              f"alarms from {curve[0]['letter_false_alarms_per_100_clean_words']} to "
              f"{chosen['letter_false_alarms_per_100_clean_words']} per 100 clean words; the other thresholds "
              "are the documented defaults, not fitted"),
    )
    if not args.dry_run:
        path = calibration.save(Calibration.beside(args.checkpoint))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
