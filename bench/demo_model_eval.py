"""The demo model's figures (docs/demo-model.md): on the evaluation split (surahs 90-114, never
trained on), at tempos 0.25-0.45 s per haraka, the phoneme error rate of the model alone, and
through the whole mesh, per injected mistake kind, the recall (flagged on the right word with
the right kind) and the false alarms per 100 clean words.

    .venv/bin/python -m bench.demo_model_eval --checkpoint services/asr/demo_model --out FIGURES.json
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
TEMPOS = (0.25, 0.45)
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


def matches(kind: str, assessment: gateway_pb2.Assessment, error: gateway_pb2.ErrorItem) -> bool:
    """Whether an error line names the injected mistake's kind."""
    verdict = _verdict(assessment, error)
    if kind == "letter":
        return error.kind == "pronunciation"
    if kind == "haraka":
        return error.kind == "tashkeel"
    if kind in ("drop-word", "extra-word"):
        return error.kind in LETTER_KINDS
    if kind == "short-madd":
        return error.rule in MADD_RULES and verdict in (common_pb2.VERDICT_TOO_SHORT, common_pb2.VERDICT_MISSING)
    if kind == "long-madd":
        return error.rule in MADD_RULES and verdict == common_pb2.VERDICT_TOO_LONG
    if kind == "no-ghunnah":
        return error.rule in GHUNNAH_RULES
    if kind == "no-qalqalah":
        return error.rule == common_pb2.RULE_QALQALAH
    raise ValueError(kind)


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


def eval_ayahs() -> list[tuple[int, int]]:
    from services.gateway.reference import quran

    return [(s, a) for s in EVAL_SURAHS for a in range(1, quran.ayah_count(s) + 1)]


def random_spec(rng: random.Random, surah: int, ayah: int, mistakes: tuple[Mistake, ...] = ()) -> Spec:
    voice = Voice(rng.choice(VOICES), rng.choice((35, 50, 65)), rng.choice((140, 170)))
    return Spec(surah, ayah, tempo=round(rng.uniform(*TEMPOS), 3), voice=voice, mistakes=mistakes)


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
    from services.launcher import Mesh
    from tests.conftest import free_port

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
        return stub.Assess(request, metadata=metadata, timeout=120).assessment

    return assess


def mesh_figures(checkpoint: str, trials: int, clean_trials: int, seed: int, kinds: tuple[str, ...] = KINDS,
                 log: Callable[[str], None] = print, run_rules_on_mismatch: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    ayahs = eval_ayahs()
    results: dict[str, Any] = {}
    alarms = [0, 0]
    with tempfile.TemporaryDirectory(prefix="demo-eval-") as tmp:
        mesh = start_mesh(checkpoint, Path(tmp))
        try:
            assess = assess_with(mesh, run_rules_on_mismatch)
            clean_errors = clean_words = mismatches = 0
            for _ in range(clean_trials):
                recitation = recite(random_spec(rng, *rng.choice(ayahs)))
                assessment = assess(recitation)
                mismatches += assessment.content.status != gateway_pb2.CONTENT_STATUS_MATCH
                wrong, words = false_alarm_words(assessment, [])
                clean_errors += wrong
                clean_words += words
            results["clean"] = {"recitations": clean_trials, "content_not_match": mismatches,
                                "words": clean_words, "words_flagged": clean_errors,
                                "false_alarms_per_100_words": round(100 * clean_errors / max(1, clean_words), 2)}
            alarms = [clean_errors, clean_words]
            log(f"clean: {results['clean']}")
            for kind in kinds:
                hits = right_word = done = mismatches = 0
                attempts = 0
                while done < trials and attempts < trials * 20:
                    attempts += 1
                    surah, ayah = rng.choice(ayahs)
                    from services.demo.synth.script import reference_for

                    words = len(reference_for(surah, ayah).words)
                    mistake = Mistake(kind, rng.randrange(words))
                    try:
                        recitation = recite(random_spec(rng, surah, ayah, (mistake,)))
                    except MeshError:
                        continue
                    assessment = assess(recitation)
                    done += 1
                    mismatches += assessment.content.status != gateway_pb2.CONTENT_STATUS_MATCH
                    hits += flagged(assessment, kind, mistake.word_index)
                    near = mistake_words(kind, mistake.word_index)
                    right_word += any(e.word_index in near for e in assessment.errors)
                    wrong, clean = false_alarm_words(assessment, recitation.truth["mistakes"])
                    alarms[0] += wrong
                    alarms[1] += clean
                results[kind] = {"trials": done, "content_not_match": mismatches,
                                 "recall": round(hits / max(1, done), 3),
                                 "right_word_any_kind": round(right_word / max(1, done), 3)}
                log(f"{kind}: {results[kind]}")
        finally:
            mesh.stop()
    results["false_alarms_per_100_clean_words_all_trials"] = round(100 * alarms[0] / max(1, alarms[1]), 2)
    return results


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
        clean = mesh["clean"]
        lines += [
            "| mistake kind | recitations | recall (right word, right kind) | an error on the right word (any kind) "
            "| content check not `match` |",
            "|---|---|---|---|---|",
        ]
        for kind in KINDS:
            if kind in mesh:
                r = mesh[kind]
                lines.append(f"| {kind} | {r['trials']} | {100 * r['recall']:.0f} % | "
                             f"{100 * r['right_word_any_kind']:.0f} % | {r['content_not_match']} |")
        lines += [
            "",
            f"Clean recitations: {clean['recitations']} ({clean['words']} words), content check not `match` on "
            f"{clean['content_not_match']}; words with an error line: {clean['words_flagged']}, i.e. "
            f"**{clean['false_alarms_per_100_words']} false alarms per 100 clean words**. Over every trial (the "
            f"words away from the injected mistake): {mesh['false_alarms_per_100_clean_words_all_trials']} per 100.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_model_eval")
    parser.add_argument("--checkpoint", default="services/asr/demo_model")
    parser.add_argument("--per-trials", type=int, default=60)
    parser.add_argument("--trials", type=int, default=15, help="recitations per mistake kind")
    parser.add_argument("--clean-trials", type=int, default=20)
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
        figures["mesh"] = mesh_figures(args.checkpoint, args.trials, args.clean_trials, args.seed,
                                       log=lambda m: print(m, flush=True),
                                       run_rules_on_mismatch=args.run_rules_on_mismatch)
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
