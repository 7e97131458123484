"""Fits the tajweed calibration of a checkpoint on the calibration split and writes it beside it.

    .venv/bin/python -m bench.calibrate --checkpoint services/asr/demo_model
    .venv/bin/python -m bench.calibrate --findings F.jsonl    # refit on a run already made

1. A copy of the checkpoint without its calibration.json is served through the whole mesh, and
   synthetic recitations of surahs 80-89 (neither trained nor evaluated on), clean and with one
   injected mistake each, are assessed (bench.demo_model_eval's grid of tempos, voices and noise);
   every finding, the rules judged right included, is kept with its truth (F.jsonl, and one line
   per recitation in F.recitations.jsonl). `--findings` reuses such a run: it must have been made
   without a calibration (the defaults judged it), which the replay check below verifies.
2. Every threshold whose decision can be replayed from a finding's own numbers is fitted offline
   on those findings (`replay`: the same functions the tajweed stage runs, on the recorded
   measures; no mesh run per grid point). Replayable:
   - letters and harakat: the confidence (`letter_min_confidence`, and per expected letter with at
     least MIN_RULE_FINDINGS letter findings on the split, `letter_min_confidence_by_letter`: the
     model hears some sounds worse than others) and the share of frame-phase
     decodes that heard the error (`letter_sure_phases`, `letter_dismiss_phases`; a run under the
     defaults records no finding heard by fewer than half of them, so the dismissal is fitted
     from half upwards), and the aligner's llr on the expected sounds (`letter_uncertain_llr`,
     `letter_dismiss_llr`, from the dump's `aligned` evidence);
   - madd and ghunnah lengths: the timed length and its spread (`Measurement.duration_sd`), the
     decoded count, the expected and permitted lengths, P(maghnoon): `tolerance_harakat` per
     rule, `ghunnah_long_slack_harakat`, `uncertain_margin_harakat`, `min_error_confidence`, `disagreement_harakat`,
     `symbol_sd_harakat`, `errors_need_agreement`, `ghonna_absent`; the izhar check too;
   - qalqalah: the release's level against the loud level, P(moqalqal) and the decoded ڇ:
     `release_level_db`, `no_release_level_db`, `qalqla_present`, `qalqla_absent`.
   Before fitting, the replay under the run's own calibration must give every replayable
   finding the verdict the mesh gave it (`replay agrees`), else the run is refused.
3. The objective, over the whole split: minimise
       false-alarm lines + UNCERTAIN_COST x uncertain findings + MISS_COST x mistakes missed
   (a false alarm: an error line on a word more than one word from every injected mistake,
   bench/demo_eval_scoring.py's definition; an uncertain finding is shown greyed, without an
   error line: it costs the learner's attention but misleads less, counted as half a false
   alarm; a mistake missed (not flagged on its word with its kind, bench.demo_model_eval.names)
   costs as much as a false alarm), subject to: every mistake kind keeps a recall of at least
   RECALL_FLOOR, or what it had under the defaults if that was lower (with every letter error the
   run recorded counted sure: the defaults' own frame-phase share would lower the floor). The minimum is searched
   coordinate by coordinate over fixed grids (GRIDS), in a fixed order, for at most PASSES
   passes (until one changes nothing); on a tie the current value stays, else the middle of the
   tied grid values is taken (the widest margin either side). A length rule gets its own
   tolerance when the split holds at least MIN_RULE_FINDINGS of its findings; the rarer rules
   of a family (madd; ghunnah, idgham, ikhfa, iqlab) share one.
4. Not fitted (documented defaults): what only a mesh run can show (shadda's threshold and
   contradiction level, whose symbol vote is not in the finding; silence, pauses and the final
   stop's fall, which decide where segments and stops are; the tempo prior) and `ghonna_present`
   (no verdict reads the YES level of ghonna).
5. calibration.json is written beside the checkpoint with the surahs it was fitted on, a note,
   and under `fit` the figures that chose it: per coordinate the value chosen, and the recall
   per kind, false-alarm lines, false alarms per 100 clean words and uncertain findings under
   the defaults and under the fit. The asr serves it with the model (GetModelInfo) and the
   tajweed stage judges under it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.demo_model_eval import CALIBRATION_SURAHS, mesh_figures, mistake_words, names, recitations_path
from services.common.pb import common_pb2
from services.tajweed import ghunnah, qalqalah
from services.tajweed.calibration import LENGTH_RULES, NO_LLR_LIMIT, Calibration
from services.tajweed.evidence import Length, LengthPolicy, judge_length, level
from services.tajweed.explain import DISMISSED, expected_llr, letter_doubt, letter_of
from services.tajweed.ghunnah import izhar_judgement, with_nasality

LETTER_KINDS = ("letter", "haraka", "drop-word", "extra-word")
LETTER_RULES = {"RULE_PRONUNCIATION", "RULE_TASHKEEL"}
NOT_A_PROBLEM = {"VERDICT_CORRECT", "VERDICT_UNCERTAIN", "VERDICT_UNSPECIFIED"}
UNCERTAIN = "VERDICT_UNCERTAIN"
RECALL_FLOOR = 0.9
UNCERTAIN_COST = 0.5
MISS_COST = 1.0
MIN_RULE_FINDINGS = 20
PASSES = 8
GRID = [round(0.01 * k, 2) for k in range(0, 96)]


def _steps(low: float, high: float, step: float) -> list[float]:
    return [round(low + step * k, 4) for k in range(round((high - low) / step) + 1)]


GRIDS: dict[str, list[Any]] = {
    "letter_min_confidence": GRID,
    # Shares of the frame-phase decodes: at MUAALEM_LETTER_PHASES=4 each step of 0.25 is one decode.
    "letter_sure_phases": _steps(0.0, 1.0, 0.125),
    "letter_dismiss_phases": _steps(0.0, 1.0, 0.125),
    # The aligner's llr (a mean log-probability ratio: a hit is near -20, the expected sound said
    # near 0 or above); NO_LLR_LIMIT leaves it unused. Only where the expected sound is at least
    # as likely as any other (llr >= 0) may the aligner remove a finding; where a competitor is
    # likelier, however little, the two kinds of evidence disagree and it is UNCERTAIN at most.
    "letter_uncertain_llr": [*_steps(-20.0, 10.0, 0.5), NO_LLR_LIMIT],
    "letter_dismiss_llr": [*_steps(0.0, 10.0, 0.5), NO_LLR_LIMIT],
    "tolerance": _steps(0.25, 1.5, 0.125),
    "ghunnah_long_slack_harakat": _steps(0.0, 1.5, 0.125),
    "uncertain_margin_harakat": _steps(0.0, 1.0, 0.125),
    "min_error_confidence": _steps(0.5, 0.95, 0.05),
    "disagreement_harakat": _steps(0.5, 6.0, 0.25),
    "symbol_sd_harakat": _steps(0.4, 2.4, 0.2),
    "errors_need_agreement": [False, True],
    "ghonna_absent": _steps(0.05, 0.5, 0.05),
    # Against the loud level: a release within 1 dB of the vowels' level is as clear as it
    # gets, and 24 dB under them is the next sound's onset at best.
    "release_level_db": _steps(-15.0, -1.0, 1.0),
    "no_release_level_db": _steps(-24.0, -3.0, 1.0),
    "qalqla_present": _steps(0.5, 0.95, 0.05),
    "qalqla_absent": _steps(0.05, 0.5, 0.05),
}


@dataclass(frozen=True)
class Levels:
    """Two thresholds of one piece of evidence (yes at or above `present`, no at or below
    `absent`), searched together: one at a time, the band between them cannot move past the
    other's current value (with a release level of -12 dB and no-release at -12, raising either
    alone is refused or changes nothing, while both to -5 gain recall)."""

    present: str
    absent: str


# The coordinates after the tolerances, in the order they are searched.
COORDINATES: tuple[str | Levels, ...] = (
    "ghunnah_long_slack_harakat", Levels("letter_sure_phases", "letter_dismiss_phases"),
    Levels("letter_dismiss_llr", "letter_uncertain_llr"), "letter_min_confidence",
    "symbol_sd_harakat", "disagreement_harakat",
    "errors_need_agreement", "uncertain_margin_harakat", "min_error_confidence", "ghonna_absent",
    Levels("release_level_db", "no_release_level_db"), Levels("qalqla_present", "qalqla_absent"),
)
@dataclass(frozen=True)
class LetterThreshold:
    """One letter's own minimum confidence (letter_min_confidence_by_letter; "" an added sound)."""

    letter: str


Coordinate = str | tuple[str, ...] | Levels | LetterThreshold
MADD_RULES = tuple(r for r in LENGTH_RULES if r.startswith("MADD_"))
GHUNNAH_RULES = tuple(r for r in LENGTH_RULES if not r.startswith("MADD_"))


# ---------------------------------------------------------------- replaying a verdict


def _letter_verdict(row: Mapping[str, Any]) -> str | None:
    """A letter or haraka finding's verdict before any letter threshold (None: not known)."""
    if row["verdict"] != UNCERTAIN:
        return str(row["verdict"])
    # Made UNCERTAIN by a threshold: the kind of edit is in the rule name ("normal replace ...").
    words = str(row.get("rule_name", "")).split()
    edit = words[1] if len(words) > 1 else ""
    return {"insert": "VERDICT_EXTRA", "delete": "VERDICT_MISSING", "replace": "VERDICT_WRONG"}.get(edit)


def _llr(row: Mapping[str, Any]) -> float | None:
    """The aligner's llr on a letter finding's expected sounds, from the dump (`aligned`: per
    phoneme [llr, gop, competitor]); None for an added sound or a run without it."""
    if not row.get("expected_phonemes"):
        return None
    return expected_llr([float(a[0]) for a in row.get("aligned") or []])


def _expected_madd(row: Mapping[str, Any]) -> int | None:
    match = re.match(r"(\d+) harakat", str(row.get("expected", {}).get("text", "")))
    return int(match.group(1)) if match else None


def _duration(measured: Mapping[str, Any]) -> Length | None:
    value, sd = measured.get("durationHarakat"), measured.get("durationSd")
    return Length(float(value), float(sd)) if value is not None and sd is not None else None


def replay(row: Mapping[str, Any], cal: Calibration) -> str:
    """The verdict the tajweed stage would give this finding under `cal`, from the finding's own
    numbers; the recorded verdict where they do not decide it (another rule, a number missing)."""
    source = row.get("source") or ("explain_error" if row["rule"] in LETTER_RULES else "")
    recorded = str(row["verdict"])
    measured: Mapping[str, Any] = row.get("measured") or {}
    if source == "explain_error":
        base = _letter_verdict(row)
        if base is None:
            return recorded
        heard, phases = measured.get("phasesHeard"), measured.get("phases")
        letter = letter_of(str(row.get("expected_phonemes", "")))
        heard_in, of = (int(heard), int(phases)) if heard is not None and phases else (None, 0)
        doubt = letter_doubt(cal, letter, float(row["confidence"]), _llr(row), heard_in, of)
        if doubt == DISMISSED:
            return "VERDICT_CORRECT"  # no finding
        return base if doubt is None else UNCERTAIN
    rule = str(row["rule"]).removeprefix("RULE_")
    if source == "madd":
        expected = _expected_madd(row)
        duration = _duration(measured)
        if expected is None or ("durationHarakat" in measured and duration is None):
            return recorded
        symbols = measured.get("symbolCount")
        permitted = tuple(row.get("expected", {}).get("harakat") or (expected,))
        judgement = judge_length(
            duration, Length(float(symbols), cal.symbol_sd_harakat) if symbols is not None else None,
            expected=expected, permitted=permitted, policy=LengthPolicy.of(cal, cal.tolerance(rule)))
        return recorded if judgement is None else f"VERDICT_{judgement.verdict.value}"
    if source == "ghunnah":
        duration = _duration(measured)
        if "durationHarakat" in measured and duration is None:
            return recorded
        policy = ghunnah.length_policy(cal, rule)
        if "izhar" in str(row.get("message_en", "")):
            held = izhar_judgement(duration, cal.ghunnah_harakat, policy)
            return "VERDICT_WRONG" if held is None else f"VERDICT_{held.verdict.value}"
        symbols = measured.get("symbolCount")
        judgement = judge_length(
            duration, Length(float(symbols), cal.symbol_sd_harakat) if symbols is not None else None,
            expected=cal.ghunnah_harakat, permitted=(cal.ghunnah_harakat,), policy=policy)
        if judgement is None:
            return recorded
        nasal = measured.get("sifaProb")
        nasal_level = level(nasal, cal.ghonna_present, cal.ghonna_absent) if nasal is not None else None
        return f"VERDICT_{with_nasality(judgement, nasal_level, nasal).verdict.value}"
    if source == "qalqalah":
        symbol, sifa, ratio = measured.get("symbolCount"), measured.get("sifaProb"), measured.get("energyRatio")
        if symbol is not None and sifa is None:
            return recorded  # the symbol alone: its probability is not in the finding
        model = (qalqalah.sifa_model(int(symbol), float(sifa), cal) if symbol is not None and sifa is not None
                 else qalqalah._Model(None, None, None, None))
        release_level = 20.0 * math.log10(ratio) if ratio else None
        verdict, _ = qalqalah.judge(release_level, model, cal)
        return f"VERDICT_{verdict.value}"
    return recorded


def replayable(row: Mapping[str, Any]) -> bool:
    source = row.get("source") or ("explain_error" if row["rule"] in LETTER_RULES else "")
    return source in ("explain_error", "madd", "ghunnah", "qalqalah")


# ---------------------------------------------------------------- scoring a calibration


@dataclass(frozen=True)
class Split:
    """The findings of one run, with what scoring them needs."""

    rows: Sequence[Mapping[str, Any]]
    # Per recitation: its kind and its injected (kind, word) mistakes.
    recitations: Mapping[int, tuple[str, tuple[tuple[str, int], ...]]]
    clean_words: int

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]], clean_words: int,
           recitations: Iterable[Mapping[str, Any]] = ()) -> Split:
        table = {int(r["recitation"]): (str(r["kind"]), tuple((str(k), int(w)) for k, w in r["mistakes"]))
                 for r in [*rows, *recitations]}
        return cls(rows, table, clean_words)


def figures(split: Split, cal: Calibration, verdicts: Sequence[str] | None = None) -> dict[str, Any]:
    """Recall per mistake kind, false-alarm lines and words, uncertain findings and the cost."""
    verdicts = verdicts if verdicts is not None else [replay(r, cal) for r in split.rows]
    hits: set[tuple[int, str, int]] = set()
    false_lines = uncertain = not_correct = 0
    false_words: set[tuple[int, int]] = set()
    for row, verdict in zip(split.rows, verdicts, strict=True):
        if verdict not in ("VERDICT_CORRECT", "VERDICT_UNSPECIFIED"):
            not_correct += 1
            uncertain += verdict == UNCERTAIN
        if verdict in NOT_A_PROBLEM:
            continue
        recitation, word = int(row["recitation"]), int(row["word_index"])
        mistakes = split.recitations[recitation][1]
        rule = common_pb2.Rule.Value(str(row["rule"]))
        value = common_pb2.Verdict.Value(verdict)
        for kind, w in mistakes:
            if word in mistake_words(kind, w) and names(kind, rule, value):
                hits.add((recitation, kind, w))
        if all(abs(word - w) > 1 for _, w in mistakes):
            false_lines += 1
            false_words.add((recitation, word))
    totals: dict[str, int] = {}
    found: dict[str, int] = {}
    for recitation, (_, mistakes) in split.recitations.items():
        for kind, w in mistakes:
            totals[kind] = totals.get(kind, 0) + 1
            found[kind] = found.get(kind, 0) + ((recitation, kind, w) in hits)
    missed = sum(totals.values()) - sum(found.values())
    return {
        "recall": {k: round(found[k] / totals[k], 3) for k in sorted(totals)},
        "false_alarm_lines": false_lines,
        "false_alarms_per_100_clean_words": round(100 * len(false_words) / max(1, split.clean_words), 2),
        "uncertain": uncertain,
        "uncertain_share": round(uncertain / not_correct, 3) if not_correct else 0.0,
        "missed": missed,
        "cost": false_lines + UNCERTAIN_COST * uncertain + MISS_COST * missed,
    }


def check_replay(split: Split, cal: Calibration) -> dict[str, int]:
    """How many replayable findings the replay under the run's calibration gives the mesh's verdict."""
    rows = [r for r in split.rows if replayable(r)]
    agree = sum(replay(r, cal) == r["verdict"] for r in rows)
    return {"replayable": len(rows), "agree": agree, "findings": len(split.rows)}


# ---------------------------------------------------------------- the search


def _tolerance_groups(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Each length rule with enough findings alone; the rarer ones of each family together."""
    counts: dict[str, int] = {}
    for r in rows:
        rule = str(r["rule"]).removeprefix("RULE_")
        if rule in LENGTH_RULES and r.get("source") in ("madd", "ghunnah"):
            counts[rule] = counts.get(rule, 0) + 1
    groups: list[tuple[str, ...]] = []
    for family in (MADD_RULES, GHUNNAH_RULES):
        alone = [r for r in family if counts.get(r, 0) >= MIN_RULE_FINDINGS]
        groups += [(r,) for r in alone]
        rest = tuple(r for r in family if r not in alone and counts.get(r, 0))
        if rest:
            groups.append(rest)
    return groups


def _letter_groups(rows: Sequence[Mapping[str, Any]]) -> list[LetterThreshold]:
    """The letters with enough letter findings on the split for a threshold of their own."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.get("source") == "explain_error" and r["verdict"] != "VERDICT_CORRECT":
            letter = letter_of(str(r.get("expected_phonemes", "")))
            counts[letter] = counts.get(letter, 0) + 1
    return [LetterThreshold(k) for k, n in sorted(counts.items()) if n >= MIN_RULE_FINDINGS]


def _with(cal: Calibration, coordinate: Coordinate, value: Any) -> Calibration | None:
    """`cal` with one coordinate set; None where the combination is not a valid calibration."""
    try:
        if isinstance(coordinate, LetterThreshold):
            by_letter = {**cal.letter_min_confidence_by_letter, coordinate.letter: value}
            return replace(cal, letter_min_confidence_by_letter=by_letter)
        if isinstance(coordinate, Levels):
            return replace(cal, **{coordinate.present: value[0], coordinate.absent: value[1]})
        if isinstance(coordinate, tuple):
            return replace(cal, tolerance_harakat={**cal.tolerance_harakat, **{r: value for r in coordinate}})
        return replace(cal, **{coordinate: value})
    except ValueError:
        return None


def _current(cal: Calibration, coordinate: Coordinate) -> Any:
    if isinstance(coordinate, LetterThreshold):
        return cal.letter_threshold(coordinate.letter)
    if isinstance(coordinate, Levels):
        return (getattr(cal, coordinate.present), getattr(cal, coordinate.absent))
    return cal.tolerance(coordinate[0]) if isinstance(coordinate, tuple) else getattr(cal, coordinate)


def _grid(coordinate: Coordinate) -> list[Any]:
    if isinstance(coordinate, LetterThreshold):
        return GRIDS["letter_min_confidence"]
    if isinstance(coordinate, Levels):
        return [(p, a) for p in GRIDS[coordinate.present] for a in GRIDS[coordinate.absent] if a <= p]
    return GRIDS["tolerance"] if isinstance(coordinate, tuple) else GRIDS[coordinate]


def _name(coordinate: Coordinate) -> str:
    if isinstance(coordinate, LetterThreshold):
        return f"letter_min_confidence[{coordinate.letter or 'added'}]"
    if isinstance(coordinate, Levels):
        return f"{coordinate.present}+{coordinate.absent}"
    return "tolerance " + "+".join(coordinate) if isinstance(coordinate, tuple) else coordinate


def fit(split: Split, start: Calibration | None = None,
        log: Callable[[str], None] = lambda _: None) -> tuple[Calibration, dict[str, Any]]:
    """The calibration minimising the cost under the recall floors (see the module), and its figures."""
    start = start or Calibration()
    before = figures(split, start)
    # The floors come from the most each kind could be found in this run: every letter error
    # the run recorded (heard by at least the dismissal share of the phases) counted sure.
    reach = figures(split, replace(start, letter_sure_phases=start.letter_dismiss_phases))
    floors = {k: min(RECALL_FLOOR, v) for k, v in reach["recall"].items()}
    coordinates: list[Coordinate] = [*_tolerance_groups(split.rows), *COORDINATES, *_letter_groups(split.rows)]
    cal = start
    chosen: dict[str, Any] = {}
    for n in range(PASSES):
        changed = False
        for coordinate in coordinates:
            grid = _grid(coordinate)
            current = _current(cal, coordinate)
            costs: list[tuple[float, Any]] = []
            for value in grid:
                candidate = _with(cal, coordinate, value)
                if candidate is None:
                    continue
                result = figures(split, candidate)
                if any(result["recall"].get(k, 0.0) < floor for k, floor in floors.items()):
                    continue
                costs.append((result["cost"], value))
            if costs:
                lowest = min(c for c, _ in costs)
                tied = [v for c, v in costs if c == lowest]
                # On a tie the current value stays; else the middle of the tied values (the widest
                # margin either side of the choice).
                value = current if current in tied else tied[len(tied) // 2]
                if value != current:
                    cal = _with(cal, coordinate, value) or cal
                    changed = True
            chosen[_name(coordinate)] = _current(cal, coordinate)
        log(f"pass {n + 1}: {figures(split, cal)}")
        if not changed:
            break
    after = figures(split, cal)
    report = {"objective": f"false-alarm lines + {UNCERTAIN_COST} x uncertain findings + {MISS_COST} x mistakes "
                           f"missed, every kind's recall >= min({RECALL_FLOOR}, its recall under the defaults)",
              "floors": floors, "chosen": chosen, "defaults": before, "fitted": after}
    return cal, report


# ---------------------------------------------------------------- the letter threshold alone


def letter_figures(rows: Sequence[dict[str, Any]], clean_words: int, threshold: float) -> dict[str, Any]:
    """Recall per letter-level kind and letter false alarms per 100 clean words at `threshold`."""
    kept = [r for r in rows if r["rule"] in LETTER_RULES and r["verdict"] not in NOT_A_PROBLEM
            and r["confidence"] >= threshold]
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
    """The letter threshold the fit chooses on letter findings alone, with the curve over GRID."""
    split = Split.of(rows, clean_words)
    cal, _ = fit(split, replace(Calibration(), letter_min_confidence=0.0))
    return cal.letter_min_confidence, [letter_figures(list(rows), clean_words, t) for t in GRID]


# ---------------------------------------------------------------- the command


def load(findings: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in findings.read_text(encoding="utf-8").splitlines() if line]
    beside = recitations_path(findings)
    recitations = ([json.loads(line) for line in beside.read_text(encoding="utf-8").splitlines() if line]
                   if beside.exists() else [])
    return rows, recitations


def calibrate(rows: list[dict[str, Any]], recitations: list[dict[str, Any]], clean_words: int, note: str,
              log: Callable[[str], None] = print) -> Calibration:
    split = Split.of(rows, clean_words, recitations)
    check = check_replay(split, Calibration())
    log(f"replay agrees with the mesh on {check['agree']} of {check['replayable']} replayable findings "
        f"({check['findings']} in all)")
    if check["agree"] < 0.99 * check["replayable"]:
        raise SystemExit("the replay does not reproduce the run's verdicts: was it made without a calibration?")
    cal, report = fit(split, log=log)
    report["replay"] = check
    surahs = tuple(CALIBRATION_SURAHS)
    before, after = report["defaults"], report["fitted"]
    summary = (f"{note}: false alarms {before['false_alarms_per_100_clean_words']} -> "
               f"{after['false_alarms_per_100_clean_words']} per 100 clean words, uncertain share "
               f"{before['uncertain_share']} -> {after['uncertain_share']}, recall {after['recall']} "
               f"(under the defaults {before['recall']}); thresholds not replayable from a finding keep their "
               "documented defaults (bench/calibrate.py)")
    return replace(cal, fitted_on_surahs=surahs, note=summary, fit=report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate")
    parser.add_argument("--checkpoint", type=Path, default=Path("services/asr/demo_model"))
    parser.add_argument("--trials", type=int, default=20, help="recitations per mistake kind")
    parser.add_argument("--clean-trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=80)
    parser.add_argument("--findings", type=Path,
                        help="fit on this run's findings (made without a calibration) instead of running the mesh")
    parser.add_argument("--keep-findings", type=Path, help="keep the mesh run's findings here")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    args = parser.parse_args(argv)
    if args.findings is not None:
        rows, recitations = load(args.findings)
        clean_words = sum(int(r["clean_words"]) for r in recitations)
        note = (f"bench/calibrate.py --findings (a run without a calibration, seed {args.seed}): "
                f"{len(recitations)} recitations of surahs 80-89")
    else:
        with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
            bare = Path(tmp) / "checkpoint"
            shutil.copytree(args.checkpoint, bare, ignore=shutil.ignore_patterns("calibration.json"))
            dump = args.keep_findings or Path(tmp) / "findings.jsonl"
            run = mesh_figures(str(bare), args.trials, args.clean_trials, args.seed, surahs=CALIBRATION_SURAHS,
                               findings_out=dump, log=lambda m: print(m[:200], flush=True))
            rows, recitations = load(dump)
        clean_words = int(run["all"]["clean_words"])
        note = f"bench/calibrate.py, seed {args.seed}, {run['all']['recitations']} recitations of surahs 80-89"
    calibration = calibrate(rows, recitations, clean_words, note)
    print(json.dumps({"chosen": calibration.fit["chosen"], "defaults": calibration.fit["defaults"],
                      "fitted": calibration.fit["fitted"]}, indent=1))
    if not args.dry_run:
        path = calibration.save(Calibration.beside(args.checkpoint))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
