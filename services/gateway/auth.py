"""API keys and per-key limits, shared by the gRPC and HTTP front ends.

Keys are stored as sha256 digests (a leaked key file gives no usable key) and compared in
constant time. Each key has a token bucket (in Redis when there is one, so that all gateway
replicas share it; in process otherwise) and a cap on assessments in flight (services.gateway
.limits, which also says when a refused caller may come back).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from services.common.config import ConfigError
from services.common.errors import Unauthenticated
from services.gateway.limits import ConcurrencyLimiter, RateLimiter

__all__ = ["ConcurrencyLimiter", "Guard", "KeyStore", "RateLimiter", "bearer_token", "hash_key", "new_key"]

log = logging.getLogger(__name__)

KEY_PREFIX = "mua_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def parse_entries(text: str, source: str) -> dict[str, str]:
    """`name:sha256hex` entries (lines or commas; `#` comments) -> {digest: name}."""
    entries: dict[str, str] = {}
    for raw in text.replace(",", "\n").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, digest = line.rpartition(":")
        digest = digest.strip().lower()
        if not sep or not name.strip() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{source}: expected `name:<64 hex digits of sha256(key)>`, got {line[:40]!r}")
        entries[digest] = name.strip()
    return entries


@dataclass
class KeyStore:
    digests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str, inline: str) -> KeyStore:
        digests: dict[str, str] = {}
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read MUAALEM_API_KEYS_FILE {path!r}: {exc.strerror}") from exc
            digests.update(parse_entries(text, path))
        if inline:
            digests.update(parse_entries(inline, "MUAALEM_API_KEYS"))
        return cls(digests)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def identify(self, presented: str | None) -> str:
        """The key's name, or Unauthenticated. Every stored digest is compared, so the time taken
        does not depend on which (if any) matched."""
        if not self.enabled:
            return "anonymous"
        if not presented:
            raise Unauthenticated("an API key is required: send `authorization: Bearer <key>`")
        digest = hash_key(presented)
        found = None
        for stored, name in self.digests.items():
            if hmac.compare_digest(stored, digest):
                found = name
        if found is None:
            raise Unauthenticated("the API key is not valid")
        return found


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Guard:
    """Everything a call must pass before the assessment starts."""

    def __init__(self, keys: KeyStore, rate: RateLimiter, concurrency: ConcurrencyLimiter) -> None:
        self.keys = keys
        self.rate = rate
        self.concurrency = concurrency

    def identify(self, authorization: str | None) -> str:
        return self.keys.identify(bearer_token(authorization))

    @asynccontextmanager
    async def admit(self, authorization: str | None, *, metered: bool = True) -> AsyncIterator[str]:
        name = self.identify(authorization)
        if metered:
            # The place in flight first: a call refused for it spends none of the key's rate.
            async with self.concurrency.hold(name):
                await self.rate.take(name)
                yield name
        else:
            yield name
