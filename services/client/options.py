"""What the assess and live commands share: the request they build from the command line (the
HTTP API's grammar, services.common.parsing) and how they reach the gateway."""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Retries of a call the gateway refuses for now with a retry hint (services.client.retry).
DEFAULT_RETRIES = 4


def parse_words(text: str) -> tuple[int, int]:
    """--words: the HTTP API's grammar (services.common.parsing), as an argparse type."""
    from services.common import parsing
    from services.common.errors import InvalidArgument

    try:
        return parsing.parse_words(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def parse_moshaf(pairs: list[str]) -> dict[str, Any]:
    """Repeated --moshaf NAME=VALUE, typed by the MoshafAttributes field (as the HTTP query is)."""
    from services.common import parsing
    from services.common.errors import InvalidArgument

    try:
        return parsing.moshaf_values(parsing.name_value_pairs(pairs))
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(f"--moshaf: {exc.message}") from exc


def build_request(
    audio: bytes,
    *,
    surah: int | None,
    ayah: int | None,
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
        target=target_or_locate(surah, ayah, words=words, last_ayah=last_ayah),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=run_rules_on_mismatch, include_details=include_details),
    )
    if moshaf:
        try:
            request.moshaf.CopyFrom(common_pb2.MoshafAttributes(**moshaf))
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"--moshaf: {exc}") from exc
    return request


def target_or_locate(
    surah: int | None, ayah: int | None, *, words: tuple[int, int] | None = None, last_ayah: int | None = None
) -> Any:
    """The named passage, or with neither --surah nor --ayah a locate target (the gateway finds
    the passage in the recitation)."""
    from services.common.errors import InvalidArgument
    from services.common.parsing import build_target
    from services.common.pb import common_pb2

    if surah is None and ayah is None:
        if words is not None or last_ayah is not None:
            raise InvalidArgument("--words and --last-ayah count from --surah and --ayah: give them too")
        return common_pb2.Target(locate=common_pb2.LocateTarget())
    if surah is None or ayah is None:
        raise InvalidArgument("give --surah and --ayah together (or neither, to find the passage)")
    return build_target(surah, ayah, words=words, last_ayah=last_ayah)


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
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help="retry a call the gateway refuses for now (rate or concurrency limit, shutting down) up to N "
        "times, each after the delay the gateway names, capped at 30 s (default %(default)s; 0: never)",
    )


def connect(args: argparse.Namespace) -> tuple[Any, list[tuple[str, str]]]:
    """The channel and call metadata the connection options name. Raises ConfigError or
    ValueError for options that do not go together (the command prints them and exits 2)."""
    from services.client import connection

    tls = connection.ClientTls.resolve(
        ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key, server_name=args.tls_server_name, enabled=args.tls
    )
    channel = connection.open_channel(args.address, tls)
    key = connection.api_key(args.api_key, args.address, os.environ)
    return channel, [("authorization", f"Bearer {key}")] if key else []
