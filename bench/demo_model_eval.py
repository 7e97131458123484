"""The demo model's figures (docs/demo-model.md): on the evaluation split (surahs 90-114, never
trained on, never calibrated on), the phoneme error rate of the model alone, and through the whole
mesh, per injected mistake kind, per tempo (0.22-0.46 s per haraka), per voice and per noise floor
(40, 30 and 20 dB SNR): the recall (flagged on the right word with the right kind), the precision
of the error lines, the false alarms per 100 correctly recited words with their causes, and the
share of findings that say `uncertain` (bench/demo_eval_scoring.py counts them).

    .venv/bin/python -m bench.demo_model_eval --checkpoint services/asr/demo_model --out FIGURES.json

`--split calibration` runs the same on surahs 80-89 (neither trained nor evaluated on), the
split the thresholds are chosen on; `--findings FILE` writes every finding with its truth label
(JSON lines) for that choice.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common.errors import MeshError
from services.common.pb import common_pb2, gateway_pb2
from services.demo.synth.espeak import VOICES, Voice
from services.demo.synth.mistakes import KINDS, Mistake
from services.demo.synth.reciter import Recitation, Spec, recite

EVAL_SURAHS = range(90, 115)
CALIBRATION_SURAHS = range(80, 90)
TEMPOS = (0.22, 0.46)
# The grid each mesh recitation draws from: every cell is reported apart.
TEMPO_GRID = (0.22, 0.3, 0.38, 0.46)
NOISE_GRID = (40.0, 30.0, 20.0)
LETTER_KINDS = {"pronunciation", "tashkeel"}
MADD_RULES = {
    common_pb2.RULE_MADD_TABEEI, common_pb2.RULE_MADD_MUTTASIL, common_pb2.RULE_MADD_MUNFASIL,
    common_pb2.RULE_MADD_LAZIM, common_pb2.RULE_MADD_ARID, common_pb2.RULE_MADD_LEEN,
    common_pb2.RULE_MADD_BADAL, common_pb2.RULE_MADD_SILAH, common_pb2.RULE_MADD_IWAD,
}
GHUNNAH_RULES = {common_pb2.RULE_GHUNNAH, common_pb2.RULE_IKHFA, common_pb2.RULE_IDGHAM, common_pb2.RULE_IQLAB,
                 common_pb2.RULE_SHADDA}


def _verdict(assessment: gateway_pb2.Assessment, error: gateway_pb2.ErrorItem) -> int:
    findings = assessment.findings
    return findings[error.finding_index].verdict if 0 <= error.finding_index < len(findings) else 0


def line_kind(rule: int) -> str:
    """An error line's kind for a finding's rule (as gateway/fusion.py names it)."""
    if rule == common_pb2.RULE_PRONUNCIATION:
        return "pronunciation"
    if rule == common_pb2.RULE_TASHKEEL:
        return "tashkeel"
    return "tajweed"


def names(kind: str, rule: int, verdict: int) -> bool:
    """Whether an error line of `rule` with its finding's `verdict` names the injected mistake's kind."""
    line = line_kind(rule)
    if kind == "letter":
        return line == "pronunciation"
    if kind == "haraka":
        return line == "tashkeel"
    if kind in ("drop-word", "extra-word"):
        return line in LETTER_KINDS
    if kind == "short-madd":
        return rule in MADD_RULES and verdict in (common_pb2.VERDICT_TOO_SHORT, common_pb2.VERDICT_MISSING)
    if kind == "long-madd":
        return rule in MADD_RULES and verdict == common_pb2.VERDICT_TOO_LONG
    if kind == "no-ghunnah":
        return rule in GHUNNAH_RULES
    if kind == "no-qalqalah":
        return rule == common_pb2.RULE_QALQALAH
    raise ValueError(kind)


def matches(kind: str, assessment: gateway_pb2.Assessment, error: gateway_pb2.ErrorItem) -> bool:
    """Whether an error line names the injected mistake's kind."""
    return names(kind, error.rule, _verdict(assessment, error))


def mistake_words(kind: str, word: int) -> set[int]:
    """Words where the flag for a mistake in `word` may land: an inserted word sits between two."""
    return {word, word + 1} if kind == "extra-word" else {word}


def flagged(assessment: gateway_pb2.Assessment, kind: str, word: int) -> bool:
    return any(e.word_index in mistake_words(kind, word) and matches(kind, assessment, e) for e in assessment.errors)


def false_alarm_words(assessment: gateway_pb2.Assessment, mistakes: list[dict[str, Any]]) -> tuple[int, int]:
    """(clean words with an error line, clean words): words away from every injected mistake."""
    near: set[int] = set()
    for m in mistakes:
        w = int(m["word_index"])
        near |= {w - 1, w, w + 1}
    clean = [w.word_index for w in assessment.words if w.word_index not in near]
    wrong = {e.word_index for e in assessment.errors}
    return sum(1 for w in clean if w in wrong), len(clean)


def eval_ayahs(surahs: range = EVAL_SURAHS) -> list[tuple[int, int]]:
    from services.gateway.reference import quran

    return [(s, a) for s in surahs for a in range(1, quran.ayah_count(s) + 1)]


def random_spec(rng: random.Random, surah: int, ayah: int, mistakes: tuple[Mistake, ...] = ()) -> Spec:
    voice = Voice(rng.choice(VOICES), rng.choice((35, 50, 65)), rng.choice((140, 170)))
    return Spec(surah, ayah, tempo=round(rng.uniform(*TEMPOS), 3), voice=voice, mistakes=mistakes)


def grid_spec(rng: random.Random, surah: int, ayah: int, mistakes: tuple[Mistake, ...] = ()) -> Spec:
    """A recitation at one cell of the grid: a tempo, a voice and a noise floor of the tables."""
    voice = Voice(rng.choice(VOICES), rng.choice((35, 50, 65)), rng.choice((140, 170)))
    return Spec(surah, ayah, tempo=rng.choice(TEMPO_GRID), voice=voice, mistakes=mistakes,
                snr_db=rng.choice(NOISE_GRID))


def wav_bytes(recitation: Recitation) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, recitation.samples, recitation.rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


# ---------------------------------------------------------------- the model alone


def phoneme_error_rate(checkpoint: str, trials: int, seed: int) -> dict[str, Any]:
    import torch

    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.features import FeatureExtractor
    from services.asr.vocab import Vocabulary
    from services.asr.weights import load_multilevel_ctc

    files = resolve_checkpoint(checkpoint)
    model = load_multilevel_ctc(files)
    tokens = Vocabulary.from_checkpoint(files).tokens["phonemes"]
    extractor = FeatureExtractor(files.preprocessor_config)
    rng = random.Random(seed)
    ayahs = eval_ayahs()
    errors = total = 0
    per_tempo: dict[str, list[int]] = {}
    for _ in range(trials):
        surah, ayah = rng.choice(ayahs)
        recitation = recite(random_spec(rng, surah, ayah))
        features, mask = extractor([recitation.samples])
        with torch.inference_mode():
            best = model(features, mask)["phonemes"][0].argmax(-1).tolist()
        decoded = "".join(tokens[t] for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t))
        distance = _edit_distance(decoded, recitation.phonemes)
        errors += distance
        total += len(recitation.phonemes)
        bucket = per_tempo.setdefault(f"{recitation.truth['tempo_s_per_haraka']:.1f}", [0, 0])
        bucket[0] += distance
        bucket[1] += len(recitation.phonemes)
    return {
        "trials": trials, "phonemes": total, "per": round(errors / max(1, total), 4),
        "per_by_tempo": {k: round(e / max(1, n), 4) for k, (e, n) in sorted(per_tempo.items())},
    }


def precision_agreement(checkpoint: str, trials: int, seed: int) -> dict[str, Any]:
    """How far bfloat16 and int8 decodes are from float32's (phoneme edit distance per phoneme),
    and each one's own PER against the truth, on the same evaluation-split recitations."""
    import torch

    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.features import FeatureExtractor
    from services.asr.vocab import Vocabulary
    from services.asr.weights import load_multilevel_ctc

    files = resolve_checkpoint(checkpoint)
    tokens = Vocabulary.from_checkpoint(files).tokens["phonemes"]
    extractor = FeatureExtractor(files.preprocessor_config)
    models = {p: load_multilevel_ctc(files, "cpu", p) for p in ("float32", "bfloat16", "int8")}
    rng = random.Random(seed + 1)
    ayahs = eval_ayahs()
    counts = {p: [0, 0] for p in models}  # [distance to float32, distance to truth]
    total = 0
    for _ in range(trials):
        recitation = recite(random_spec(rng, *rng.choice(ayahs)))
        features, mask = extractor([recitation.samples])
        decoded: dict[str, str] = {}
        for name, model in models.items():
            with torch.inference_mode():
                best = model(features, mask)["phonemes"][0].argmax(-1).tolist()
            decoded[name] = "".join(tokens[t] for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t))
        for name in models:
            counts[name][0] += _edit_distance(decoded[name], decoded["float32"])
            counts[name][1] += _edit_distance(decoded[name], recitation.phonemes)
        total += len(recitation.phonemes)
    return {name: {"differs_from_float32_per_phoneme": round(a / max(1, total), 4), "per": round(b / max(1, total), 4)}
            for name, (a, b) in counts.items()} | {"trials": trials, "phonemes": total}


def _edit_distance(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


# ---------------------------------------------------------------- the whole mesh


def start_mesh(checkpoint: str, root: Path) -> Any:
    from services.common.ports import free_port
    from services.launcher import Mesh

    env = dict(os.environ)
    env.update({
        "MUAALEM_CACHE_DIR": str(root / "cache"), "MUAALEM_ASR_MODEL": checkpoint,
        "MUAALEM_ASR_DEV_FALLBACK": "", "MUAALEM_SEGMENTER_MODEL": "", "MUAALEM_SHUTDOWN_DELAY_S": "0",
    })
    for name in ("gateway", "asr", "alignment", "tajweed"):
        env[f"MUAALEM_{name.upper()}_PORT"] = str(free_port())
        env[f"MUAALEM_{name.upper()}_METRICS_PORT"] = str(free_port())
    env["MUAALEM_GATEWAY_HTTP_PORT"] = str(free_port())
    mesh = Mesh(env=env, log_dir=root / "logs", start_timeout_s=120)
    mesh.start()
    return mesh


def assess_with(mesh: Any, run_rules_on_mismatch: bool = False) -> Callable[..., gateway_pb2.Assessment]:
    import grpc

    from services.client.options import build_request
    from services.common.pb import gateway_pb2_grpc

    channel = grpc.insecure_channel(mesh.address("gateway"))
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    metadata = [("authorization", f"Bearer {mesh.api_key}")]

    def assess(recitation: Recitation, surah: int | None = None, ayah: int | None = None) -> gateway_pb2.Assessment:
        request = build_request(wav_bytes(recitation), surah=surah or recitation.truth["surah"],
                                ayah=ayah or recitation.truth["ayah"], run_rules_on_mismatch=run_rules_on_mismatch)
        # Rules judged right come back too (no error line, not counted as findings by the
        # scoring), so a calibration can replay every judgement under other thresholds.
        request.options.include_correct = True
        # The reference, decode and alignment too: the findings dump carries the aligner's
        # evidence on each finding's phonemes.
        request.options.include_details = True
        return stub.Assess(request, metadata=metadata, timeout=120).assessment

    return assess


def recitations_path(findings: Path) -> Path:
    """The file beside a findings dump with one line per recitation."""
    return findings.with_name(findings.stem + ".recitations.jsonl")


def mesh_figures(checkpoint: str, trials: int, clean_trials: int, seed: int, kinds: tuple[str, ...] = KINDS,
                 log: Callable[[str], None] = print, run_rules_on_mismatch: bool = False,
                 surahs: range = EVAL_SURAHS, findings_out: Path | None = None) -> dict[str, Any]:
    import grpc

    from bench.demo_eval_scoring import Tally, score
    from services.demo.synth.script import reference_for

    rng = random.Random(seed)
    ayahs = eval_ayahs(surahs)
    by: dict[str, dict[str, Tally]] = {"kind": {}, "tempo": {}, "voice": {}, "noise": {}}
    total = Tally()
    dump = findings_out.open("w", encoding="utf-8") if findings_out is not None else None
    # Beside the findings: one line per recitation (its truth, words, segments and tempo).
    recitations_dump = (recitations_path(findings_out).open("w", encoding="utf-8")
                        if findings_out is not None else None)

    def record(kind: str, recitation: Recitation, assessment: gateway_pb2.Assessment,
               mistakes: list[tuple[str, int]]) -> Tally:
        tally = score(assessment, mistakes, matches, mistake_words)
        spec_voice = recitation.truth.get("voice", {})
        cells = {
            "kind": kind,
            "tempo": f"{recitation.truth['tempo_s_per_haraka']:.2f} s",
            "voice": str(spec_voice.get("name", "?")) if isinstance(spec_voice, dict) else str(spec_voice),
            "noise": f"{recitation.truth.get('snr_db')} dB",
        }
        for table_name, cell in cells.items():
            by[table_name].setdefault(cell, Tally()).add(tally)
        total.add(tally)
        if dump is not None:
            lines = {e.finding_index for e in assessment.errors}
            by_phoneme = {t.phoneme_index: t for t in assessment.alignment.tokens}
            for position, finding in enumerate(assessment.findings):
                # The aligner's evidence on the expected phonemes, so that another way of weighing
                # a letter's evidence can be replayed from the dump.
                aligned = [[round(t.llr, 3), round(t.gop_posterior, 4), t.competitor]
                           for i in range(finding.phoneme_start, finding.phoneme_end)
                           if (t := by_phoneme.get(i)) is not None]
                on_mistake = [k for k, w in mistakes if finding.word_index in mistake_words(k, w)]
                span = finding.time_span if finding.HasField("time_span") else None
                dump.write(json.dumps({"recitation": total.recitations, "kind": kind, "cells": cells,
                                       "word_index": finding.word_index, "words": len(assessment.words),
                                       "mistakes": mistakes, "rule": common_pb2.Rule.Name(finding.rule),
                                       "verdict": common_pb2.Verdict.Name(finding.verdict),
                                       "confidence": finding.confidence,
                                       "measured": json_format.MessageToDict(finding.measured),
                                       "expected": json_format.MessageToDict(finding.expected),
                                       "rule_name": finding.rule_name, "source": finding.source,
                                       "expected_phonemes": finding.expected_phonemes,
                                       "heard_phonemes": finding.heard_phonemes, "message_en": finding.message_en,
                                       "time_span": [span.start_s, span.end_s] if span is not None else None,
                                       "error_line": position in lines, "aligned": aligned,
                                       "on_mistake": on_mistake}, ensure_ascii=False) + "\n")
            if recitations_dump is not None:
                recitations_dump.write(json.dumps({
                    "recitation": total.recitations, "kind": kind, "cells": cells, "mistakes": mistakes,
                    "surah": recitation.truth["surah"], "ayah": recitation.truth["ayah"],
                    "truth_words": recitation.truth["words"], "truth_mistakes": recitation.truth["mistakes"],
                    "truth_groups": [[g["phonemes"], g["start_s"], g["end_s"], g["word_index"]]
                                     for g in recitation.truth["groups"]],
                    "voice": recitation.truth.get("voice"),
                    "duration_s": recitation.truth["duration_s"],
                    "words": [{"index": w.word_index, "verdict": gateway_pb2.WordVerdict.Name(w.verdict),
                               "segment": w.segment_index if w.HasField("segment_index") else None,
                               "time_span": [w.time_span.start_s, w.time_span.end_s]
                               if w.HasField("time_span") else None} for w in assessment.words],
                    "segments": [[s.time_span.start_s, s.time_span.end_s, s.closed_by_pause]
                                 for s in assessment.segments],
                    "tempo": json_format.MessageToDict(assessment.tempo),
                    "clean_words": tally.clean_words,
                }, ensure_ascii=False) + "\n")
        return tally

    from google.protobuf import json_format

    with tempfile.TemporaryDirectory(prefix="demo-eval-") as tmp:
        mesh = start_mesh(checkpoint, Path(tmp))
        try:
            assess = assess_with(mesh, run_rules_on_mismatch)
            for _ in range(clean_trials):
                recitation = recite(grid_spec(rng, *rng.choice(ayahs)))
                record("clean", recitation, assess(recitation), [])
            log(f"clean: {by['kind']['clean'].figures()}")
            for kind in kinds:
                done = attempts = 0
                while done < trials and attempts < trials * 20:
                    attempts += 1
                    surah, ayah = rng.choice(ayahs)
                    mistake = Mistake(kind, rng.randrange(len(reference_for(surah, ayah).words)))
                    try:
                        recitation = recite(grid_spec(rng, surah, ayah, (mistake,)))
                        assessment = assess(recitation)
                    except MeshError:
                        continue
                    except grpc.RpcError as exc:
                        # A one-word ayah with its word dropped is silence: refused, rightly.
                        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                            raise
                        continue
                    record(kind, recitation, assessment, [(kind, mistake.word_index)])
                    done += 1
                log(f"{kind}: {by['kind'][kind].figures()}")
        finally:
            mesh.stop()
            if dump is not None:
                dump.close()
            if recitations_dump is not None:
                recitations_dump.close()
    return {
        "split": f"surahs {surahs.start}-{surahs.stop - 1}",
        "all": total.figures(),
        **{name: {cell: tally.figures() for cell, tally in sorted(cells.items())} for name, cells in by.items()},
    }


def markdown(figures: dict[str, Any]) -> str:
    """The figures as docs/demo-model.md shows them."""
    model = figures["model"]
    lines = [
        f"Phoneme error rate (greedy decode, model alone): **{100 * model['per']:.1f} %** over {model['trials']} "
        f"recitations ({model['phonemes']} phonemes); by tempo: "
        + ", ".join(f"{k} s/haraka {100 * v:.1f} %" for k, v in model["per_by_tempo"].items()) + ".",
        "",
    ]
    if "precision" in figures:
        p = figures["precision"]
        lines += ["| precision | decode differs from float32 (per phoneme) | PER |", "|---|---|---|"]
        for name in ("float32", "bfloat16", "int8"):
            differs = 100 * p[name]["differs_from_float32_per_phoneme"]
            lines.append(f"| {name} | {differs:.1f} % | {100 * p[name]['per']:.1f} % |")
        lines.append("")
    mesh = figures.get("mesh")
    if mesh:
        lines += _mesh_markdown(mesh)
    return "\n".join(lines)


def _mesh_markdown(mesh: dict[str, Any]) -> list[str]:
    from bench.demo_eval_scoring import table

    overall = mesh["all"]
    lines = [f"Split: {mesh['split']}. Over every recitation: **{overall['false_alarms_per_100_clean_words']} false "
             f"alarms per 100 correctly recited words** ({overall['clean_words']} words), error-line precision "
             f"{100 * (overall['precision'] or 0):.0f} %, uncertain share {100 * overall['uncertain_share']:.0f} %.",
             ""]
    lines += table("mistake kind", mesh["kind"])
    for name in ("tempo", "voice", "noise"):
        lines += ["", *table(name, mesh[name])]
    lines += ["", "| false alarm cause (lines on correctly recited words) | lines |", "|---|---|"]
    lines += [f"| {cause} | {count} |" for cause, count in overall["causes"].items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_model_eval")
    parser.add_argument("--checkpoint", default="services/asr/demo_model")
    parser.add_argument("--per-trials", type=int, default=60)
    parser.add_argument("--trials", type=int, default=20, help="recitations per mistake kind")
    parser.add_argument("--clean-trials", type=int, default=40)
    parser.add_argument("--split", choices=("evaluation", "calibration"), default="evaluation",
                        help="surahs 90-114 (the figures) or 80-89 (where thresholds are chosen)")
    parser.add_argument("--findings", type=Path, help="write every finding with its truth label (JSON lines)")
    parser.add_argument("--seed", type=int, default=90)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--precision-trials", type=int, default=20)
    parser.add_argument("--skip-mesh", action="store_true")
    parser.add_argument("--run-rules-on-mismatch", action="store_true",
                        help="judge the rules even when the content check says mismatch (counted apart)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures: dict[str, Any] = {"checkpoint": args.checkpoint, "seed": args.seed, "tempos": TEMPOS,
                               "split": f"surahs {EVAL_SURAHS.start}-{EVAL_SURAHS.stop - 1}"}
    figures["model"] = phoneme_error_rate(args.checkpoint, args.per_trials, args.seed)
    print(json.dumps(figures["model"]), flush=True)
    if args.precision_trials:
        figures["precision"] = precision_agreement(args.checkpoint, args.precision_trials, args.seed)
        print(json.dumps(figures["precision"]), flush=True)
    if not args.skip_mesh:
        surahs = EVAL_SURAHS if args.split == "evaluation" else CALIBRATION_SURAHS
        figures["mesh"] = mesh_figures(args.checkpoint, args.trials, args.clean_trials, args.seed,
                                       log=lambda m: print(m, flush=True),
                                       run_rules_on_mismatch=args.run_rules_on_mismatch, surahs=surahs,
                                       findings_out=args.findings)
        figures["mesh"]["run_rules_on_mismatch"] = args.run_rules_on_mismatch
    figures["wall_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(figures, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    print(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
