"""Reliability suite: profiles, the shared mesh, and the figures report.

Without options the suite runs its SHORT profile (part of `make test`); with
`--reliability-report PATH` it runs the FULL profile and writes what it measured to PATH
(`make reliability` writes docs/reliability.md).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import cpu_model, memory_gib, now_utc
from tests.conftest import RedisServer
from tests.reliability.cluster import Cluster
from tests.reliability.pki import Pki, make_pki
from tests.reliability.report import FULL, SHORT, Profile, Report

REPORT_KEY = pytest.StashKey[Report]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-report",
        action="store",
        default=None,
        metavar="PATH",
        help="run the reliability suite's FULL profile and write its figures (markdown) to PATH",
    )


# The report of this run, for the hooks that get no config object.
_ACTIVE: dict[str, Report] = {}


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--reliability-report", default=None)
    config.stash[REPORT_KEY] = _ACTIVE["report"] = Report(FULL if path else SHORT)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    active = _ACTIVE.get("report")
    if active is None or not report.nodeid.startswith("tests/reliability/"):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        active.outcomes[report.nodeid] = "skipped" if report.skipped else report.outcome
    elif report.when == "teardown" and report.failed:
        active.outcomes[report.nodeid] = "error in teardown"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-report", default=None)
    report = session.config.stash[REPORT_KEY]
    if not path or not report.outcomes:
        return
    command = " ".join([Path(sys.executable).name, "-m", "pytest", *session.config.invocation_params.args])
    Path(path).write_text(report.render(machine=machine(), command=command))


def machine() -> dict[str, str]:
    gpu = "none"
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout.strip()
        gpu = listed or "none"
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2:3]
    return {
        "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
        "memory": f"{memory_gib():.0f} GiB",
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis-server": redis_version[0].removeprefix("v=") if redis_version else "unknown",
        "date": now_utc(),
    }


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Report:
    return pytestconfig.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def profile(report: Report) -> Profile:
    return report.profile


@pytest.fixture(scope="session")
def mesh_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The shared mesh's Redis (its own: the Redis fault test kills and restarts it)."""
    server = RedisServer(tmp_path_factory.mktemp("mesh-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, mesh_redis: RedisServer, report: Report) -> Iterator[Cluster]:
    """The five services as processes (prosody too: compare_to and reference recitations work),
    the tiny development checkpoint, Redis as the cache. Rate limits are off here (tests of
    limits start their own gateway)."""
    mesh = Cluster(
        tmp_path_factory.mktemp("mesh"),
        redis_url=mesh_redis.url,
        gateway_env={"MUAALEM_RATE_LIMIT_RPS": "0", "MUAALEM_MAX_CONCURRENT_PER_KEY": "1000"},
        prosody=True,
    )
    startup = mesh.start()
    report.add(
        "startup",
        f"Start-up of the mesh (seconds from process start to health SERVING, all {len(startup)} started at once)",
        ["service", "seconds"],
        [[name, f"{seconds:.1f}"] for name, seconds in startup.items()],
    )
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
