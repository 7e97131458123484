"""The findings of an assessment as a narrow terminal shows them: each on one or two lines.

Line one: a mark, the word, what kind of finding (the rule), and when; line two: what a teacher
would say (expected, heard, the message). Both lines are cut with an ellipsis rather than wrapped,
so that a finding never spreads over a third line; `--json` carries every field in full."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from services.common.pb import common_pb2, gateway_pb2

# Below this many columns the report's tables wrap their notes a word per line.
WIDE_COLUMNS = 100
INDENT = "    "

_RULE_MARK = {
    common_pb2.VERDICT_CORRECT: ("✓", "green"),
    common_pb2.VERDICT_UNCERTAIN: ("?", "grey50"),
}


def rule_name(rule: int) -> str:
    return common_pb2.Rule.Name(rule).removeprefix("RULE_").replace("_", " ").lower()


def verdict_name(verdict: int) -> str:
    return common_pb2.Verdict.Name(verdict).removeprefix("VERDICT_").replace("_", " ").lower()


def span_text(span: common_pb2.TimeSpan) -> str:
    return f"{span.start_s:5.2f}-{span.end_s:5.2f} s" if span.end_s > 0 else ""


def _line(text: Text) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def error_lines(errors: Sequence[gateway_pb2.ErrorItem], max_rows: int) -> list[Any]:
    if not errors:
        return [Text("no errors found", style="green")]
    out: list[Any] = [Text("errors", style="bold underline")]
    for error in errors[:max_rows]:
        head = Text("✗ ", style="bold red")
        head.append(error.word or "(between words)", style="bold")
        kind = rule_name(error.rule) if error.rule else error.kind
        head.append(f"  {kind}")
        head.append(f"  {span_text(error.time_span).strip()}", style="grey50")
        out.append(_line(head))
        out.append(_line(Text(INDENT + (error.message_en or f"expected {error.expected}, heard {error.heard}"))))
    if len(errors) > max_rows:
        out.append(Text(f"... and {len(errors) - max_rows} more errors (--json shows all)", style="grey50"))
    return out


def _lengths(finding: common_pb2.Finding) -> str:
    """What was expected and what was measured, in words a learner reads: "expected 2 harakat, timed
    1.0" (the timing), "counted 0" (the symbols the model heard) when there is a count."""
    measured = finding.measured
    harakat = "/".join(str(h) for h in finding.expected.harakat)
    parts = [f"expected {harakat} harakat" if harakat else f"expected {finding.expected.text}"]
    if measured.HasField("duration_harakat"):
        parts.append(f"timed {measured.duration_harakat:.1f}")
    if measured.HasField("symbol_count") and harakat:
        parts.append(f"counted {measured.symbol_count:.0f}")
    return ", ".join(parts)


def rule_lines(findings: Sequence[common_pb2.Finding], words: Sequence[Any], max_rows: int) -> list[Any]:
    """One line a rule checked: what was expected, what was measured (the timing, the count)."""
    if not findings:
        return []
    out: list[Any] = [Text("tajweed rules checked", style="bold underline")]
    for finding in findings[:max_rows]:
        mark, style = _RULE_MARK.get(finding.verdict, ("~", "bold dark_orange"))
        word = words[finding.word_index].uthmani if finding.word_index < len(words) else ""
        line = Text(f"{mark} ", style=style)
        line.append(word, style="bold")
        line.append(f"  {finding.rule_name or rule_name(finding.rule)}: {verdict_name(finding.verdict)}")
        line.append(f"  {_lengths(finding)}", style="grey50")
        out.append(_line(line))
    if len(findings) > max_rows:
        out.append(Text(f"... and {len(findings) - max_rows} more rule checks", style="grey50"))
    return out
