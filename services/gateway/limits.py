"""Per-key limits that say when to come back, and keep what they promise.

A refused caller is told a whole number of seconds to wait (HTTP's Retry-After counts whole
seconds; gRPC's RetryInfo gets the same figure). Without more, the clients of one key that
send their next request the moment the last is answered take every token and every place as
it frees, and the callers that honoured the hint are refused again and again until their
retries run out. So the rate limiter writes each promise down, a *claim* on the token that
will be there then, and keeps that token from callers who were never refused; and the
concurrency limiter lets callers over its cap wait in line for a place instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import ResourceExhausted

log = logging.getLogger(__name__)

# A caller honouring a hint may come this much late (a busy client, the network) and still find
# what was kept for it; a claim nobody takes is given up then.
GRACE_S = 1.0
# ...or this much early (its clock, the rounding of the hint).
EARLY_S = 0.05
# Claims kept per key: past them a refusal still says when to come back, but keeps nothing
# (a key refused this often only delays itself; the bound keeps each decision cheap).
MAX_CLAIMS = 256


def whole_seconds(wait_s: float) -> int:
    """A wait as the hint states it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s - 1e-9))


@dataclass
class Claims:
    """Claims per key: the times refused callers were told to come back, earliest first."""

    at: dict[str, list[float]] = field(default_factory=dict)

    def live(self, name: str, now: float) -> list[float]:
        times = [t for t in self.at.get(name, ()) if t + GRACE_S >= now]
        if times:
            self.at[name] = times
        else:
            self.at.pop(name, None)
        return times

    def due(self, name: str, now: float) -> bool:
        times = self.live(name, now)
        return bool(times) and times[0] <= now + EARLY_S

    def take_due(self, name: str, now: float) -> None:
        if self.due(name, now):
            self.at[name].pop(0)

    def add(self, name: str, when: float) -> None:
        times = self.at.setdefault(name, [])
        times.append(when)
        times.sort()


# Token bucket in one round trip: refill by elapsed time, take one token if one is left over
# what this replica keeps for its claims (ARGV[4]).
BUCKET_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens - keep >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', key, math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RateLimiter:
    """Per-key token bucket: in Redis when a client is given (shared by replicas; any Redis
    error falls back to the local bucket, so a Redis outage never blocks assessments).

    A refusal's hint is the time the bucket needs to refill a token for this caller after the
    claims already made (each claim one token), in whole seconds, and the refusal becomes a
    claim on that token: until it is due, enough tokens stay in the bucket for every claim;
    from EARLY_S before it is due to GRACE_S after, the first caller of the key to arrive takes
    it (a claim names no caller: the one that comes back on time is nearly always the one it
    was made for). The claims are kept per replica (with Redis the bucket is shared, the claims
    are not)."""

    def __init__(
        self, rate: float, burst: int, redis_client: Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._redis = redis_client
        self._script: Any | None = None
        self._local: dict[str, tuple[float, float]] = {}
        self.claims = Claims()
        self.clock = clock

    def keep(self, claims: list[float], now: float) -> float:
        """Tokens to leave in the bucket now so that each claim finds one when it is due (the
        bucket refills between claims; the claims were placed so that it never has to hold
        more than `burst`)."""
        need = 0.0
        later: float | None = None
        for when in reversed(claims):
            refill = (later - when) * self.rate if later is not None else 0.0
            need = max(0.0, need - refill) + 1.0
            later = when
        if later is None:
            return 0.0
        return max(0.0, need - max(0.0, later - now) * self.rate)

    def feasible(self, claims: list[float], tokens: float, now: float) -> bool:
        """Whether a bucket holding `tokens` now can give each claim its token when it is due."""
        ts = now
        for when in claims:
            tokens = min(float(self.burst), tokens + max(0.0, when - ts) * self.rate)
            ts = max(ts, when)
            if tokens < 1.0 - 1e-9:
                return False
            tokens -= 1.0
        return True

    def next_claim(self, name: str, tokens: float, now: float) -> float:
        """The first whole number of seconds from now at which the bucket can give one more
        token after those claimed already (at most `burst` claims can fall due together)."""
        claims = self.claims.live(name, now)
        wait = whole_seconds((1.0 - tokens) / self.rate)
        while not self.feasible(sorted([*claims, now + wait]), tokens, now):
            wait += 1
        return float(wait)

    def take_local(self, name: str, now: float, keep: float) -> tuple[bool, float]:
        tokens, ts = self._local.get(name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - ts) * self.rate)
        allowed = tokens - keep >= 1.0
        self._local[name] = (tokens - 1.0 if allowed else tokens, now)
        return allowed, tokens

    def settle(self, name: str, now: float, due: bool, allowed: bool, tokens: float) -> float | None:
        """After the bucket's answer: None when the call goes, else the seconds to wait, with a
        claim written for them. A caller arriving when a claim is due is taken for the one it was
        made for (the claim is used up either way)."""
        if due:
            self.claims.take_due(name, now)
        if allowed:
            return None
        wait = self.next_claim(name, tokens, now)
        if len(self.claims.live(name, now)) < MAX_CLAIMS:
            self.claims.add(name, now + wait)
        return wait

    def try_take(self, name: str, now: float) -> float | None:
        """The local bucket's decision (None: a token taken; else the wait)."""
        if self.rate <= 0:
            return None
        due = self.claims.due(name, now)
        claims = self.claims.live(name, now)
        allowed, tokens = self.take_local(name, now, self.keep(claims[1:] if due else claims, now))
        return self.settle(name, now, due, allowed, tokens)

    async def take(self, name: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        wait: float | None = None
        decided = False
        if self._redis is not None:
            due = self.claims.due(name, now)
            claims = self.claims.live(name, now)
            keep = self.keep(claims[1:] if due else claims, now)
            result: Any = None
            try:
                if self._script is None:
                    self._script = self._redis.register_script(BUCKET_LUA)
                result = await self._script(keys=[f"muaalem:ratelimit:{name}"], args=[self.rate, self.burst, now, keep])
            except Exception as exc:  # any Redis failure: fall back to this replica's bucket
                log.debug("rate limiter falls back to the local bucket: %s", exc)
            if result is not None:
                wait = self.settle(name, now, due, bool(int(result[0])), float(result[1]))
                decided = True
        if not decided:
            wait = self.try_take(name, now)
        if wait is not None:
            raise ResourceExhausted(
                f"rate limit: API key {name!r} may send {self.rate:g} assessments per second "
                f"(bursts of {self.burst}); retry later",
                retry_after_s=wait,
            )


class ConcurrencyLimiter:
    """At most N assessments in flight per key on this gateway; up to N more wait for a place,
    first come first served, for at most `wait_s` (a place that frees goes to the longest
    waiting caller, never to one that just arrived). Past either bound the call is refused.

    A waiting line rather than claims: an assessment holds its place for seconds on a CPU, with
    a spread no estimate in whole seconds can follow, so a caller told when to come back would
    often come back too early, and a client's retries are bounded. A refusal still says when to
    come back, an estimate from the limiter's own state: the places in flight free at their
    start plus the typical hold (a moving average of the last ones, 1 s until there are any),
    not before MIN_RETRY_S from now; the caller behind k waiting callers gets the (k+1)-th place
    to free."""

    INITIAL_HOLD_S = 1.0
    MIN_RETRY_S = 0.1
    # Weight of the newest hold in the moving average: about the last ten assessments count.
    SMOOTHING = 0.2

    def __init__(self, limit: int, wait_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._in_flight: dict[str, list[float]] = {}
        self._waiting: dict[str, deque[asyncio.Future[float]]] = {}
        self.typical_hold_s = self.INITIAL_HOLD_S
        self.clock = clock

    def in_flight(self, name: str) -> int:
        return len(self._in_flight.get(name, ()))

    def waiting(self, name: str) -> int:
        return len(self._waiting.get(name, ()))

    def estimate(self, name: str, now: float, position: int) -> float:
        """Seconds until the place of the caller behind `position` waiting ones frees."""
        frees = sorted(
            max(now + self.MIN_RETRY_S, started + self.typical_hold_s) for started in self._in_flight.get(name, [now])
        )
        rounds, index = divmod(position, len(frees))
        return frees[index] + rounds * self.typical_hold_s - now

    def _refusal(self, name: str, now: float, position: int) -> ResourceExhausted:
        return ResourceExhausted(
            f"API key {name!r} already has {self.limit} assessments in flight"
            f"{f' and {self.waiting(name)} waiting' if self.wait_s > 0 else ''}; retry later",
            retry_after_s=float(whole_seconds(self.estimate(name, now, position))),
        )

    async def _wait_for_place(self, name: str, now: float) -> float:
        """The time the place was handed over to this caller, after waiting in line."""
        if self.wait_s <= 0 or self.waiting(name) >= self.limit:
            raise self._refusal(name, now, self.waiting(name))
        line = self._waiting.setdefault(name, deque())
        handed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        line.append(handed)
        try:
            await asyncio.wait({handed}, timeout=self.wait_s)
        except BaseException:
            self._leave_line(name, handed)  # the caller went away while waiting (or got its place)
            raise
        if handed.done():
            return handed.result()
        self._leave_line(name, handed)
        raise self._refusal(name, self.clock(), 0)

    def _leave_line(self, name: str, handed: asyncio.Future[float]) -> None:
        if handed.done() and not handed.cancelled():
            self._release(name, handed.result(), learn=False)  # handed a place it will not use
            return
        handed.cancel()
        line = self._waiting.get(name)
        if line is not None and handed in line:
            line.remove(handed)
            if not line:
                del self._waiting[name]

    def _release(self, name: str, started: float, *, learn: bool) -> None:
        now = self.clock()
        if learn:
            self.typical_hold_s += self.SMOOTHING * ((now - started) - self.typical_hold_s)
        holds = self._in_flight[name]
        holds.remove(started)
        line = self._waiting.get(name)
        while line:
            handed = line.popleft()
            if not handed.done():
                # The place passes straight to the longest waiting caller: counted in flight now,
                # so no caller arriving before that one resumes can take it.
                holds.append(now)
                handed.set_result(now)
                break
        if line is not None and not line:
            del self._waiting[name]
        if not holds:
            del self._in_flight[name]

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        now = self.clock()
        if self.limit > 0 and (self.in_flight(name) >= self.limit or self.waiting(name)):
            started = await self._wait_for_place(name, now)
        else:
            started = now
            self._in_flight.setdefault(name, []).append(started)
        learn = True
        try:
            yield
        except ResourceExhausted:
            # Refused inside (the rate limit, after the place was taken): no assessment ran, so
            # its length says nothing about how long assessments hold their place.
            learn = False
            raise
        finally:
            self._release(name, started, learn=learn)
