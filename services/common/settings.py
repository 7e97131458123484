"""Settings every server shares, and the per-service listen addresses.

Per-service variables are named ``MUAALEM_<SERVICE>_*``; the rest are process-wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import Setting, setting

# 120 s of 16 kHz mono float32 is 7.68 MB; 10 MiB leaves room for the rest of a request.
_DEFAULT_MAX_MESSAGE_MB = 10.0

CACHE_DIR = setting(
    "MUAALEM_CACHE_DIR",
    "",
    "Where development checkpoints, the openvino backend's ONNX export and its compiled model are "
    "written and reused, and where `make serve` leaves the development API key the CLI reads on "
    "loopback (default ~/.cache/muaalem).",
    group="asr",
)
DEFAULT_CACHE_DIR = Path("~/.cache/muaalem")
# The launcher writes the development key here, under the cache directory; the CLI reads it.
DEV_KEY_FILE = "dev-api-key"


def cache_dir(environ: Mapping[str, str]) -> Path:
    return Path(CACHE_DIR.get(environ) or DEFAULT_CACHE_DIR).expanduser()


def dev_key_path(environ: Mapping[str, str]) -> Path:
    return cache_dir(environ) / DEV_KEY_FILE


LOG_LEVEL = setting(
    "MUAALEM_LOG_LEVEL",
    "INFO",
    "Log level of every service.",
    pattern="debug|info|warning|error|critical",
    pattern_doc="DEBUG, INFO, WARNING, ERROR or CRITICAL",
)
LOG_FORMAT = setting(
    "MUAALEM_LOG_FORMAT", "json", "`json` (one object per line) or `text`.", choices=("json", "text")
)
MAX_MESSAGE_MB = setting(
    "MUAALEM_MAX_MESSAGE_MB",
    _DEFAULT_MAX_MESSAGE_MB,
    "Largest gRPC message a server accepts or sends, in MiB (sized for 120 s of 16 kHz audio).",
    gt=0,
)
MAX_AUDIO_S = setting(
    "MUAALEM_MAX_AUDIO_S", 120.0, "Longest audio accepted in one unary request, in seconds.", gt=0
)
MAX_STREAM_AUDIO_S = setting(
    "MUAALEM_MAX_STREAM_AUDIO_S", 1200.0, "Longest audio accepted through a streaming upload.", gt=0
)
KEEPALIVE_TIME_S = setting(
    "MUAALEM_KEEPALIVE_TIME_S", 30.0, "Interval of HTTP/2 keepalive pings on idle connections.", gt=0
)
KEEPALIVE_TIMEOUT_S = setting(
    "MUAALEM_KEEPALIVE_TIMEOUT_S", 10.0, "A keepalive ping unanswered this long closes the connection.", gt=0
)
MAX_CONNECTION_AGE_S = setting(
    "MUAALEM_MAX_CONNECTION_AGE_S",
    300.0,
    "Servers close connections older than this so clients re-resolve and reach new replicas.",
    gt=0,
)
MAX_CONNECTION_AGE_GRACE_S = setting(
    "MUAALEM_MAX_CONNECTION_AGE_GRACE_S", 30.0, "Time given to calls on a connection closed for age.", ge=0
)
SHUTDOWN_GRACE_S = setting(
    "MUAALEM_SHUTDOWN_GRACE_S", 20.0, "On SIGTERM, in-flight calls get this long to finish.", ge=0
)
SHUTDOWN_DELAY_S = setting(
    "MUAALEM_SHUTDOWN_DELAY_S",
    1.0,
    "On SIGTERM, report NOT_SERVING this long before refusing new calls (Kubernetes: ~5 s).",
    ge=0,
)
MAX_CONCURRENT_RPCS = setting(
    "MUAALEM_MAX_CONCURRENT_RPCS", 256, "Calls a server runs at once; more are refused (RESOURCE_EXHAUSTED).", ge=1
)
TLS_CERT = setting("MUAALEM_TLS_CERT", "", "PEM certificate of this service; enables TLS with MUAALEM_TLS_KEY.")
TLS_KEY = setting("MUAALEM_TLS_KEY", "", "PEM private key of MUAALEM_TLS_CERT.")
TLS_CA = setting(
    "MUAALEM_TLS_CA",
    "",
    "PEM CA bundle. Servers then require client certificates signed by it (mTLS); clients verify servers with it.",
)
TLS_SERVER_NAME = setting(
    "MUAALEM_TLS_SERVER_NAME", "", "Override of the name a client expects in a server's certificate."
)


@dataclass(frozen=True)
class ServiceAddress:
    """The gRPC and metrics ports of one service, declared as MUAALEM_<SERVICE>_*."""

    host: Setting[str]
    port: Setting[int]
    metrics_port: Setting[int]
    health_port: Setting[int]


# Ports: 0 asks the system for a free one (tests); -1 turns an optional listener off.
MAX_PORT = 65535


def service_address(service: str, *, port: int, metrics_port: int) -> ServiceAddress:
    upper = service.upper()
    return ServiceAddress(
        host=setting(
            f"MUAALEM_{upper}_HOST",
            "127.0.0.1",
            f"Interface the {service} server binds (`0.0.0.0` in containers).",
            group=service,
        ),
        port=setting(
            f"MUAALEM_{upper}_PORT", port, f"gRPC port of the {service} server.", group=service, ge=0, le=MAX_PORT
        ),
        metrics_port=setting(
            f"MUAALEM_{upper}_METRICS_PORT",
            metrics_port,
            f"Prometheus `/metrics` port of the {service} process (-1 disables it).",
            group=service,
            ge=-1,
            le=MAX_PORT,
        ),
        health_port=setting(
            f"MUAALEM_{upper}_HEALTH_PORT",
            -1,
            f"Plaintext port where the {service} server answers grpc.health.v1 and nothing else, for "
            "probes that cannot present a client certificate when mTLS is on (-1 disables it).",
            group=service,
            ge=-1,
            le=MAX_PORT,
        ),
    )


GATEWAY = service_address("gateway", port=50051, metrics_port=9091)
ASR = service_address("asr", port=50052, metrics_port=9092)
ALIGNMENT = service_address("alignment", port=50053, metrics_port=9093)
TAJWEED = service_address("tajweed", port=50054, metrics_port=9094)
PROSODY = service_address("prosody", port=50055, metrics_port=9095)
SERVICES: dict[str, ServiceAddress] = {
    "gateway": GATEWAY,
    "asr": ASR,
    "alignment": ALIGNMENT,
    "tajweed": TAJWEED,
    "prosody": PROSODY,
}


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    ca: str
    server_name: str

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key) or bool(self.ca)


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server bootstrap needs, read once at start-up."""

    service: str
    host: str
    port: int
    metrics_port: int
    max_message_bytes: int
    keepalive_time_s: float
    keepalive_timeout_s: float
    max_connection_age_s: float
    max_connection_age_grace_s: float
    shutdown_grace_s: float
    shutdown_delay_s: float
    max_concurrent_rpcs: int
    tls: TlsFiles
    health_port: int = -1

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> ServerSettings:
        address = SERVICES[service]
        return cls(
            service=service,
            host=address.host.get(environ),
            port=address.port.get(environ),
            metrics_port=address.metrics_port.get(environ),
            max_message_bytes=int(MAX_MESSAGE_MB.get(environ) * 1024 * 1024),
            keepalive_time_s=KEEPALIVE_TIME_S.get(environ),
            keepalive_timeout_s=KEEPALIVE_TIMEOUT_S.get(environ),
            max_connection_age_s=MAX_CONNECTION_AGE_S.get(environ),
            max_connection_age_grace_s=MAX_CONNECTION_AGE_GRACE_S.get(environ),
            shutdown_grace_s=SHUTDOWN_GRACE_S.get(environ),
            shutdown_delay_s=SHUTDOWN_DELAY_S.get(environ),
            max_concurrent_rpcs=MAX_CONCURRENT_RPCS.get(environ),
            tls=tls_from_env(environ),
            health_port=address.health_port.get(environ),
        )


def tls_from_env(environ: Mapping[str, str] | None = None) -> TlsFiles:
    return TlsFiles(
        cert=TLS_CERT.get(environ),
        key=TLS_KEY.get(environ),
        ca=TLS_CA.get(environ),
        server_name=TLS_SERVER_NAME.get(environ),
    )
