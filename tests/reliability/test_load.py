"""Load: many concurrent clients against the mesh; every request answered in full, latency
percentiles reported, and no process leaks file descriptors or memory across the run."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.reliability import inputs
from tests.reliability.cluster import Cluster
from tests.reliability.load import Outcome, grpc_load, http_load, stage_percentiles, summarize
from tests.reliability.report import Profile, Report

# Each run brings up a mesh and drives it for a while: make soak and make reliability run it.
pytestmark = [pytest.mark.slow, pytest.mark.soak]

STAGES = ("audio", "reference", "asr", "energy", "verification", "alignment", "tajweed", "fusion")
# Open descriptors a process may gain across a run without it counting as a leak (a channel's
# reconnect); a leak of one per request would be hundreds.
MAX_FD_GROWTH = 8
# The run is measured in two halves: allocators and batch shapes settle during the first, and a
# leak keeps growing through the second. Bound on the second half's growth, per process:
MAX_SECOND_HALF_GROWTH_MB = 32.0


@dataclass(frozen=True)
class Resources:
    rss_kb: int
    peak_rss_kb: int  # the highest RSS so far (VmHWM)
    fds: int


def snapshot(cluster: Cluster) -> dict[str, Resources]:
    return {name: Resources(s.rss_kb(), s.peak_rss_kb(), s.fd_count()) for name, s in cluster.services.items()}


@pytest.fixture(scope="module")
async def warm(cluster: Cluster) -> None:
    """A round of every target on as many clients, so that caches and pools are filled before
    the baseline is taken."""
    outcomes = await grpc_load(
        cluster.gateway.address,
        inputs.rotating_request,
        clients=16,
        per_client=2,
        metadata=cluster.metadata(),
        timeout_s=60,
    )
    assert all(o.code == "OK" for o in outcomes), outcomes[:3]


def _rows(outcomes: list[Outcome], label: str, clients: int, per_client: int) -> list[str]:
    summary = summarize(outcomes)
    return [
        label,
        f"{clients} x {per_client}",
        str(summary.sent),
        str(summary.full),
        summary.codes_text(),
        summary.degraded_text(),
        f"{summary.p50_ms:.0f}",
        f"{summary.p95_ms:.0f}",
        f"{summary.p99_ms:.0f}",
        f"{summary.max_ms:.0f}",
        f"{summary.throughput:.1f}",
    ]


async def test_concurrent_clients_are_all_answered_without_leaks(
    cluster: Cluster, warm: None, profile: Profile, report: Report
) -> None:
    for service in cluster.services.values():
        service.reset_peak_rss()  # peaks from here on, not from earlier tests' uploads
    before = snapshot(cluster)
    began = time.monotonic()
    halves = [profile.load_requests // 2, profile.load_requests - profile.load_requests // 2]
    grpc_outcomes: list[Outcome] = []
    middle = before
    for half, per_client in enumerate(halves):
        grpc_outcomes += await grpc_load(
            cluster.gateway.address,
            inputs.rotating_request,
            clients=profile.load_clients,
            per_client=per_client,
            metadata=cluster.metadata(),
            timeout_s=120,
            began=began,
        )
        if half == 0:
            middle = snapshot(cluster)
    http_outcomes = await http_load(
        cluster.gateway.http_port,
        inputs.rotating_request,
        clients=profile.http_clients,
        per_client=profile.http_requests,
        authorization=f"Bearer {cluster.api_key}",
        timeout_s=120,
    )
    after = snapshot(cluster)

    headers = ["API", "clients x requests", "sent", "answered in full", "statuses", "degraded stages"]
    headers += ["p50 ms", "p95 ms", "p99 ms", "max ms", "req/s"]
    report.add(
        "load",
        "Closed-loop load on the mesh (client-side latency of whole assessments)",
        headers,
        [
            _rows(grpc_outcomes, "gRPC Assess", profile.load_clients, profile.load_requests),
            _rows(http_outcomes, "HTTP /v1/assess", profile.http_clients, profile.http_requests),
        ],
        note="Each client sends its next request when the last is answered, on its own connection. The "
        f"sample recitation (8.8 s WAV) is assessed against {len(inputs.LOAD_TARGETS)} targets in turn, with the rules "
        "run even on a content mismatch, so that every stage works on every request. The client runs on "
        "the same 2 cores as the four services.",
    )
    report.add(
        "load",
        "Where the time goes (stage durations the gateway recorded, gRPC run)",
        ["stage", "reports", "p50 ms", "p95 ms"],
        stage_percentiles(grpc_outcomes, STAGES),
    )
    report.add(
        "load",
        "Resources of each process through the load (after a warm-up of 16 x 2 requests)",
        [
            "process",
            "RSS before",
            "after 1st half (peak so far)",
            "after 2nd half",
            "end over earlier peak",
            "fds before",
            "fds after",
        ],
        [
            [
                name,
                f"{before[name].rss_kb / 1024:.0f} MiB",
                f"{middle[name].rss_kb / 1024:.0f} MiB ({middle[name].peak_rss_kb / 1024:.0f})",
                f"{after[name].rss_kb / 1024:.0f} MiB",
                f"{(after[name].rss_kb - middle[name].peak_rss_kb) / 1024:+.1f} MiB",
                str(before[name].fds),
                str(after[name].fds),
            ]
            for name in before
        ],
        note="The gRPC run in two halves, then the HTTP run. Peak = VmHWM since the start of the run (reset "
        "through /proc/<pid>/clear_refs), the highest RSS the process reached. "
        f"Asserted per process: open fds grow by at most {MAX_FD_GROWTH} over everything, and RSS at the end "
        f"is less than {MAX_SECOND_HALF_GROWTH_MB:.0f} MiB above the peak reached by the middle of the run "
        "(a leak keeps climbing; allocator caches and the batch shapes asr runs make RSS swing by tens of MiB "
        "under its peak).",
    )

    for outcomes, expected in (
        (grpc_outcomes, profile.load_clients * profile.load_requests),
        (http_outcomes, profile.http_clients * profile.http_requests),
    ):
        assert len(outcomes) == expected
        failed = [o for o in outcomes if o.code != "OK" or o.degraded]
        assert not failed, failed[:3]
    for name in before:
        assert after[name].fds - before[name].fds <= MAX_FD_GROWTH, (name, before[name], after[name])
        growth_mb = (after[name].rss_kb - middle[name].peak_rss_kb) / 1024
        assert growth_mb < MAX_SECOND_HALF_GROWTH_MB, (name, before[name], middle[name], after[name])
