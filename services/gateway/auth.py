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


class _Promises:
    """The retry times already handed out per key, so that callers refused together are told
    to come back at different moments: told the same moment, they would all return at once and
    all but a few be refused again (and a client's retries are bounded)."""

    def __init__(self) -> None:
        self._due: dict[str, list[float]] = {}

    def pending(self, name: str, now: float) -> int:
        due = [t for t in self._due.get(name, ()) if t > now]
        if due:
            self._due[name] = due
        else:
            self._due.pop(name, None)
        return len(due)

    def add(self, name: str, at: float) -> None:
        self._due.setdefault(name, []).append(at)


class RateLimiter:
    """Per-key token bucket: in Redis when a client is given (shared by replicas; any Redis
    error falls back to the local bucket, so a Redis outage never blocks assessments).

    A refusal says when to retry: the time the bucket needs to refill one whole token, plus one
    token's time (1/rate) for every caller of the key already told to retry before then. The
    hints given are kept per replica (with Redis the bucket is shared, the hints are not)."""

    def __init__(self, rate: float, burst: int, redis_client: Any | None = None) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._redis = redis_client
        self._script: Any | None = None
        self._local: dict[str, tuple[float, float]] = {}
        self._promises = _Promises()

    def _take_local(self, name: str, now: float) -> tuple[bool, float]:
        tokens, ts = self._local.get(name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - ts) * self.rate)
        allowed = tokens >= 1.0
        self._local[name] = (tokens - 1.0 if allowed else tokens, now)
        return allowed, tokens

    def retry_after(self, name: str, tokens: float, now: float) -> float:
        """Seconds until a refused caller of `name` may find a token (and records the hint)."""
        refill = max(0.0, 1.0 - tokens) / self.rate
        wait = refill + self._promises.pending(name, now) / self.rate
        self._promises.add(name, now + wait)
        return wait

    async def take(self, name: str) -> None:
        if self.rate <= 0:
            return
        now = time.time()
        outcome: tuple[bool, float] | None = None
        if self._redis is not None:
            try:
                if self._script is None:
                    self._script = self._redis.register_script(_BUCKET_LUA)
                result = await self._script(keys=[f"muaalem:ratelimit:{name}"], args=[self.rate, self.burst, now])
                outcome = bool(int(result[0])), float(result[1])
            except Exception as exc:  # any Redis failure: fall back to this replica's bucket
                log.debug("rate limiter falls back to the local bucket: %s", exc)
        if outcome is None:
            outcome = self._take_local(name, now)
        allowed, tokens = outcome
        if not allowed:
            raise ResourceExhausted(
                f"rate limit: API key {name!r} may send {self.rate:g} assessments per second "
                f"(bursts of {self.burst}); retry later",
                retry_after_s=self.retry_after(name, tokens, now),
            )


class ConcurrencyLimiter:
    """At most N assessments in flight per key on this gateway.

    A refusal's retry hint is an estimate from the limiter's own state: the typical time an
    assessment holds its place (a moving average of the last ones, 1 s until there are any) less
    the age of the key's oldest one in flight (at least MIN_RETRY_S), plus 1/N of that typical
    time for every caller of the key already told to retry before then."""

    INITIAL_HOLD_S = 1.0
    MIN_RETRY_S = 0.1
    # Weight of the newest hold in the moving average: about the last ten assessments count.
    SMOOTHING = 0.2

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: dict[str, list[float]] = {}
        self.typical_hold_s = self.INITIAL_HOLD_S
        self._promises = _Promises()

    def in_flight(self, name: str) -> int:
        return len(self._in_flight.get(name, ()))

    def retry_after(self, name: str, now: float) -> float:
        started = self._in_flight.get(name) or [now]
        first_free = max(self.MIN_RETRY_S, min(started) + self.typical_hold_s - now)
        wait = first_free + self._promises.pending(name, now) * self.typical_hold_s / max(self.limit, 1)
        self._promises.add(name, now + wait)
        return wait

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        now = time.monotonic()
        if self.limit > 0 and self.in_flight(name) >= self.limit:
            raise ResourceExhausted(
                f"API key {name!r} already has {self.limit} assessments in flight; retry later",
                retry_after_s=self.retry_after(name, now),
            )
        self._in_flight.setdefault(name, []).append(now)
        try:
            yield
        finally:
            held = time.monotonic() - now
            self.typical_hold_s += self.SMOOTHING * (held - self.typical_hold_s)
            started = self._in_flight[name]
            started.remove(now)
            if not started:
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
            # The place in flight first: a call refused for it spends none of the key's rate.
            async with self.concurrency.hold(name):
                await self.rate.take(name)
                yield name
        else:
            yield name
