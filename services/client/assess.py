"""`muaalem assess FILE`: a learner's report from the command line, through the gateway's Assess
(or, for a recording too long for one message, its streaming upload)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.client.options import add_connection_options, build_request, connect, parse_moshaf, parse_words

STREAM_CHUNK_BYTES = 1 << 20


def over_unary_limit(exc: Any) -> bool:
    """Whether a refused Assess would pass as the streaming upload (too long or too big)."""
    import grpc

    code, details = exc.code(), exc.details() or ""
    return (code == grpc.StatusCode.INVALID_ARGUMENT and "streaming upload" in details) or (
        code == grpc.StatusCode.RESOURCE_EXHAUSTED and "message" in details.lower()
    )


def assess_streamed(stub: Any, request: Any, *, timeout: float, metadata: list[tuple[str, str]]) -> Any:
    """AssessStream: the request without its audio, then the file in 1 MiB chunks."""
    from services.common.pb import gateway_pb2

    content = request.audio.content
    header = gateway_pb2.AssessRequest()
    header.CopyFrom(request)
    header.audio.content = b""

    def parts() -> Iterator[Any]:
        yield gateway_pb2.AssessStreamRequest(header=header)
        for offset in range(0, len(content), STREAM_CHUNK_BYTES):
            yield gateway_pb2.AssessStreamRequest(chunk=content[offset : offset + STREAM_CHUNK_BYTES])

    return stub.AssessStream(parts(), timeout=timeout, metadata=metadata)


def _assess(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from services.client.report import render
    from services.client.retry import call_with_retries, policy_from
    from services.common.config import ConfigError
    from services.common.errors import InvalidArgument
    from services.common.pb import gateway_pb2_grpc

    path = Path(args.file)
    try:
        audio = path.read_bytes()
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
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
        if args.compare_to is not None:
            request.compare_to = args.compare_to
        channel, metadata = connect(args)
    except (InvalidArgument, argparse.ArgumentTypeError, ConfigError, ValueError) as exc:
        print(f"muaalem assess: {exc}", file=sys.stderr)
        return 2
    policy = policy_from(args)
    with channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        try:
            try:
                reply = call_with_retries(
                    lambda: stub.Assess(request, timeout=args.timeout, metadata=metadata), what="assess", policy=policy
                )
            except grpc.RpcError as exc:
                # Too long or too big for one message: the same request as a streaming upload.
                if not over_unary_limit(exc):
                    raise
                reply = call_with_retries(
                    lambda: assess_streamed(stub, request, timeout=args.timeout, metadata=metadata),
                    what="assess (streamed)",
                    policy=policy,
                )
        except grpc.RpcError as exc:
            print(f"assessment failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(json_format.MessageToDict(reply.assessment), ensure_ascii=False, indent=2))
    else:
        render(reply.assessment)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    assess = subparsers.add_parser("assess", help="assess a recitation through the gateway and print a report")
    assess.add_argument("file", help="audio file (wav, flac, ogg, mp3, m4a...)")
    assess.add_argument("--surah", type=int, help="with --ayah: the passage; neither: find it in the recitation")
    assess.add_argument("--ayah", type=int)
    assess.add_argument("--words", type=parse_words, help="FROM:COUNT imlaey words from --ayah (may run on)")
    assess.add_argument("--last-ayah", type=int, help="assess --ayah..--last-ayah of the surah")
    assess.add_argument("--moshaf", action="append", default=[], metavar="NAME=VALUE", help="e.g. madd_monfasel_len=2")
    assess.add_argument(
        "--run-rules-on-mismatch", action="store_true", help="judge the rules even on a content mismatch"
    )
    assess.add_argument("--details", action="store_true", help="include reference, decode and alignment (with --json)")
    assess.add_argument("--json", action="store_true", help="print the proto3 JSON of the assessment")
    assess.add_argument("--timeout", type=float, default=120.0)
    add_connection_options(assess)
    assess.add_argument(
        "--compare-to", metavar="RECITER", help="compare with a registered reference recitation ('' for the default)"
    )
    assess.set_defaults(handler=_assess)

