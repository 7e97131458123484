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
    """--words: the HTTP API's grammar (services.gateway.parsing), as an argparse type."""
    from services.common.errors import InvalidArgument
    from services.gateway import parsing

    try:
        return parsing.parse_words(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def parse_moshaf(pairs: list[str]) -> dict[str, Any]:
    """Repeated --moshaf NAME=VALUE, typed by the MoshafAttributes field (as the HTTP query is)."""
    from services.common.errors import InvalidArgument
    from services.gateway import parsing

    try:
        return parsing.moshaf_values(parsing.name_value_pairs(pairs))
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(f"--moshaf: {exc.message}") from exc


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
    from services.gateway.parsing import build_target

    request = gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(content=audio, name_hint=name_hint),
        target=build_target(surah, ayah, words=words, last_ayah=last_ayah),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=run_rules_on_mismatch, include_details=include_details),
    )
    if moshaf:
        try:
            request.moshaf.CopyFrom(common_pb2.MoshafAttributes(**moshaf))
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"--moshaf: {exc}") from exc
    return request


def _assess(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from services.common.config import ConfigError
    from services.common.errors import InvalidArgument
    from services.common.pb import gateway_pb2_grpc
    from services.gateway import client
    from services.gateway.report import render

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
        tls = client.ClientTls.resolve(
            ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key, server_name=args.tls_server_name, enabled=args.tls
        )
        channel = client.open_channel(args.address, tls)
    except (InvalidArgument, argparse.ArgumentTypeError, ConfigError, ValueError) as exc:
        print(f"muaalem assess: {exc}", file=sys.stderr)
        return 2
    key = client.api_key(args.api_key, args.address, os.environ)
    metadata = [("authorization", f"Bearer {key}")] if key else []
    with channel:
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


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """--address, --api-key and TLS: how any command that calls the gateway reaches it."""
    parser.add_argument("--address", default=os.environ.get("MUAALEM_GATEWAY_ADDRESS", DEFAULT_ADDRESS))
    parser.add_argument(
        "--api-key",
        default="",
        help="defaults to $MUAALEM_API_KEY; on a loopback address, to the dev key `make serve` wrote",
    )
    tls = parser.add_argument_group("TLS (each defaults to its MUAALEM_TLS_* variable)")
    tls.add_argument("--tls-ca", default="", help="PEM CA bundle that verifies the gateway (MUAALEM_TLS_CA)")
    tls.add_argument("--tls-cert", default="", help="PEM client certificate, for mTLS (MUAALEM_TLS_CERT)")
    tls.add_argument("--tls-key", default="", help="PEM private key of --tls-cert (MUAALEM_TLS_KEY)")
    tls.add_argument(
        "--tls-server-name", default="", help="name expected in the gateway's certificate (MUAALEM_TLS_SERVER_NAME)"
    )
    tls.add_argument("--tls", action="store_true", help="TLS verified by the system's CA roots (no --tls-ca)")


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
    assess.add_argument("--timeout", type=float, default=120.0)
    add_connection_options(assess)
    assess.add_argument(
        "--compare-to", metavar="RECITER", help="compare with a registered reference recitation ('' for the default)"
    )
    assess.set_defaults(handler=_assess)

    keys = subparsers.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="make a key and the hashed line for the keys file")
    new.add_argument("name")
    new.set_defaults(handler=_new_key)
