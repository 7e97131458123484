"""`muaalem assess` (a learner's report from the command line) and `muaalem keys` (API keys)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:50051"


def parse_words(text: str) -> tuple[int, int]:
    start, sep, count = text.partition(":")
    if not sep:
        start, sep, count = text.partition("+")
    if not sep or not start.isdigit() or not count.isdigit():
        raise argparse.ArgumentTypeError(f"--words takes FROM:COUNT (0-based imlaey word, count), got {text!r}")
    return int(start), int(count)


def parse_moshaf(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--moshaf takes NAME=VALUE, got {pair!r}")
        values[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return values


def build_request(
    audio: bytes,
    *,
    surah: int,
    ayah: int,
    words: tuple[int, int] | None = None,
    last_ayah: int | None = None,
    moshaf: dict[str, Any] | None = None,
    name_hint: str = "",
    run_rules_on_mismatch: bool = False,
    include_details: bool = False,
) -> Any:
    from services.common.errors import InvalidArgument
    from services.common.pb import common_pb2, gateway_pb2

    request = gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(content=audio, name_hint=name_hint),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=run_rules_on_mismatch, include_details=include_details),
    )
    if words is not None:
        request.target.words.CopyFrom(
            common_pb2.WordRangeTarget(surah=surah, ayah=ayah, start_word=words[0], word_count=words[1])
        )
    elif last_ayah is not None:
        request.target.ayah_range.CopyFrom(
            common_pb2.AyahRangeTarget(surah=surah, first_ayah=ayah, last_ayah=last_ayah)
        )
    else:
        request.target.ayah.CopyFrom(common_pb2.AyahTarget(surah=surah, ayah=ayah))
    if moshaf:
        try:
            request.moshaf.CopyFrom(common_pb2.MoshafAttributes(**moshaf))
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"--moshaf: {exc}") from exc
    return request


def _assess(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from services.common.pb import gateway_pb2_grpc
    from services.gateway.report import render

    path = Path(args.file)
    try:
        audio = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    request = build_request(
        audio,
        surah=args.surah,
        ayah=args.ayah,
        words=args.words,
        last_ayah=args.last_ayah,
        moshaf=parse_moshaf(args.moshaf),
        name_hint=path.name,
        run_rules_on_mismatch=args.run_rules_on_mismatch,
        include_details=args.details,
    )
    key = args.api_key or os.environ.get("MUAALEM_API_KEY", "")
    metadata = [("authorization", f"Bearer {key}")] if key else []
    with grpc.insecure_channel(args.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        try:
            try:
                reply = stub.Assess(request, timeout=args.timeout, metadata=metadata)
            except grpc.RpcError as exc:
                from services.gateway.live.cli import assess_streamed, over_unary_limit

                # Too long or too big for one message: the same request as a streaming upload.
                if not over_unary_limit(exc):
                    raise
                reply = assess_streamed(stub, request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            print(f"assessment failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(json_format.MessageToDict(reply.assessment), ensure_ascii=False, indent=2))
    else:
        render(reply.assessment)
    return 0


def _new_key(args: argparse.Namespace) -> int:
    from services.gateway.auth import hash_key, new_key

    key = new_key()
    print(f"key (give it to the caller, it is not stored): {key}")
    print(f"line for MUAALEM_API_KEYS_FILE: {args.name}:{hash_key(key)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    assess = subparsers.add_parser("assess", help="assess a recitation through the gateway and print a report")
    assess.add_argument("file", help="audio file (wav, flac, ogg, mp3, m4a...)")
    assess.add_argument("--surah", type=int, required=True)
    assess.add_argument("--ayah", type=int, required=True)
    assess.add_argument("--words", type=parse_words, help="FROM:COUNT imlaey words from --ayah (may run on)")
    assess.add_argument("--last-ayah", type=int, help="assess --ayah..--last-ayah of the surah")
    assess.add_argument("--moshaf", action="append", default=[], metavar="NAME=VALUE", help="e.g. madd_monfasel_len=2")
    assess.add_argument(
        "--run-rules-on-mismatch", action="store_true", help="judge the rules even on a content mismatch"
    )
    assess.add_argument("--details", action="store_true", help="include reference, decode and alignment (with --json)")
    assess.add_argument("--json", action="store_true", help="print the proto3 JSON of the assessment")
    assess.add_argument("--address", default=os.environ.get("MUAALEM_GATEWAY_ADDRESS", DEFAULT_ADDRESS))
    assess.add_argument("--api-key", default="", help="defaults to $MUAALEM_API_KEY")
    assess.add_argument("--timeout", type=float, default=120.0)
    assess.set_defaults(handler=_assess)

    keys = subparsers.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="make a key and the hashed line for the keys file")
    new.add_argument("name")
    new.set_defaults(handler=_new_key)
