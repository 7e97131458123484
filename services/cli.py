"""The `muaalem` command. Each area adds its subcommands through a `register` function, imported
lazily so that `muaalem assess` does not pay for importing torch."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# (module, function) pairs: each function takes the subparsers object and adds its commands.
_AREAS = (
    "services.asr.cli",
    "services.client.assess",
    "services.client.live",
    "services.client.show",
    "services.gateway.keys_cli",
    "services.gateway.cache_cli",
    "services.gateway.reference_cli",
    "services.demo.synth.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muaalem", description="Quran recitation assessment mesh")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _AREAS:
        module = importlib.import_module(module_name)
        register: Callable[[argparse._SubParsersAction], None] = module.register
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
