"""API keys and per-key limits, shared by the gRPC and HTTP front ends.

Keys are stored as sha256 digests (a leaked key file gives no usable key) and compared in
constant time. Each key has a token bucket (in Redis when there is one, so that all gateway
replicas share it; in process otherwise) and a cap on assessments in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.config import ConfigError
from services.common.errors import ResourceExhausted, Unauthenticated

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


# Token bucket in one round trip: refill by elapsed time, take one token if there is one.
_BUCKET_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RateLimiter:
    """Per-key token bucket: in Redis when a client is given (shared by replicas; any Redis
    error falls back to the local bucket, so a Redis outage never blocks assessments)."""

    def __init__(self, rate: float, burst: int, redis_client: Any | None = None) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._redis = redis_client
        self._script: Any | None = None
        self._local: dict[str, tuple[float, float]] = {}

    def _take_local(self, name: str, now: float) -> bool:
        tokens, ts = self._local.get(name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - ts) * self.rate)
        allowed = tokens >= 1.0
        self._local[name] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    async def take(self, name: str) -> None:
        if self.rate <= 0:
            return
        now = time.time()
        allowed: bool | None = None
        if self._redis is not None:
            try:
                if self._script is None:
                    self._script = self._redis.register_script(_BUCKET_LUA)
                result = await self._script(keys=[f"muaalem:ratelimit:{name}"], args=[self.rate, self.burst, now])
                allowed = bool(int(result[0]))
            except Exception as exc:  # any Redis failure: fall back to this replica's bucket
                log.debug("rate limiter falls back to the local bucket: %s", exc)
        if allowed is None:
            allowed = self._take_local(name, now)
        if not allowed:
            raise ResourceExhausted(
                f"rate limit: API key {name!r} may send {self.rate:g} assessments per second "
                f"(bursts of {self.burst}); retry later"
            )


class ConcurrencyLimiter:
    """At most N assessments in flight per key on this gateway."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: dict[str, int] = {}

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        if self.limit > 0 and self._in_flight.get(name, 0) >= self.limit:
            raise ResourceExhausted(f"API key {name!r} already has {self.limit} assessments in flight; retry later")
        self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            yield
        finally:
            self._in_flight[name] -= 1
            if self._in_flight[name] <= 0:
                del self._in_flight[name]


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
            await self.rate.take(name)
            async with self.concurrency.hold(name):
                yield name
        else:
            yield name
