"""Locating a recitation in the whole Quran (issue 25): the passage index and its search.

Measures, on this machine:
- building the index of all 6,236 ayahs cold (quran-transcript's phonetizer over a process pool;
  the workers' CPU time is given too, since the machine is shared and wall time is not);
- reading it back: the stored value's size, decoding it, building the search's n-gram tables,
  and a round trip through the local (in-process LRU) cache, and Redis with --redis-url;
- how often the search locates right, by query length (2, 3, 4, 6 words) and decode noise (0, 5,
  10 % of phonemes substituted, inserted or deleted, madd counts moved by up to 2): queries start
  at the first word of random ayahs of surahs 90-114 and at a random word inside random long
  ayahs (>= 12 words) of the other surahs, half each, recited as from a stop
  (services/locate/evaluation.py); and from the first word of random surahs after the basmala,
  or the isti'adha and the basmala, as reciters open. Right: the best span starts at the true
  word, or at a place that reads the same words (then the search reports both as tied);
- search latency over the whole index (wall, and the calling thread's CPU time).

Run: python -m bench.locate [--queries 300] [--workers 2] [--redis-url redis://...] [--quiet-below 2.5]

With --live: live sessions without a passage named (AssessLive with target.locate) through the
running mesh with the demo checkpoint, synthesized recitations streamed at real time: how often
and how soon the session locates right, and a jump to another surah (bench/locate_live.py).

    python -m bench.locate --live [--sessions 12] [--jumps 4] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

from bench.common import cpu_model, fmt_ms, load_average, p50, p95, table, vector_features, wait_for_quiet
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.cache import MemoryStore, RedisStore, ReferenceStore
from services.gateway.reference.settings import ReferenceCacheConfig
from services.locate import codec
from services.locate.build import build_index
from services.locate.cache import IndexCache, index_key, store_index
from services.locate.evaluation import (
    NoiseModel,
    Query,
    is_right,
    recited_prelude,
    sample_openings,
    sample_queries,
)
from services.locate.index import PassageIndex
from services.locate.search import PassageSearch

LENGTHS = (2, 3, 4, 6)
NOISE = (0.0, 0.05, 0.10)
PRELUDES: tuple[tuple[str, ...], ...] = (("basmala",), ("isti'adha", "basmala"))
# A margin under this is "not sure": the policy a caller would apply, shown against the answers.
SURE_MARGIN = 0.05


@dataclass
class Outcome:
    right: bool
    margin: float
    tied: int
    wall_ms: float
    cpu_ms: float
    from_short_surah: bool


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_build(workers: int) -> tuple[PassageIndex, list[list[str]]]:
    load = load_average()
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    index = build_index(workers=workers)
    wall = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu_before
    rows = [
        [
            f"build cold ({workers} spawned workers)",
            f"{wall:.1f} s",
            f"workers' CPU {cpu:.1f} s; load average {load:.2f} before, {load_average():.2f} after",
        ],
        ["index", f"{index.ayah_count} ayahs", f"{index.word_count} words, {len(index.phonemes)} phonemes"],
    ]
    return index, rows


def measure_load(index: PassageIndex, redis_url: str) -> list[list[str]]:
    raw = codec.encode(index)
    decode_ms = [_timed_ms(lambda: codec.decode(raw)) for _ in range(5)]
    tables_ms = [_timed_ms(lambda: PassageSearch(index)) for _ in range(3)]
    rows = [
        [
            "stored value",
            f"{len(raw) / 1e6:.2f} MB",
            f"zlib; {len(index.phonemes.encode()) / 1e6:.2f} MB as UTF-8 text",
        ],
        ["decode", f"{fmt_ms(statistics.median(decode_ms))} ms", "median of 5"],
        ["search tables (4-gram index)", f"{fmt_ms(statistics.median(tables_ms))} ms", "median of 3"],
    ]
    stores: list[tuple[str, ReferenceStore]] = [("local cache (in-process LRU)", MemoryStore(4))]
    if redis_url:
        stores.append(("Redis", RedisStore.from_config(ReferenceCacheConfig(redis_url=redis_url, timeout_s=1.0))))
    for name, store in stores:
        rows.append(asyncio.run(_cache_round_trip(name, store, index)))
    return rows


async def _cache_round_trip(name: str, store: ReferenceStore, index: PassageIndex) -> list[str]:
    values = moshaf_mod.default_values()
    try:
        await store_index(store, index_key(quran.phonetizer_version(), values), index)
        started = time.perf_counter()
        cached = await IndexCache(store).get(values)
        PassageSearch(cached.index)
        total_ms = (time.perf_counter() - started) * 1000
        assert cached.cache_hit, f"{name}: the stored index was not served"
    finally:
        await store.close()
    return [
        f"load from the {name}, ready to search",
        f"{fmt_ms(total_ms)} ms",
        f"read + decode {fmt_ms(cached.load_s * 1000)} ms, then the search tables",
    ]


def _timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def run_queries(search: PassageSearch, queries: Sequence[Query], noise: float, seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    short_first_words = {
        int(search.index.ayah_first_word[row])
        for row in range(search.index.ayah_count)
        if int(search.index.ayah_surah[row]) >= 90
    }
    outcomes = []
    for query in queries:
        decoded = NoiseModel(noise).apply(query.phonemes, rng)
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        result = search.search(decoded)
        cpu_ms = (time.thread_time() - cpu0) * 1000
        wall_ms = (time.perf_counter() - wall0) * 1000
        outcomes.append(
            Outcome(
                right=is_right(search, result, query),
                margin=result.margin,
                tied=len(result.tied),
                wall_ms=wall_ms,
                cpu_ms=cpu_ms,
                from_short_surah=query.first_word in short_first_words,
            )
        )
    return outcomes


def _share(outcomes: Sequence[Outcome]) -> str:
    if not outcomes:
        return "-"
    right = sum(o.right for o in outcomes)
    return f"{100 * right / len(outcomes):.1f} % ({right}/{len(outcomes)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300, help="queries per length")
    parser.add_argument("--workers", type=int, default=2, help="build processes")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--redis-url", default=os.environ.get("MUAALEM_REDIS_URL", ""))
    parser.add_argument(
        "--quiet-below", type=float, default=0.0, help="first wait (up to 10 min) for a 1-min load average under this"
    )
    parser.add_argument("--live", action="store_true", help="live sessions through the mesh instead")
    parser.add_argument("--sessions", type=int, default=12, help="--live: single-passage sessions")
    parser.add_argument("--jumps", type=int, default=4, help="--live: sessions that jump to another surah")
    parser.add_argument("--concurrency", type=int, default=2, help="--live: sessions at once")
    args = parser.parse_args()
    if args.quiet_below > 0:
        wait_for_quiet(args.quiet_below, 600)
    if args.live:
        from bench import locate_live

        locate_live.main(args.sessions, args.jumps, args.seed, args.concurrency)
        return

    print(
        f"Machine: {cpu_model()} ({vector_features()}), {os.cpu_count()} cores; quran-transcript "
        f"{quran.phonetizer_version()}, rapidfuzz {metadata.version('rapidfuzz')}; "
        f"1-min load average {load_average():.2f} at the start (the machine is shared)\n"
    )
    index, build_rows = measure_build(args.workers)
    print("Passage index (default MoshafAttributes: hafs, madd 4/4/4/4)\n")
    print("\n".join(table(["step", "time / size", "detail"], build_rows + measure_load(index, args.redis_url))))

    search = PassageSearch(index)
    results: dict[tuple[int, float], list[Outcome]] = {}
    for words in LENGTHS:
        queries = sample_queries(index, random.Random(args.seed * 100 + words), args.queries, words)
        for noise in NOISE:
            results[words, noise] = run_queries(search, queries, noise, args.seed * 1000 + words)
    openings = sample_openings(index, random.Random(args.seed * 100 + 99), args.queries, 4)
    after: dict[tuple[tuple[str, ...], float], list[Outcome]] = {}
    for names in PRELUDES:
        said = recited_prelude(index.moshaf, names)
        with_prelude = [Query(q.first_word, q.word_count, said + q.phonemes) for q in openings]
        for noise in NOISE:
            after[names, noise] = run_queries(search, with_prelude, noise, args.seed * 1000 + len(names))

    print(f"\nLocated right, {args.queries} queries per length (half from surahs 90-114 ayah starts, half inside")
    print("long ayahs of the others), by decode noise\n")
    rows = [[f"{words} words", *(_share(results[words, noise]) for noise in NOISE)] for words in LENGTHS]
    for label, short in (("4 words, ayah starts of 90-114", True), ("4 words, inside long ayahs", False)):
        rows.append([label, *(_share([o for o in results[4, n] if o.from_short_surah == short]) for n in NOISE)])
    for names in PRELUDES:
        label = f"4 words of a surah opening after the {' and the '.join(names)}"
        rows.append([label, *(_share(after[names, n]) for n in NOISE)])
    print("\n".join(table(["query", *(f"noise {round(n * 100)} %" for n in NOISE)], rows)))

    print(f"\nMargin policy, 4 words: answers with margin >= {SURE_MARGIN} ('sure') and how many of them are right\n")
    rows = []
    for noise in NOISE:
        outcomes = results[4, noise]
        sure = [o for o in outcomes if o.margin >= SURE_MARGIN]
        wrong = [o for o in outcomes if not o.right]
        rows.append(
            [
                f"noise {round(noise * 100)} %",
                f"{100 * len(sure) / len(outcomes):.1f} %",
                _share(sure),
                f"{sum(o.margin < SURE_MARGIN for o in wrong)}/{len(wrong)}",
                f"{100 * sum(o.tied > 1 for o in outcomes) / len(outcomes):.1f} %",
            ]
        )
    print("\n".join(table(["4 words", "sure", "right when sure", "wrong ones flagged unsure", "tied"], rows)))

    print("\nSearch latency over the whole index, ms (nearest-rank p50 / p95; every noise level)\n")
    rows = []
    every: list[Outcome] = []
    for words in LENGTHS:
        outcomes = [o for noise in NOISE for o in results[words, noise]]
        every += outcomes
        rows.append(_latency_row(f"{words} words", outcomes))
    rows.append(_latency_row("all", every))
    print("\n".join(table(["query", "searches", "wall p50", "wall p95", "CPU p50", "CPU p95"], rows)))
    print(f"\n1-min load average at the end: {load_average():.2f}")


def _latency_row(label: str, outcomes: Sequence[Outcome]) -> list[str]:
    wall = [o.wall_ms for o in outcomes]
    cpu = [o.cpu_ms for o in outcomes]
    return [label, str(len(outcomes)), fmt_ms(p50(wall)), fmt_ms(p95(wall)), fmt_ms(p50(cpu)), fmt_ms(p95(cpu))]


if __name__ == "__main__":
    main()
