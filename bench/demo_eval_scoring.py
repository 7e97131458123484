"""What a learner got from one assessed recitation of known truth, and the tallies over many.

Each error line of an Assessment is one of:
- a hit: on the injected mistake's word (or, for an inserted word, the word after it), naming
  the mistake's kind (bench.demo_model_eval.matches);
- near a mistake: on a word within one of an injected mistake, not naming it (neither a hit nor
  a false alarm: a mistake may disturb its neighbour's decode);
- a false alarm: on a word recited right (more than one word away from every mistake), with its
  cause: the line's kind and rule, and for a rule its verdict ("madd tabeei too short").
A finding whose verdict is `uncertain` is counted apart: it produces no error line, and the
uncertain share is uncertain findings over every finding that is not `correct`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.pb import common_pb2, gateway_pb2

Matcher = Callable[[str, gateway_pb2.Assessment, gateway_pb2.ErrorItem], bool]


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).replace("_", " ").lower()


def cause(assessment: gateway_pb2.Assessment, error: gateway_pb2.ErrorItem) -> str:
    """A false alarm's cause as a table row names it: the rule, and for a rule its verdict."""
    rule = _name(common_pb2.Rule, error.rule, "RULE_") if error.rule else error.kind
    findings = assessment.findings
    if 0 <= error.finding_index < len(findings) and error.kind == "tajweed":
        return f"{rule} {_name(common_pb2.Verdict, findings[error.finding_index].verdict, 'VERDICT_')}"
    return f"{error.kind}: {rule}" if rule != error.kind else rule


@dataclass
class Tally:
    """Counts over the recitations of one cell of a table (a kind, a tempo, a voice, a noise floor)."""

    recitations: int = 0
    mistakes: int = 0
    hits: int = 0
    clean_words: int = 0
    clean_words_flagged: int = 0
    lines: int = 0
    hit_lines: int = 0
    uncertain: int = 0
    not_correct: int = 0
    content_not_match: int = 0
    causes: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        for name in ("recitations", "mistakes", "hits", "clean_words", "clean_words_flagged", "lines", "hit_lines",
                     "uncertain", "not_correct", "content_not_match"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.causes.update(other.causes)

    def figures(self) -> dict[str, Any]:
        return {
            "recitations": self.recitations,
            "recall": round(self.hits / self.mistakes, 3) if self.mistakes else None,
            "precision": round(self.hit_lines / self.lines, 3) if self.lines else None,
            "false_alarms_per_100_clean_words": round(100 * self.clean_words_flagged / max(1, self.clean_words), 2),
            "clean_words": self.clean_words,
            "uncertain_share": round(self.uncertain / self.not_correct, 3) if self.not_correct else 0.0,
            "content_not_match": self.content_not_match,
            "causes": dict(self.causes.most_common()),
        }


def score(
    assessment: gateway_pb2.Assessment,
    mistakes: Iterable[tuple[str, int]],
    matches: Matcher,
    mistake_words: Callable[[str, int], set[int]],
) -> Tally:
    """One recitation's tally; `mistakes` are the injected (kind, word index) pairs."""
    injected = list(mistakes)
    tally = Tally(recitations=1, mistakes=len(injected))
    tally.content_not_match = int(assessment.content.status != gateway_pb2.CONTENT_STATUS_MATCH)
    near: set[int] = set()
    for _, word in injected:
        near |= {word - 1, word, word + 1}
    flagged_clean: set[int] = set()
    for error in assessment.errors:
        tally.lines += 1
        hit = any(error.word_index in mistake_words(kind, word) and matches(kind, assessment, error)
                  for kind, word in injected)
        tally.hit_lines += hit
        if error.word_index not in near:
            flagged_clean.add(error.word_index)
            tally.causes[cause(assessment, error)] += 1
    tally.hits = sum(
        any(e.word_index in mistake_words(kind, word) and matches(kind, assessment, e) for e in assessment.errors)
        for kind, word in injected
    )
    clean = [w.word_index for w in assessment.words if w.word_index not in near]
    tally.clean_words = len(clean)
    tally.clean_words_flagged = sum(1 for w in clean if w in flagged_clean)
    for finding in assessment.findings:
        if finding.verdict in (common_pb2.VERDICT_CORRECT, common_pb2.VERDICT_UNSPECIFIED):
            continue
        tally.not_correct += 1
        tally.uncertain += finding.verdict == common_pb2.VERDICT_UNCERTAIN
    return tally


def table(title: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """A markdown table of Tally.figures(), one row per cell."""
    lines = [f"| {title} | recitations | recall | precision | false alarms per 100 clean words | uncertain share |",
             "|---|---|---|---|---|---|"]

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f} %"

    for name, f in rows.items():
        lines.append(f"| {name} | {f['recitations']} | {percent(f['recall'])} | {percent(f['precision'])} | "
                     f"{f['false_alarms_per_100_clean_words']:.1f} | {percent(f['uncertain_share'])} |")
    return lines
