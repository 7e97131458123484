"""The gateway's settings: where the stages are, deadlines, content threshold, keys and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import setting
from services.common.settings import ALIGNMENT, ASR, MAX_PORT, TAJWEED, TlsFiles, tls_from_env
from services.gateway import locate_settings  # noqa: F401
from services.gateway.live import settings as live_settings  # noqa: F401

# Importing the reference settings registers them with the configuration table.
from services.gateway.reference import settings as reference_settings  # noqa: F401

ASR_TARGET = setting(
    "MUAALEM_ASR_TARGET",
    f"127.0.0.1:{ASR.port.default}",
    "Address of the asr stage (`dns:///asr:50052` in Kubernetes).",
    group="gateway",
)
ALIGNMENT_TARGET = setting(
    "MUAALEM_ALIGNMENT_TARGET",
    f"127.0.0.1:{ALIGNMENT.port.default}",
    "Address of the alignment stage.",
    group="gateway",
)
TAJWEED_TARGET = setting(
    "MUAALEM_TAJWEED_TARGET", f"127.0.0.1:{TAJWEED.port.default}", "Address of the tajweed stage.", group="gateway"
)
HTTP_PORT = setting(
    "MUAALEM_GATEWAY_HTTP_PORT",
    8080,
    "Port of the partner HTTP/JSON API (-1 disables it).",
    group="gateway",
    ge=-1,
    le=MAX_PORT,
)
MODE = setting(
    "MUAALEM_GATEWAY_MODE",
    "mesh",
    "`mesh`: call the stages over gRPC; `local`: run every stage inside the gateway process (one-box setups).",
    group="gateway",
    choices=("mesh", "local"),
)
ASSESS_TIMEOUT_S = setting(
    "MUAALEM_ASSESS_TIMEOUT_S",
    60.0,
    "Deadline of an assessment when the caller sets none (the caller's own deadline wins when shorter).",
    group="gateway",
    gt=0,
)
FUSION_RESERVE_S = setting(
    "MUAALEM_FUSION_RESERVE_S",
    0.05,
    "Time kept back from the deadline to fuse a partial answer when a stage is late.",
    group="gateway",
    ge=0,
)
CONTENT_THRESHOLD = setting(
    "MUAALEM_CONTENT_THRESHOLD",
    0.6,
    "Similarity (0..1) of decoded to reference phonemes under which the content is a mismatch.",
    group="gateway",
    ge=0,
    le=1,
)
MIN_PEAK_DBFS = setting(
    "MUAALEM_MIN_PEAK_DBFS",
    -60.0,
    "Audio whose loudest sample is below this level is rejected as silence.",
    group="gateway",
)
COMPLETENESS_CHECK = setting(
    "MUAALEM_COMPLETENESS_CHECK",
    False,
    "Ask the asr stage to run the pause segmenter on every recitation, so the waqf check also knows whether"
    " the recording ended mid-speech. One more model pass: cheap on a GPU, doubles the work on a CPU.",
    group="gateway",
)
API_KEYS_FILE = setting(
    "MUAALEM_API_KEYS_FILE",
    "",
    "File of API keys, one `name:sha256-hex-of-key` per line. With no keys at all the gateway accepts every call.",
    group="gateway",
)
API_KEYS = setting(
    "MUAALEM_API_KEYS",
    "",
    "API keys as comma-separated `name:sha256-hex` entries (added to the file's).",
    group="gateway",
)
RATE_LIMIT_RPS = setting(
    "MUAALEM_RATE_LIMIT_RPS",
    5.0,
    "Sustained assessments per second allowed per API key (0 disables).",
    group="gateway",
    ge=0,
)
RATE_LIMIT_BURST = setting(
    "MUAALEM_RATE_LIMIT_BURST", 20, "Assessments an API key may send at once above its rate.", group="gateway", ge=1
)
MAX_CONCURRENT_PER_KEY = setting(
    "MUAALEM_MAX_CONCURRENT_PER_KEY",
    8,
    "Assessments one API key may have in flight on one gateway (0: no cap).",
    group="gateway",
    ge=0,
)
CONCURRENT_WAIT_S = setting(
    "MUAALEM_CONCURRENT_WAIT_S",
    10.0,
    "A call over MUAALEM_MAX_CONCURRENT_PER_KEY waits at most this long for a place, first come first served "
    "(as many may wait as the cap lets in flight), then is refused with a retry hint; 0 refuses at once.",
    group="gateway",
    ge=0,
)
MAX_HTTP_BODY_MB = setting(
    "MUAALEM_MAX_HTTP_BODY_MB",
    24.0,
    "Largest HTTP request body (base64 audio is 4/3 of the audio).",
    group="gateway",
    gt=0,
)
LETTER_PHASES = setting(
    "MUAALEM_LETTER_PHASES",
    4,
    "A stretch with letter or haraka errors is decoded again at this many frame phases (the audio shifted by"
    " k/N of a model frame) and each error weighed by how many of them hear it (the tajweed calibration's"
    " letter_*_phases); 1: never. Costs N more forward passes over such a stretch (its phases, and its decode"
    " again), none over a clean one.",
    group="gateway",
    ge=1,
    le=8,
)
STAGE_TLS_CERT = setting(
    "MUAALEM_STAGE_TLS_CERT",
    "",
    "Client certificate the gateway presents to the stages (mTLS). Unset with MUAALEM_STAGE_TLS_CA: the"
    " gateway uses MUAALEM_TLS_* for its stage channels too.",
    group="gateway",
)
STAGE_TLS_KEY = setting("MUAALEM_STAGE_TLS_KEY", "", "Private key of MUAALEM_STAGE_TLS_CERT.", group="gateway")
STAGE_TLS_CA = setting(
    "MUAALEM_STAGE_TLS_CA",
    "",
    "CA that signed the stages' certificates: set, the gateway dials the stages over TLS with it, whatever its"
    " own server does (so its public port need not demand client certificates).",
    group="gateway",
)
STAGE_TLS_SERVER_NAME = setting(
    "MUAALEM_STAGE_TLS_SERVER_NAME",
    "",
    "Name expected in the stages' certificates, when not their address.",
    group="gateway",
)
MAX_STREAM_MB = setting(
    "MUAALEM_MAX_STREAM_MB",
    64.0,
    "Largest audio upload through AssessStream, in MiB (held in memory until assessed: 20 min of 16 kHz WAV"
    " is 37 MiB; send long recitations compressed).",
    group="gateway",
    gt=0,
)


@dataclass(frozen=True)
class GatewayConfig:
    asr_target: str
    alignment_target: str
    tajweed_target: str
    http_port: int
    mode: str
    assess_timeout_s: float
    fusion_reserve_s: float
    content_threshold: float
    min_peak_dbfs: float
    completeness_check: bool
    api_keys_file: str
    api_keys: str
    rate_limit_rps: float
    rate_limit_burst: int
    max_concurrent_per_key: int
    concurrent_wait_s: float
    max_http_body_bytes: int
    max_stream_bytes: int
    letter_phases: int
    # TLS of the gateway's channels to the stages (its own server uses ServerSettings.tls).
    tls: TlsFiles

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        return cls(
            asr_target=ASR_TARGET.get(environ),
            alignment_target=ALIGNMENT_TARGET.get(environ),
            tajweed_target=TAJWEED_TARGET.get(environ),
            http_port=HTTP_PORT.get(environ),
            mode=MODE.get(environ),
            assess_timeout_s=ASSESS_TIMEOUT_S.get(environ),
            fusion_reserve_s=FUSION_RESERVE_S.get(environ),
            content_threshold=CONTENT_THRESHOLD.get(environ),
            min_peak_dbfs=MIN_PEAK_DBFS.get(environ),
            completeness_check=COMPLETENESS_CHECK.get(environ),
            api_keys_file=API_KEYS_FILE.get(environ),
            api_keys=API_KEYS.get(environ),
            rate_limit_rps=RATE_LIMIT_RPS.get(environ),
            rate_limit_burst=RATE_LIMIT_BURST.get(environ),
            max_concurrent_per_key=MAX_CONCURRENT_PER_KEY.get(environ),
            concurrent_wait_s=CONCURRENT_WAIT_S.get(environ),
            max_http_body_bytes=int(MAX_HTTP_BODY_MB.get(environ) * 1024 * 1024),
            max_stream_bytes=int(MAX_STREAM_MB.get(environ) * 1024 * 1024),
            letter_phases=LETTER_PHASES.get(environ),
            tls=_stage_tls(environ),
        )


def _stage_tls(environ: Mapping[str, str] | None) -> TlsFiles:
    """The stage channels' TLS: MUAALEM_STAGE_TLS_* when its CA is set, else the process-wide
    MUAALEM_TLS_* (one identity for serving and calling, the simple setup)."""
    ca = STAGE_TLS_CA.get(environ)
    if not ca:
        return tls_from_env(environ)
    return TlsFiles(
        cert=STAGE_TLS_CERT.get(environ),
        key=STAGE_TLS_KEY.get(environ),
        ca=ca,
        server_name=STAGE_TLS_SERVER_NAME.get(environ),
    )
