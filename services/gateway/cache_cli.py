"""`muaalem cache warm`: phonetize every ayah (default attributes) into the Redis reference cache.

Phonetizing is CPU-bound Python (about 40 s for the whole Quran on one core), so ayahs are
built in a process pool, in chunks, and written from the parent with pipelined SETs. Keys
already present are skipped (unless --force). An ayah that fails to phonetize is listed at the
end with its error; the others are still written. The summary gives what the namespace costs in
Redis: INFO used_memory before and after, and MEMORY USAGE of a sample of keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.common.config import ConfigError
from services.gateway.reference import builder, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference.cache import cache_key, connection_kwargs, encode_value, model_namespace
from services.gateway.reference.settings import ReferenceCacheConfig

# A chunk per task: big enough to amortise the pickling, small enough for a live progress bar
# and an even spread of the long ayahs over the workers.
_CHUNK = 24
_PIPELINE = 500
_MEMORY_SAMPLE = 200
# A batch job, not the request path: generous timeouts.
_TIMEOUT_S = 10.0

Ayah = tuple[int, int]


@dataclass(frozen=True)
class Failure:
    surah: int
    ayah: int
    error: str


@dataclass
class WarmReport:
    namespace: str
    requested: int = 0
    skipped: int = 0
    written: int = 0
    value_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    used_memory_before: int = 0
    used_memory_after: int = 0
    sampled_keys: int = 0
    sampled_memory_bytes: int = 0
    namespace_keys: int = 0
    seconds: float = 0.0

    @property
    def mean_key_memory(self) -> float:
        return self.sampled_memory_bytes / self.sampled_keys if self.sampled_keys else 0.0


def build_chunk(ayahs: Sequence[Ayah]) -> list[tuple[int, int, bytes | None, str]]:
    """Runs in a worker process: (surah, ayah, stored value or None, error) per ayah."""
    values = moshaf_mod.default_values()
    out: list[tuple[int, int, bytes | None, str]] = []
    for surah, ayah in ayahs:
        try:
            reference = builder.build_reference(targets.ayah_target(surah, ayah), values)
            out.append((surah, ayah, encode_value(reference.SerializeToString()), ""))
        except Exception as exc:  # one ayah the phonetizer cannot handle must not stop the others
            out.append((surah, ayah, None, f"{type(exc).__name__}: {exc}"))
    return out


def ayahs_of(surahs: Sequence[int]) -> list[Ayah]:
    return [(surah, ayah) for surah in surahs for ayah in range(1, quran.ayah_count(surah) + 1)]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _built(pool: ProcessPoolExecutor | None, chunks: list[Sequence[Ayah]]) -> Iterator[tuple[int, list[Any]]]:
    """(chunk size, results) as chunks finish, in a pool or (pool None) in this process."""
    if pool is None:
        for chunk in chunks:
            yield len(chunk), build_chunk(chunk)
        return
    futures = {pool.submit(build_chunk, chunk): len(chunk) for chunk in chunks}
    for future in as_completed(futures):
        yield futures[future], future.result()


def warm(
    client: redis.Redis,
    namespace: str,
    ayahs: Sequence[Ayah],
    *,
    ttl_s: int,
    workers: int,
    force: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> WarmReport:
    """Fills the namespace with the default-attribute reference of every ayah given."""
    started = time.perf_counter()
    report = WarmReport(namespace=namespace, requested=len(ayahs))
    defaults = moshaf_mod.default_values()
    keys = {ayah: cache_key(namespace, targets.ayah_target(*ayah), defaults) for ayah in ayahs}
    todo = list(ayahs)
    if not force:
        present: set[Ayah] = set()
        for batch in _batches(todo, _PIPELINE):
            with client.pipeline(transaction=False) as pipe:
                for ayah in batch:
                    pipe.exists(keys[ayah])
                present.update(ayah for ayah, found in zip(batch, pipe.execute(), strict=True) if found)
        todo = [ayah for ayah in todo if ayah not in present]
        report.skipped = len(present)
    report.used_memory_before = int(client.info("memory")["used_memory"])
    if on_progress is not None:
        on_progress(0, len(todo))

    chunks = list(_batches(todo, _CHUNK))
    # Spawned, not forked: the caller's progress display runs a thread (forking under a held
    # lock deadlocks the child), and a worker starts in ~0.5 s.
    pool = (
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        if workers > 1 and len(chunks) > 1
        else None
    )
    written: list[str] = []
    try:
        for size, results in _built(pool, chunks):
            with client.pipeline(transaction=False) as pipe:
                for surah, ayah, value, error in results:
                    if value is None:
                        report.failures.append(Failure(surah, ayah, error))
                        continue
                    pipe.set(keys[(surah, ayah)], value, ex=ttl_s)
                    written.append(keys[(surah, ayah)])
                    report.value_bytes += len(value)
                pipe.execute()
            if on_progress is not None:
                on_progress(size, len(todo))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report.written = len(written)
    report.failures.sort(key=lambda f: (f.surah, f.ayah))

    report.used_memory_after = int(client.info("memory")["used_memory"])
    sample = random.Random(0).sample(list(keys.values()), min(_MEMORY_SAMPLE, len(keys)))
    with client.pipeline(transaction=False) as pipe:
        for key in sample:
            pipe.memory_usage(key, samples=0)
        usages = [int(u) for u in pipe.execute() if u is not None]
    report.sampled_keys, report.sampled_memory_bytes = len(usages), sum(usages)
    report.namespace_keys = sum(1 for _ in client.scan_iter(match=f"{namespace}:*", count=1000))
    report.seconds = time.perf_counter() - started
    return report


def _namespace_from_asr(address: str) -> str:
    # The gateway's own stage client and TLS settings: the warm-up must dial asr as the gateway does.
    from services.gateway.config import GatewayConfig
    from services.gateway.stages import GrpcStages

    async def ask() -> str:
        tls = GatewayConfig.from_env().tls
        stages = GrpcStages(address, address, address, tls=tls if tls.enabled else None)
        try:
            info = await stages.model_info(10.0)
        finally:
            await stages.close()
        return model_namespace(info.model_version)

    return asyncio.run(ask())


def _print_report(console: Console, report: WarmReport, total_ayahs: int) -> None:
    mib = 1024 * 1024
    table = Table(title=f"reference cache warm-up: {report.namespace}", show_header=False)
    table.add_row("ayahs requested", f"{report.requested:,}")
    table.add_row("already present (skipped)", f"{report.skipped:,}")
    table.add_row("written", f"{report.written:,}")
    table.add_row("failed", f"{len(report.failures):,}")
    table.add_row("stored value bytes written", f"{report.value_bytes / mib:.2f} MiB")
    table.add_row("Redis used_memory before", f"{report.used_memory_before / mib:.2f} MiB")
    table.add_row("Redis used_memory after", f"{report.used_memory_after / mib:.2f} MiB")
    table.add_row("used_memory growth", f"{(report.used_memory_after - report.used_memory_before) / mib:+.2f} MiB")
    table.add_row(
        f"MEMORY USAGE, mean of {report.sampled_keys} keys", f"{report.mean_key_memory / 1024:.2f} KiB per key"
    )
    table.add_row(f"keys in {report.namespace}:*", f"{report.namespace_keys:,}")
    table.add_row(f"estimate for all {total_ayahs:,} ayahs", f"{report.mean_key_memory * total_ayahs / mib:.1f} MiB")
    table.add_row("time", f"{report.seconds:.1f} s")
    console.print(table)
    if report.failures:
        failed = Table(title="ayahs that could not be phonetized (not cached; built on request instead)")
        failed.add_column("ayah")
        failed.add_column("error")
        for failure in report.failures:
            failed.add_row(f"{failure.surah}:{failure.ayah}", failure.error)
        console.print(failed)


def _run_warm(args: argparse.Namespace) -> int:
    console = Console()
    environ = dict(os.environ)
    if args.redis:
        environ["MUAALEM_REDIS_URL"] = args.redis
    try:
        config = ReferenceCacheConfig.from_env(environ)
        kwargs = connection_kwargs(config, _TIMEOUT_S)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if args.surah is not None and not 1 <= args.surah <= quran.SURAH_COUNT:
        console.print(f"[red]surah {args.surah} does not exist: valid surahs are 1..{quran.SURAH_COUNT}[/red]")
        return 2
    namespace = args.model_version
    if namespace is None:
        from services.gateway.config import ASR_TARGET

        address = args.asr or ASR_TARGET.get()
        try:
            namespace = _namespace_from_asr(address)
        except Exception as exc:  # any failure to reach the asr stage ends here with advice
            import grpc

            reason = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            console.print(
                f"[red]could not ask the asr stage at {address} for the model version ({reason}); "
                "pass --model-version[/red]"
            )
            return 2
    client = redis.Redis.from_url(config.redis_url, **kwargs)
    surahs = list(range(1, quran.SURAH_COUNT + 1)) if args.all else [args.surah]
    ayahs = ayahs_of(surahs)
    try:
        client.ping()
        with Progress(
            TextColumn("phonetizing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("warm", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, total=total, advance=done)

            report = warm(
                client,
                namespace,
                ayahs,
                ttl_s=config.ttl_s,
                workers=args.workers,
                force=args.force,
                on_progress=advance,
            )
    except redis.RedisError as exc:
        console.print(f"[red]Redis at {config.redis_url.split('@')[-1]}: {exc}[/red]")
        return 1
    finally:
        client.close()
    _print_report(console, report, quran.total_ayahs())
    status = 1 if report.failures else 0
    if args.recitations:
        from services.gateway.reference_cli import warm_recitations

        status = max(status, warm_recitations(namespace, environ))
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    cache = subparsers.add_parser("cache", help="maintain the Redis reference cache")
    commands = cache.add_subparsers(dest="cache_command", required=True)
    warm_parser = commands.add_parser(
        "warm",
        help="phonetize every ayah (default attributes) into Redis",
        description="Fills the reference cache for one model version. Exit status: 0 all written or "
        "present, 1 some ayahs failed (listed) or Redis failed, 2 bad arguments.",
    )
    scope = warm_parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true", help="all 6,236 ayahs")
    scope.add_argument("--surah", type=int, metavar="N", help="the ayahs of surah N only")
    warm_parser.add_argument("--redis", metavar="URL", help="Redis URL (default: MUAALEM_REDIS_URL)")
    warm_parser.add_argument(
        "--model-version",
        metavar="V",
        help="cache namespace, e.g. muaalem-model-v3_2@1a2b3c4d (default: ask the asr stage, as the gateway does)",
    )
    warm_parser.add_argument("--asr", metavar="ADDRESS", help="asr stage to ask (default: MUAALEM_ASR_TARGET)")
    warm_parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="phonetizer processes (default: one per core)"
    )
    warm_parser.add_argument("--force", action="store_true", help="rebuild keys that are already present")
    warm_parser.add_argument(
        "--recitations",
        action="store_true",
        help="then analyse the registered reference recitations into their ayahs' entries "
        "(through the mesh: asr, alignment, prosody)",
    )
    warm_parser.set_defaults(handler=_run_warm)
