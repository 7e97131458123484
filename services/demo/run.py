"""`make demo`: start the mesh, recite an ayah of the evaluation split with the synthetic reciter
and a few named mistakes, assess it, print the learner's report, stop.

With no real weights reachable the asr serves the committed demo checkpoint (trained on the
synthetic reciter, never on this ayah's surah), so the report's verdicts are real: the injected
mistakes are listed first, so that a reader can check them against the report."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc

from services.client.options import build_request
from services.client.report import render
from services.common.pb import gateway_pb2_grpc
from services.launcher import ORDER, Mesh, first_start_note

# An ayah of the evaluation split (surahs 90-114 are never trained on) and its mistakes.
SURAH, AYAH = 103, 3
MISTAKES = ("letter:2", "short-madd:1", "drop-word:6")
TEMPO = 0.3


def synthesize() -> tuple[bytes, list[dict[str, object]]]:
    import soundfile

    from services.demo.synth.mistakes import Mistake
    from services.demo.synth.reciter import Spec, recite

    recitation = recite(Spec(SURAH, AYAH, tempo=TEMPO, mistakes=tuple(Mistake.parse(m) for m in MISTAKES)))
    buffer = io.BytesIO()
    soundfile.write(buffer, recitation.samples, recitation.rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue(), list(recitation.truth["mistakes"])


def main(argv: list[str] | None = None) -> int:
    import argparse

    from google.protobuf import json_format
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m services.demo", description="make demo")
    parser.add_argument("--json-out", type=Path, help="also write the assessment's proto3 JSON here")
    args = parser.parse_args(argv)

    console = Console()
    env = dict(os.environ)
    env.setdefault("MUAALEM_ASR_DEV_FALLBACK", "demo")
    # The demo model has no segmenter of its own; the demo's audio is too short to need one.
    env.setdefault("MUAALEM_SEGMENTER_MODEL", "")
    console.print(f"[bold]reciting {SURAH}:{AYAH}[/] with the synthetic reciter (espeak-ng, {TEMPO} s per haraka)...")
    audio, mistakes = synthesize()
    console.print("[bold]injected mistakes[/] (word numbers count from 0):")
    for m in mistakes:
        console.print(f"  - {m['kind']} in word {m['word_index']} ({m['word']}): {m['detail']}")
    with tempfile.TemporaryDirectory(prefix="muaalem-demo-") as logs:
        console.print(f"[bold]starting the mesh[/] ({', '.join(ORDER)}: {len(ORDER)} processes)...")
        started = time.monotonic()
        mesh = Mesh(env=env, log_dir=Path(logs))
        note = first_start_note(mesh.service_env())
        if note:
            console.print(note)
        try:
            mesh.start()
        except (RuntimeError, TimeoutError) as exc:
            console.print(f"[bold red]the mesh did not start:[/] {exc}")
            return 1
        try:
            console.print(f"all {len(ORDER)} services SERVING after {time.monotonic() - started:.1f} s")
            metadata = [("authorization", f"Bearer {mesh.api_key}")] if mesh.api_key else []
            with grpc.insecure_channel(mesh.address("gateway")) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                # The demo knows what was recited: the rules run even if the content check doubts it
                # (the report still shows the content check's verdict).
                request = build_request(audio, surah=SURAH, ayah=AYAH, name_hint=f"synth-{SURAH}-{AYAH}.wav",
                                        run_rules_on_mismatch=True)
                console.print(f"assessing the recitation of {SURAH}:{AYAH}...")
                reply = stub.Assess(request, metadata=metadata, timeout=300)
            version = reply.assessment.model_version
            if version.demo_weights:
                console.print(
                    "[bold black on yellow] NO REAL WEIGHTS REACHABLE: the asr serves the demo checkpoint, trained "
                    "on the project's synthetic reciter (never on this surah). It hears that voice, not people. [/]"
                )
            elif version.dev_weights:
                console.print(
                    "[bold white on red] NO REAL OR DEMO WEIGHTS: running on a random-weight development "
                    "checkpoint. The report below shows the whole mesh working; its verdicts are noise. [/]"
                )
            render(reply.assessment, console)
            if args.json_out is not None:
                args.json_out.write_text(json_format.MessageToJson(reply.assessment, ensure_ascii=False))
        except grpc.RpcError as exc:
            console.print(f"[bold red]assessment failed:[/] {exc.code().name}: {exc.details()}")
            return 1
        finally:
            mesh.stop()
        console.print("mesh stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
