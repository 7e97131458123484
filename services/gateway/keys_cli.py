"""`muaalem keys new`: an API key for a caller and its hashed line for the gateway's keys file.

An administrator's command: it runs where the gateway's keys file is kept, not on a learner's
machine, and it uses the gateway's own hashing (services.gateway.auth)."""

from __future__ import annotations

import argparse


def _new_key(args: argparse.Namespace) -> int:
    from services.gateway.auth import hash_key, new_key

    key = new_key()
    print(f"key (give it to the caller, it is not stored): {key}")
    print(f"line for MUAALEM_API_KEYS_FILE: {args.name}:{hash_key(key)}")
    return 0



def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="API keys (admin: the lines of the gateway's keys file)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="make a key and the hashed line for the keys file")
    new.add_argument("name")
    new.set_defaults(handler=_new_key)
