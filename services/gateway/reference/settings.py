"""Settings of the reference cache (Redis or in-process) and of the content check's search."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, setting

_GROUP = "gateway"

REDIS_URL = setting(
    "MUAALEM_REDIS_URL",
    "",
    "Redis of the shared reference cache: `redis://[user:password@]host:6379/0`, `rediss://` for TLS. "
    "Empty: each gateway keeps its own in-process LRU.",
    group=_GROUP,
    pattern=r"((redis|rediss|unix)://.*)?",
    pattern_doc="empty, or a `redis://`, `rediss://` or `unix://` URL",
)
REDIS_PASSWORD = setting(
    "MUAALEM_REDIS_PASSWORD",
    "",
    "Redis AUTH password, used when MUAALEM_REDIS_URL carries none (keeps the secret out of the URL).",
    group=_GROUP,
)
REDIS_TLS_CA = setting(
    "MUAALEM_REDIS_TLS_CA", "", "PEM CA bundle that verifies the Redis server (rediss:// URLs).", group=_GROUP
)
REDIS_TLS_CERT = setting(
    "MUAALEM_REDIS_TLS_CERT", "", "PEM client certificate for Redis servers that require one (rediss://).", group=_GROUP
)
REDIS_TLS_KEY = setting("MUAALEM_REDIS_TLS_KEY", "", "PEM private key of MUAALEM_REDIS_TLS_CERT.", group=_GROUP)
REDIS_TIMEOUT_MS = setting(
    "MUAALEM_REDIS_TIMEOUT_MS",
    40.0,
    "Budget of one Redis call (connect and command), in ms; past it the lookup fails open and "
    "phonetizes. Calls are never retried.",
    group=_GROUP,
    gt=0,
)
REDIS_BREAKER_FAILURES = setting(
    "MUAALEM_REDIS_BREAKER_FAILURES",
    3,
    "Consecutive Redis failures that open the circuit: Redis is then skipped until the cooldown ends.",
    group=_GROUP,
    ge=1,
)
REDIS_BREAKER_COOLDOWN_S = setting(
    "MUAALEM_REDIS_BREAKER_COOLDOWN_S",
    5.0,
    "How long an open circuit skips Redis before one probe call tries it again.",
    group=_GROUP,
    ge=0,
)
REFERENCE_TTL_S = setting(
    "MUAALEM_REFERENCE_TTL_S", 2_592_000, "Lifetime of a cached reference, in seconds (30 days).", group=_GROUP, ge=1
)
REFERENCE_LRU_SIZE = setting(
    "MUAALEM_REFERENCE_LRU_SIZE",
    2048,
    "References kept in the in-process LRU (about 2.5 KB each compressed): the cache without Redis, "
    "and the stand-in while Redis is unreachable.",
    group=_GROUP,
    ge=1,
)
REFERENCE_BUILD_THREADS = setting(
    "MUAALEM_REFERENCE_BUILD_THREADS",
    2,
    "Threads that phonetize cache misses (CPU-bound Python: more threads only contend for the GIL).",
    group=_GROUP,
    ge=1,
)
CONTENT_SEARCH_GROUPS = setting(
    "MUAALEM_CONTENT_SEARCH_GROUPS",
    40,
    "On a content mismatch, quran-transcript's phonetic search looks up this many phoneme groups from the "
    "start of the decode (about 8 words); its cost grows steeply with the query length. Not used while the "
    "gateway holds the passage index of the whole Quran (MUAALEM_LOCATE_WARM, or after a locate target): "
    "that index answers instead, in milliseconds.",
    group=_GROUP,
    ge=4,
)
CONTENT_SEARCH_RESULTS = setting(
    "MUAALEM_CONTENT_SEARCH_RESULTS",
    5,
    "Passages listed as likely recited on a content mismatch.",
    group=_GROUP,
    ge=1,
)


@dataclass(frozen=True)
class ReferenceCacheConfig:
    redis_url: str = ""
    redis_password: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    timeout_s: float = 0.04
    breaker_failures: int = 3
    breaker_cooldown_s: float = 5.0
    ttl_s: int = 2_592_000
    lru_size: int = 2048
    build_threads: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReferenceCacheConfig:
        config = cls(
            redis_url=REDIS_URL.get(environ).strip(),
            redis_password=REDIS_PASSWORD.get(environ),
            tls_ca=REDIS_TLS_CA.get(environ),
            tls_cert=REDIS_TLS_CERT.get(environ),
            tls_key=REDIS_TLS_KEY.get(environ),
            timeout_s=REDIS_TIMEOUT_MS.get(environ) / 1000.0,
            breaker_failures=REDIS_BREAKER_FAILURES.get(environ),
            breaker_cooldown_s=REDIS_BREAKER_COOLDOWN_S.get(environ),
            ttl_s=REFERENCE_TTL_S.get(environ),
            lru_size=REFERENCE_LRU_SIZE.get(environ),
            build_threads=REFERENCE_BUILD_THREADS.get(environ),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(f"{REDIS_TLS_CERT.name} and {REDIS_TLS_KEY.name} go together: set both or neither")


@dataclass(frozen=True)
class ContentSearchConfig:
    search_groups: int = 40
    max_results: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContentSearchConfig:
        return cls(search_groups=CONTENT_SEARCH_GROUPS.get(environ), max_results=CONTENT_SEARCH_RESULTS.get(environ))
