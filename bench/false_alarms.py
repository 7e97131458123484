"""Why each false alarm of a run happened, from the findings' own numbers and the recitations' truth.

    .venv/bin/python -m bench.false_alarms F.jsonl [--audio]

F.jsonl is a findings dump of bench.demo_model_eval (`--findings`, with F.recitations.jsonl
beside it). A false alarm is an error line on a word more than one word from every injected
mistake (bench/demo_eval_scoring.py). Each gets the first cause that applies, in this order:

- `follower: last word lost`: the ayah's last word is "not recited" although no pause fell
  inside it, and the line is that word's or the word before's (its sounds decoded as the word
  before's extra sounds: gateway/follow/locate.py matches a partly decoded lengthened word
  letter by letter, and leaving it out costs fewer edits);
- `segment cut inside the word`: the recitation was cut at a "pause" inside the word (the voice
  detector took a quiet held sound for silence), or for an extra sound, inside the next word:
  the stretch on either side judges half a word, and a stretch's end is read as a stop;
- `sound rendered silent` (with --audio): a vowel, madd or nasal of the word lies at the
  recording's noise floor in the synthetic audio (the renderer's defect: the truth says it was
  recited, nobody can hear it);
- then by rule, from the finding's measures: a letter or haraka line by its confidence (the
  model's slip); a madd or ghunnah by which evidence says short or long (timing, decoded
  count, both); an izhar; a stop; a qalqalah by its release and P(moqalqal); a shadda.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.demo_model_eval import recitations_path

NOT_A_PROBLEM = {"VERDICT_CORRECT", "VERDICT_UNCERTAIN", "VERDICT_UNSPECIFIED"}
LETTER_RULES = {"RULE_PRONUNCIATION", "RULE_TASHKEEL"}
# A "pause" less than this inside a word's truth span does not count as cutting it.
EDGE_S = 0.03
VOICED = set("َُِاۦۥ") | set("نمںۿ۾")
# Energy within this of the recording's noise floor (its 5th percentile) is silence.
SILENT_DB = 6.0


def false_alarm(row: Mapping[str, Any]) -> bool:
    return row["verdict"] not in NOT_A_PROBLEM and all(abs(int(row["word_index"]) - w) > 1 for _, w in row["mistakes"])


def cut_inside(recitation: Mapping[str, Any], word: int) -> bool:
    """Whether a gap between two segments of the recitation lies inside the word's truth span."""
    words = recitation["truth_words"]
    if not 0 <= word < len(words) or words[word]["start_s"] is None:
        return False
    start, end = words[word]["start_s"] + EDGE_S, words[word]["end_s"] - EDGE_S
    segments = recitation["segments"]
    return any(start < a[1] and b[0] < end for a, b in itertools.pairwise(segments))


def _not_recited(rows: Sequence[Mapping[str, Any]], word: int) -> bool:
    return any(r["word_index"] == word and r.get("source") == "follower" for r in rows)


def last_word_lost(recitation: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The last word's index when the follower left it "not recited" with no pause inside it."""
    last = len(recitation["truth_words"]) - 1
    if _not_recited(rows, last) and not cut_inside(recitation, last):
        return last
    return None


def silent_words(recitation: Mapping[str, Any]) -> set[int]:
    """Words with a vowel, madd or nasal rendered at the noise floor (re-renders the recitation)."""
    import numpy as np

    from services.demo.synth.espeak import Voice
    from services.demo.synth.mistakes import Mistake
    from services.demo.synth.reciter import Spec, recite
    from services.tajweed.energy import energy_envelope

    voice = recitation["voice"]
    cells = recitation["cells"]
    spec = Spec(int(recitation["surah"]), int(recitation["ayah"]), tempo=float(cells["tempo"].split()[0]),
                voice=Voice(voice["name"], voice["pitch"], voice["rate"]),
                mistakes=tuple(Mistake(str(k), int(w)) for k, w in recitation["mistakes"]),
                snr_db=float(cells["noise"].split()[0]))
    audio = recite(spec)
    db, hop = energy_envelope(audio.samples, audio.rate)
    floor = float(np.percentile(db, 5))
    silent: set[int] = set()
    for phonemes, start, end, word in recitation["truth_groups"]:
        if word < 0 or not VOICED & set(phonemes):
            continue
        frames = db[int(start / hop) : max(int(start / hop) + 1, int(end / hop))]
        if len(frames) and float(np.median(frames)) < floor + SILENT_DB:
            silent.add(int(word))
    return silent


def _by_rule(row: Mapping[str, Any]) -> str:
    rule = str(row["rule"]).removeprefix("RULE_").lower()
    measured = row.get("measured") or {}
    source = row.get("source", "")
    if row["rule"] in LETTER_RULES:
        confidence = float(row["confidence"])
        band = "0.95+" if confidence >= 0.95 else ("0.80-0.95" if confidence >= 0.8 else "under 0.80")
        return f"model slip ({rule}), confidence {band}"
    if source in ("madd", "ghunnah"):
        if "izhar" in str(row.get("message_en", "")):
            held = measured.get("durationHarakat")
            # 2 harakat less the default ghunnah tolerance (0.75): held as long as a ghunnah.
            hold = "held as a ghunnah" if held is not None and float(held) >= 1.25 else "hold short"
            return f"{rule}: hidden letter decoded clear (izhar), {hold}"
        verdict = str(row["verdict"]).removeprefix("VERDICT_").lower().replace("_", " ")
        duration, symbols = measured.get("durationHarakat"), measured.get("symbolCount")
        expected = _expected(row)
        sides = []
        for name, value in (("timing", duration), ("decoded count", symbols)):
            if value is not None and expected is not None and abs(float(value) - expected) > 0.5:
                sides.append(name)
        return f"{rule} {verdict}: " + (" and ".join(sides) if sides else "blend") + " off"
    if source == "waqf":
        return "stop: " + ("a vowel on the last letter" if "vowel" in str(row.get("message_en", "")) else "pause")
    if source == "qalqalah":
        return "qalqalah missing: " + ("no release measured" if "energyRatio" not in measured else "release weak")
    return f"{rule} {str(row['verdict']).removeprefix('VERDICT_').lower()}"


def _expected(row: Mapping[str, Any]) -> float | None:
    if row.get("source") == "ghunnah":
        return 2.0
    text = str((row.get("expected") or {}).get("text", ""))
    head = text.split(" ", maxsplit=1)[0]
    return float(head) if head.replace(".", "", 1).isdigit() else None


def causes(rows: Sequence[Mapping[str, Any]], recitations: Mapping[int, Mapping[str, Any]],
           audio: bool = False) -> Counter[str]:
    table: Counter[str] = Counter()
    by_recitation: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_recitation.setdefault(int(row["recitation"]), []).append(row)
    for number, own in sorted(by_recitation.items()):
        alarms = [r for r in own if false_alarm(r)]
        if not alarms:
            continue
        recitation = recitations[number]
        lost = last_word_lost(recitation, own)
        silent = silent_words(recitation) if audio else set()
        for row in alarms:
            word = int(row["word_index"])
            inserted = str(row.get("rule_name", "")).split(" ")[1:2] == ["insert"]
            if lost is not None and word in (lost, lost - 1):
                cause = "follower: last word lost"
            elif cut_inside(recitation, word) or (inserted and cut_inside(recitation, word + 1)):
                cause = "segment cut inside the word"
            elif word in silent:
                cause = "sound rendered silent"
            else:
                cause = _by_rule(row)
            table[cause] += 1
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.false_alarms")
    parser.add_argument("findings", type=Path)
    parser.add_argument("--audio", action="store_true", help="re-render the recitations to find silent sounds")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.findings.read_text(encoding="utf-8").splitlines() if line]
    recitations = {int(r["recitation"]): r for r in map(
        json.loads, recitations_path(args.findings).read_text(encoding="utf-8").splitlines())}
    table = causes(rows, recitations, audio=args.audio)
    print("| cause of the false alarm | lines |\n|---|---|")
    for cause, count in table.most_common():
        print(f"| {cause} | {count} |")
    print(f"| all | {sum(table.values())} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
