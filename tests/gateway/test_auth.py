"""API keys (hashed, constant-time) and per-key limits, with a real Redis for the shared bucket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as redis_async

from services.common.config import ConfigError
from services.common.errors import ResourceExhausted, Unauthenticated
from services.gateway.auth import (
    ConcurrencyLimiter,
    Guard,
    KeyStore,
    RateLimiter,
    bearer_token,
    hash_key,
    new_key,
    parse_entries,
)
from services.gateway.limits import GRACE_S
from tests.conftest import RedisServer
from tests.polling import eventually


def test_keys_are_stored_as_digests_and_identified(tmp_path: Path) -> None:
    key = new_key()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# partners\nacme:{hash_key(key)}\n")
    store = KeyStore.load(str(keys_file), "")
    assert key not in keys_file.read_text()
    assert store.identify(key) == "acme"
    with pytest.raises(Unauthenticated, match="not valid"):
        store.identify(key + "x")
    with pytest.raises(Unauthenticated, match="Bearer"):
        store.identify(None)


def test_inline_keys_add_to_the_file(tmp_path: Path) -> None:
    a, b = new_key(), new_key()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"a:{hash_key(a)}\n")
    store = KeyStore.load(str(keys_file), f"b:{hash_key(b)}")
    assert (store.identify(a), store.identify(b)) == ("a", "b")


def test_malformed_key_entries_are_refused_with_the_source_named() -> None:
    with pytest.raises(ConfigError, match="MUAALEM_API_KEYS"):
        parse_entries("acme:not-a-digest", "MUAALEM_API_KEYS")
    with pytest.raises(ConfigError, match="cannot read"):
        KeyStore.load("/nonexistent/keys", "")


def test_no_keys_configured_means_open_access() -> None:
    assert KeyStore.load("", "").identify(None) == "anonymous"


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


async def test_local_token_bucket_refuses_beyond_the_burst() -> None:
    limiter = RateLimiter(rate=0.5, burst=3)
    for _ in range(3):
        await limiter.take("k")
    with pytest.raises(ResourceExhausted, match="rate limit"):
        await limiter.take("k")
    await limiter.take("other-key")  # buckets are per key


async def test_redis_token_bucket_is_shared_between_gateways(redis_server: RedisServer) -> None:
    client = redis_async.Redis.from_url(redis_server.url)
    name = f"shared-{new_key()}"
    one, two = RateLimiter(0.1, 4, client), RateLimiter(0.1, 4, client)
    await one.take(name)
    await two.take(name)
    await one.take(name)
    await two.take(name)
    with pytest.raises(ResourceExhausted):
        await one.take(name)
    assert await client.exists(f"muaalem:ratelimit:{name}") == 1
    await client.aclose()


async def test_redis_down_falls_back_to_the_local_bucket(redis_instance: RedisServer) -> None:
    client = redis_async.Redis.from_url(redis_instance.url, socket_timeout=0.05, socket_connect_timeout=0.05)
    limiter = RateLimiter(0.1, 2, client)
    redis_instance.stop()
    await limiter.take("k")
    await limiter.take("k")
    with pytest.raises(ResourceExhausted):
        await limiter.take("k")
    await client.aclose()


async def test_concurrency_cap_per_key() -> None:
    limiter = ConcurrencyLimiter(2, wait_s=0)  # refused at once, not kept waiting in line
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.hold("k"):
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    await eventually(lambda: limiter.in_flight("k") == 2, what="two assessments in flight")
    with pytest.raises(ResourceExhausted, match="in flight"):
        async with limiter.hold("k"):
            pass
    async with limiter.hold("other"):
        pass
    release.set()
    await asyncio.gather(*tasks)
    async with limiter.hold("k"):
        pass


async def test_guard_checks_the_key_before_spending_rate() -> None:
    key = new_key()
    guard = Guard(KeyStore({hash_key(key): "p"}), RateLimiter(0.01, 1), ConcurrencyLimiter(4))
    with pytest.raises(Unauthenticated):
        async with guard.admit("Bearer wrong"):
            pass
    async with guard.admit(f"Bearer {key}") as name:
        assert name == "p"
    with pytest.raises(ResourceExhausted):
        async with guard.admit(f"Bearer {key}"):
            pass
    async with guard.admit(f"Bearer {key}", metered=False):
        pass


def test_a_rate_refusal_names_whole_seconds_and_keeps_the_token_it_promises() -> None:
    limiter = RateLimiter(rate=5.0, burst=5)
    assert [limiter.try_take("k", 0.0) for _ in range(5)] == [None] * 5
    # An empty bucket refills a token every 0.2 s: five callers can be promised the first
    # second, the sixth the next.
    assert [limiter.try_take("k", 0.0) for _ in range(6)] == [1.0, 1.0, 1.0, 1.0, 1.0, 2.0]
    # Tokens refilled meanwhile are kept for them: a caller never refused gets none...
    assert limiter.try_take("k", 0.5) is not None
    # ...and the five told "1 s" all find theirs when they come back (a little late too).
    assert [limiter.try_take("k", 1.0 + i * 0.01) for i in range(5)] == [None] * 5
    assert limiter.try_take("k", 1.06) is not None  # one who was not told to come now
    assert limiter.try_take("other", 0.0) is None  # buckets and claims are per key


def test_no_more_claims_fall_due_together_than_the_bucket_holds() -> None:
    # Bursts of 2 at 5/s: the bucket never holds more than 2 tokens, so 2 callers a second.
    limiter = RateLimiter(rate=5.0, burst=2)
    assert [limiter.try_take("k", 0.0) for _ in range(2)] == [None, None]
    assert [limiter.try_take("k", 0.0) for _ in range(6)] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert [limiter.try_take("k", 1.0), limiter.try_take("k", 1.0)] == [None, None]
    # Below one token a second, hints are as far apart as tokens.
    slow = RateLimiter(rate=0.5, burst=1)
    assert slow.try_take("k", 0.0) is None
    assert [slow.try_take("k", 0.0) for _ in range(3)] == [2.0, 4.0, 6.0]


def test_a_claim_nobody_takes_is_given_up_after_the_grace() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.try_take("k", 0.0) is None
    assert limiter.try_take("k", 0.0) == 1.0  # a claim on the token of t = 1
    assert limiter.claims.live("k", 1.0 + GRACE_S) == [1.0]
    assert limiter.claims.live("k", 1.0 + GRACE_S + 0.01) == []  # nobody came: given up


async def test_redis_bucket_refusals_carry_the_refill_time(redis_server: RedisServer) -> None:
    client = redis_async.Redis.from_url(redis_server.url)
    name = f"hint-{new_key()}"
    limiter = RateLimiter(0.5, 1, client)
    await limiter.take(name)
    with pytest.raises(ResourceExhausted) as refused:
        await limiter.take(name)
    assert refused.value.retry_after_s == 2.0  # one token at 0.5/s
    with pytest.raises(ResourceExhausted):
        await RateLimiter(0.5, 1, client).take(name)  # another replica: the shared bucket is empty
    await client.aclose()


async def test_calls_over_the_cap_wait_in_line_and_are_let_in_first_come_first_served() -> None:
    limiter = ConcurrencyLimiter(2, wait_s=10.0)
    order: list[str] = []
    release = {name: asyncio.Event() for name in "abcd"}

    async def call(name: str) -> None:
        async with limiter.hold("k"):
            order.append(name)
            await release[name].wait()

    tasks = {}
    for name in "abcd":
        tasks[name] = asyncio.create_task(call(name))
        await asyncio.sleep(0.01)
    assert order == ["a", "b"] and limiter.in_flight("k") == 2 and limiter.waiting("k") == 2
    with pytest.raises(ResourceExhausted, match="2 waiting") as refused:  # the line is full too
        async with limiter.hold("k"):
            pass
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1
    release["b"].set()
    await eventually(lambda: order == ["a", "b", "c"], what="c let in when b left")
    release["a"].set()
    await eventually(lambda: order == ["a", "b", "c", "d"], what="d let in when a left")
    release["c"].set()
    release["d"].set()
    await asyncio.gather(*tasks.values())
    assert limiter.in_flight("k") == limiter.waiting("k") == 0


async def test_a_call_that_waits_too_long_is_refused_with_an_estimate() -> None:
    limiter = ConcurrencyLimiter(1, wait_s=0.05)
    for _ in range(3):  # assessments of ~50 ms teach the limiter its typical hold
        async with limiter.hold("k"):
            await asyncio.sleep(0.05)
    assert limiter.typical_hold_s < 0.6
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.hold("k"):
            await release.wait()

    task = asyncio.create_task(hold())
    await eventually(lambda: limiter.in_flight("k") == 1, what="one assessment in flight")
    with pytest.raises(ResourceExhausted, match="in flight") as refused:
        async with limiter.hold("k"):
            pass
    assert refused.value.retry_after_s == 1.0  # the place frees in well under a second
    assert limiter.waiting("k") == 0
    release.set()
    await task


async def test_a_caller_that_goes_away_while_waiting_leaves_the_line() -> None:
    limiter = ConcurrencyLimiter(1, wait_s=10.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.hold("k"):
            await release.wait()

    first = asyncio.create_task(hold())
    await eventually(lambda: limiter.in_flight("k") == 1, what="one in flight")
    waiting = asyncio.create_task(hold())
    await eventually(lambda: limiter.waiting("k") == 1, what="one waiting")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.waiting("k") == 0
    release.set()
    await first
    assert limiter.in_flight("k") == 0


async def test_a_call_refused_for_concurrency_spends_none_of_the_rate() -> None:
    guard = Guard(KeyStore({}), RateLimiter(0.001, 2), ConcurrencyLimiter(1, wait_s=0))
    release = asyncio.Event()

    async def hold() -> None:
        async with guard.admit(None):
            await release.wait()

    task = asyncio.create_task(hold())
    await eventually(lambda: guard.concurrency.in_flight("anonymous") == 1, what="one in flight")
    for _ in range(3):
        with pytest.raises(ResourceExhausted, match="in flight"):
            async with guard.admit(None):
                pass
    release.set()
    await task
    async with guard.admit(None):  # the second token is still there
        pass
