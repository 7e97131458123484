"""API keys (hashed, constant-time) and per-key limits, with a real Redis for the shared bucket."""

from __future__ import annotations

import asyncio
import itertools
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
    limiter = ConcurrencyLimiter(2)
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


async def test_a_rate_refusal_says_when_a_token_is_back_and_spreads_the_callers() -> None:
    limiter = RateLimiter(rate=5.0, burst=2)
    await limiter.take("k")
    await limiter.take("k")
    hints = []
    for _ in range(6):
        with pytest.raises(ResourceExhausted) as refused:
            await limiter.take("k")
        assert refused.value.retry_after_s is not None
        hints.append(refused.value.retry_after_s)
    # The bucket is empty: one token takes 1/rate = 0.2 s; each caller refused meanwhile is told
    # one token's time later than the one before, so they do not all come back at once.
    assert hints[0] == pytest.approx(0.2, abs=0.02)
    assert all(b - a == pytest.approx(0.2, abs=0.02) for a, b in itertools.pairwise(hints))
    await asyncio.sleep(hints[0])
    await limiter.take("k")  # the first hint was honest: a token is there


async def test_redis_bucket_refusals_carry_the_refill_time(redis_server: RedisServer) -> None:
    client = redis_async.Redis.from_url(redis_server.url)
    name = f"hint-{new_key()}"
    limiter = RateLimiter(0.5, 1, client)
    await limiter.take(name)
    with pytest.raises(ResourceExhausted) as refused:
        await limiter.take(name)
    assert refused.value.retry_after_s == pytest.approx(2.0, abs=0.1)
    await client.aclose()


async def test_a_concurrency_refusal_estimates_when_a_place_frees() -> None:
    limiter = ConcurrencyLimiter(1)
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
    hints = []
    for _ in range(2):
        with pytest.raises(ResourceExhausted) as refused:
            async with limiter.hold("k"):
                pass
        assert refused.value.retry_after_s is not None
        hints.append(refused.value.retry_after_s)
    assert ConcurrencyLimiter.MIN_RETRY_S <= hints[0] <= limiter.typical_hold_s + 0.01
    assert hints[1] > hints[0]  # the second caller is told a later moment
    release.set()
    await task


async def test_a_call_refused_for_concurrency_spends_none_of_the_rate() -> None:
    guard = Guard(KeyStore({}), RateLimiter(0.001, 2), ConcurrencyLimiter(1))
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
