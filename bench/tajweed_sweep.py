"""Confusion tables of the tajweed verdicts over a synthetic sweep.

Each trial takes a real reference (2:19: natural, badal, muttasil, munfasil, 'arid, shadda,
ghunnah; 2:1-2: lazim; 106:3: leen), a tempo drawn from 0.25-0.45 s per haraka, a reading
(MoshafAttributes lengths drawn from their options), and for every madd a true length
drawn from 2-6 (shadda present or not, ghunnah 2 harakat or short). Spans then get noise:
every group's duration is scaled by a log-normal factor (natural variation, --duration-sd)
and every group boundary moves by a normal jitter in 40 ms frames (alignment error,
--jitter-frames). The decoded symbols are right with probability --symbol-accuracy and
one off otherwise. Each trial is judged twice: from the timing alone, and with the decoded
symbols as well. The service's settings come from the environment (MUAALEM_TAJWEED_*).

    .venv/bin/python bench/tajweed_sweep.py --trials 200
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common.pb import common_pb2
from services.tajweed import phonetics
from services.tajweed.config import TajweedConfig
from services.tajweed.model import Finding, Verdict
from tests.tajweed import synth

VERDICTS = (Verdict.CORRECT, Verdict.TOO_SHORT, Verdict.TOO_LONG, Verdict.MISSING, Verdict.UNCERTAIN)
SHORT = {v: v.value.replace("VERDICT_", "").lower() for v in VERDICTS}
MADD = {"MADD_TABEEI", "MADD_BADAL", "MADD_MUNFASIL", "MADD_MUTTASIL", "MADD_LAZIM", "MADD_ARID", "MADD_LEEN"}
# (surah, first ayah, last ayah)
REFERENCES = ((2, 19, 19), (2, 1, 2), (106, 3, 3))


def _reading(rng: np.random.Generator) -> dict[str, int]:
    aared = int(rng.choice([2, 4, 6]))
    return {
        "madd_monfasel_len": int(rng.choice([2, 3, 4, 5])),
        "madd_mottasel_len": int(rng.choice([4, 5, 6])),
        "madd_aared_len": aared,
        # quran-transcript requires leen <= 'arid.
        "madd_alleen_len": int(rng.choice([x for x in (2, 4, 6) if x <= aared])),
    }


def _truth(actual: float, expected: float) -> Verdict:
    if actual == expected:
        return Verdict.CORRECT
    return Verdict.TOO_SHORT if actual < expected else Verdict.TOO_LONG


def _one_trial(
    rng: np.random.Generator, args: argparse.Namespace, config: TajweedConfig, ayahs: tuple[int, int, int]
) -> list[tuple[str, str, Verdict, Verdict]]:
    """(mode, rule, truth, verdict) for every judged group of one synthetic recitation."""
    ref = synth.range_reference(*ayahs, **_reading(rng))
    tempo = float(rng.uniform(0.25, 0.45))
    consonant = 0.6 * tempo
    durations = synth.natural_durations(ref, tempo, consonant)
    decoded = [g.phonemes for g in ref.groups]
    plan: dict[int, float] = {}  # group -> true length (madd, ghunnah) or 1/2 (shadda)
    madd_groups = _madd_groups(ref)
    for i, is_leen in madd_groups.items():
        actual = int(rng.choice([2, 3, 4, 5, 6]))
        plan[i] = actual
        written = actual - 1 if is_leen else actual
        durations[i] = written * tempo
        decoded[i] = ref.groups[i].phonemes[0] * _noisy(rng, written, args.symbol_accuracy)
    for i, g in enumerate(ref.groups):
        core, count, mark = g.phonemes[0], _count(g.phonemes), g.phonemes[_count(g.phonemes) :]
        if i in madd_groups:
            continue
        if count == 2 and core in phonetics.CONSONANTS:
            present = bool(rng.random() < 0.5)
            plan[i] = 2 if present else 1
            voweled = mark in phonetics.HARAKAT
            durations[i] = (tempo if voweled else consonant) + (consonant if present else 0.0)
            if not present:
                decoded[i] = core + mark
        elif count >= 3 and core in phonetics.NASAL_CORES:
            hold = 2.0 if rng.random() < 0.5 else 0.75
            plan[i] = hold
            voweled = mark in phonetics.HARAKAT
            durations[i] = hold * tempo + (tempo if voweled else 0.0)
            if hold < 2:
                decoded[i] = core * (1 + int(voweled)) + mark
    scale = np.exp(rng.normal(0.0, args.duration_sd, size=len(durations)))
    timing = synth.alignment(
        ref, list(np.asarray(durations) * scale), jitter_frames=args.jitter_frames, rng=rng
    )
    dec = synth.decode("".join(decoded))
    by_start = {g.phoneme_start: i for i, g in enumerate(ref.groups)}
    out = []
    for mode, decode in (("timing", None), ("timing+symbols", dec)):
        req = synth.request(ref, timing, decode, validators=["madd", "shadda", "ghunnah"])
        for finding in synth.validate(req, config).findings:
            truth = _expected(finding, by_start.get(finding.phoneme_start), plan)
            if truth is not None:
                out.append((mode, finding.rule.value, truth, finding.verdict))
    return out


def _count(text: str) -> int:
    return len(text) - len(text.lstrip(text[0]))


def _noisy(rng: np.random.Generator, count: int, accuracy: float) -> int:
    if rng.random() < accuracy:
        return count
    return max(1, count + int(rng.choice([-1, 1])))


def _madd_groups(ref: common_pb2.Reference) -> dict[int, bool]:
    """Groups a madd rule lengthens -> whether it is a leen."""
    groups: dict[int, bool] = {}
    for rule in ref.rules:
        if not rule.rule.endswith("MaddRule"):
            continue
        is_leen = rule.rule == "LeenMaddRule"
        for i, g in enumerate(ref.groups):
            inside = g.phoneme_start < rule.phoneme_end and rule.phoneme_start < g.phoneme_end
            wanted = g.phonemes[0] in ("يو" if is_leen else "اۦۥ")
            if inside and wanted:
                groups[i] = is_leen
                break
    return groups


def _expected(finding: Finding, group: int | None, plan: dict[int, float]) -> Verdict | None:
    if group is None or group not in plan:
        return None
    actual = plan[group]
    if finding.source == "shadda":
        return Verdict.CORRECT if actual == 2 else Verdict.MISSING
    if finding.source == "ghunnah":
        return Verdict.CORRECT if actual == 2 else Verdict.TOO_SHORT
    return _truth(actual, float(finding.expected_harakat[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200, help="synthetic recitations per reference")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jitter-frames", type=float, default=1.0, help="SD of boundary noise, in 40 ms frames")
    parser.add_argument("--duration-sd", type=float, default=0.05, help="log-SD of each group's duration")
    parser.add_argument("--symbol-accuracy", type=float, default=0.85, help="P(decoded count is right)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    config = TajweedConfig.from_env()
    tables: dict[tuple[str, str], Counter[tuple[Verdict, Verdict]]] = defaultdict(Counter)
    started = time.perf_counter()
    for ayahs in REFERENCES:
        for _ in range(args.trials):
            for mode, rule, truth, verdict in _one_trial(rng, args, config, ayahs):
                tables[(mode, rule)][(truth, verdict)] += 1
    elapsed = time.perf_counter() - started
    print(
        f"# tajweed sweep: {args.trials} trials x {len(REFERENCES)} references, tempo 0.25-0.45 s/haraka, "
        f"duration log-SD {args.duration_sd}, boundary jitter {args.jitter_frames} frames, "
        f"symbol accuracy {args.symbol_accuracy}, seed {args.seed} ({elapsed:.1f} s)\n"
    )
    summary: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (mode, rule), table in sorted(tables.items()):
        total = sum(table.values())
        right = sum(n for (t, v), n in table.items() if t == v)
        uncertain = sum(n for (_, v), n in table.items() if v == Verdict.UNCERTAIN)
        if rule in MADD:
            summary[mode][0] += right
            summary[mode][1] += total
            summary[mode][2] += uncertain
        print(f"## {rule} ({mode}): {right}/{total} right = {100 * right / total:.1f} %, uncertain {uncertain}")
        truths = [t for t in VERDICTS if any(k[0] == t for k in table)]
        print("| truth \\ verdict | " + " | ".join(SHORT[v] for v in VERDICTS) + " |")
        print("|---" * (len(VERDICTS) + 1) + "|")
        for t in truths:
            print(f"| {SHORT[t]} | " + " | ".join(str(table.get((t, v), 0)) for v in VERDICTS) + " |")
        print()
    for mode, (right, total, uncertain) in sorted(summary.items()):
        print(
            f"madd lengths, {mode}: {right}/{total} right = {100 * right / total:.1f} % "
            f"({uncertain} uncertain, {100 * uncertain / total:.1f} %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
