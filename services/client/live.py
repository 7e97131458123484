"""`muaalem live FILE [--surah S --ayah A] [--realtime]`: a recording streamed through AssessLive,
events printed as they arrive, then the final report. Without --surah and --ayah the gateway finds
the passage from the first words (target.locate) and follows the reciter wherever they go."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.client.options import add_connection_options, build_request, connect, parse_moshaf, parse_words

CHUNK_S = 0.1


def _pcm(path: Path) -> tuple[bytes, int, int]:
    """The file as s16le at its own rate and channel count (decoded here, streamed as raw PCM)."""
    import numpy as np
    import soundfile as sf

    try:
        samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except Exception:
        from services.common.audio import decode_bytes

        decoded = decode_bytes(path.read_bytes(), name_hint=path.name, max_duration_s=3600)
        pcm = (np.clip(decoded.samples, -1, 1) * 32767).astype("<i2")
        return pcm.tobytes(), 16000, 1
    return np.ascontiguousarray(samples.astype("<i2")).tobytes(), int(rate), int(samples.shape[1])


def describe(event: Any) -> str:
    """One line per event, for a terminal."""
    from services.common.pb import gateway_pb2

    kind = event.WhichOneof("kind")
    clock = f"[{event.audio_s:6.1f}s]"
    degraded = f"  (degraded: {', '.join(event.degraded)})" if event.degraded else ""
    if kind == "started":
        started = event.started
        if started.target.WhichOneof("kind") == "locate":
            return f"{clock} session {started.session_id}: finding the passage from the first words"
        return f"{clock} session {started.session_id}: {len(started.words)} words: {started.uthmani}"
    if kind == "segment":
        span = event.segment.time_span
        how = "pause" if event.segment.closed_by_pause else "cut"
        return f"{clock} segment {event.segment.index}: {span.start_s:.2f}-{span.end_s:.2f} s ({how})"
    if kind == "words":
        marks = {
            gateway_pb2.WORD_VERDICT_CORRECT: "✓",
            gateway_pb2.WORD_VERDICT_MISTAKE: "✗",
            gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE: "~",
            gateway_pb2.WORD_VERDICT_NOT_ASSESSED: "?",
        }
        words = "  ".join(f"{marks.get(w.verdict, '?')}{w.uthmani}" for w in event.words.words)
        label = "revised" if event.words.revised else f"after {event.words.delay_ms:.0f} ms"
        return f"{clock} words ({label}): {words}{degraded}"
    if kind == "position":
        return f"{clock} next word {event.position.next_word} ({event.position.reason})"
    if kind == "off_target":
        seen = event.off_target.likely_recited
        where = f"{seen[0].surah}:{seen[0].ayah} {seen[0].uthmani}" if seen else "nothing known"
        return f"{clock} off target: sounded like {where}"
    if kind == "located":
        return f"{clock} {_located(event.located)}"
    if kind == "prelude":
        return f"{clock} {event.prelude.kind} recognised"
    if kind == "warning":
        return f"{clock} warning {event.warning.code}: {event.warning.message}"
    if kind == "final":
        s = event.final.scores
        return (
            f"{clock} final: overall {s.overall:.0f}, accuracy {s.accuracy:.0f}, tajweed {s.tajweed:.0f}, "
            f"confidence {s.confidence:.0f}"
        )
    return f"{clock} {kind}"


def _located(event: Any) -> str:
    """A locate session's answer: where the reciter is, and whether the search is sure yet."""
    from services.client.located import place

    found = event.located
    if not event.HasField("target"):
        others = [place(c) for c in found.candidates]
        maybe = " or ".join([place(found.passage), *others][:4])
        return f"locating: {maybe}? (not sure yet, {event.words_heard} words heard)"
    if event.extended:
        return f"following on: {len(event.words)} words from {place(found.passage)}"
    how = f"moved (section {event.section}) to" if event.relocated else "located"
    sure = "sure" if found.sure else "NOT SURE"
    words = event.uthmani.split()
    opening = " ".join(words[:4]) + (" …" if len(words) > 4 else "")
    return (
        f"{how} {place(found.passage)} ({sure}, score {found.passage.similarity:.2f}, margin {found.margin:.2f}) "
        f"after {event.words_heard} words: {opening}"
    )


def _live(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from services.client.report import render
    from services.client.retry import call_with_retries, policy_from
    from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc

    path = Path(args.file)
    try:
        pcm, rate, channels = _pcm(path)
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    from services.common.errors import InvalidArgument

    try:
        template = build_request(
            b"",
            surah=args.surah,
            ayah=args.ayah,
            words=args.words,
            last_ayah=args.last_ayah,
            moshaf=parse_moshaf(args.moshaf),
            run_rules_on_mismatch=args.run_rules_on_mismatch,
        )
    except (InvalidArgument, argparse.ArgumentTypeError) as exc:
        print(f"muaalem live: {exc}", file=sys.stderr)
        return 2
    config = gateway_pb2.LiveConfig(
        target=template.target,
        options=template.options,
        pcm=common_pb2.RawPcm(sample_rate_hz=rate, channels=channels, encoding=common_pb2.PCM_ENCODING_S16LE),
    )
    if template.HasField("moshaf"):
        config.moshaf.CopyFrom(template.moshaf)
    frame = 2 * channels
    step = max(frame, int(rate * CHUNK_S) * frame)
    bytes_per_s = rate * frame

    # Set at the `draining` warning (or the final): the gateway takes no more audio, and a write
    # that meets the ended call would turn its status into INTERNAL; half-close instead.
    stop_sending = threading.Event()

    def requests() -> Iterator[Any]:
        yield gateway_pb2.AssessLiveRequest(config=config)
        started = time.perf_counter()
        for offset in range(0, len(pcm), step):
            if stop_sending.is_set():
                return
            if args.realtime:
                time.sleep(max(0.0, started + offset / bytes_per_s - time.perf_counter()))
            yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + step])

    from services.common.config import ConfigError

    try:
        channel, metadata = connect(args)
    except (ConfigError, ValueError) as exc:
        print(f"muaalem live: {exc}", file=sys.stderr)
        return 2
    final = None
    events = 0

    def session() -> None:
        nonlocal final, events
        for event in stub.AssessLive(requests(), timeout=args.timeout, metadata=metadata):
            events += 1
            if args.json:
                print(json.dumps(json_format.MessageToDict(event), ensure_ascii=False), flush=True)
            else:
                print(describe(event), flush=True)
            kind = event.WhichOneof("kind")
            if kind == "final" or (kind == "warning" and event.warning.code == "draining"):
                stop_sending.set()
            if kind == "final":
                final = event.final

    with channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        try:
            # A session refused before its first event (a limit, a gateway shutting down) starts
            # over after the hinted delay; one that has printed events is not replayed.
            call_with_retries(session, what="live session", policy=policy_from(args), may_retry=lambda: events == 0)
        except grpc.RpcError as exc:
            print(f"live session ended: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if final is not None and not args.json:
        # A session that moved to another passage: each earlier passage's report, then the last.
        for section in final.sections:
            render(section)
        render(final)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    live = subparsers.add_parser("live", help="stream a recording through a live session, printing events")
    live.add_argument("file", help="audio file (wav, flac, ogg, mp3...)")
    live.add_argument("--surah", type=int, help="with --ayah: the passage recited; neither: the gateway finds it")
    live.add_argument("--ayah", type=int)
    live.add_argument("--words", type=parse_words, help="FROM:COUNT imlaey words from --ayah (may run on)")
    live.add_argument("--last-ayah", type=int, help="--ayah..--last-ayah of the surah")
    live.add_argument("--moshaf", action="append", default=[], metavar="NAME=VALUE")
    live.add_argument("--run-rules-on-mismatch", action="store_true")
    live.add_argument("--realtime", action="store_true", help="send at real-time pace (default: as fast as taken)")
    live.add_argument("--json", action="store_true", help="print each event's proto3 JSON on a line")
    add_connection_options(live)
    live.add_argument("--timeout", type=float, default=3600.0)
    live.set_defaults(handler=_live)
