"""Security: no way for input to become code (no pickle, eval or unsafe loading in the services;
a pickle planted in the cache is never unpickled)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import cast

import pytest
import redis

from services.common.pb import gateway_pb2, gateway_pb2_grpc
from services.gateway.reference.cache import FORMAT_VERSION, MAGIC
from tests.conftest import REPO, RedisServer
from tests.reliability import inputs
from tests.reliability.cluster import Cluster, client_channel
from tests.reliability.report import Report
from tests.reliability.scan import scan_source, scan_tree

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


SERVICES_DIR = REPO / "services"


def test_no_pickle_eval_or_unsafe_loading_in_the_services(report: Report) -> None:
    # The scanner first proves it finds what it looks for, and passes what is safe.
    planted = """
import pickle, yaml, torch, subprocess, os
import numpy as np
from marshal import loads
pickle.loads(b"")
eval("1")
exec("x = 1")
yaml.load(text)
yaml.load(text, Loader=yaml.FullLoader)
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("a.npy", allow_pickle=True)
subprocess.run("ls", shell=True)
os.system("ls")
"""
    safe = """
import yaml, torch
import numpy as np
model.eval()
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
torch.load("w.pt", weights_only=True)
np.load("a.npy")
"""
    found = scan_source(planted)
    # Every line but the numpy import is one finding.
    assert [f.line for f in found] == [2, *range(4, 15)], "\n".join(map(str, found))
    assert scan_source(safe) == []
    files, findings = scan_tree(SERVICES_DIR)
    report.add(
        "security",
        "No way for input to become code: AST scan of services/",
        ["files scanned", "findings"],
        [[str(files), "; ".join(map(str, findings)) or "none"]],
        note="Flagged if present: pickle/cPickle/dill/cloudpickle/joblib/shelve/marshal use, the builtins "
        "eval/exec/compile, yaml.load without a safe Loader, torch.load without weights_only=True, "
        "numpy.load(allow_pickle=True), subprocess with shell=True, os.system/os.popen. Weights load through "
        "safetensors; cached references are zlib-compressed protobuf behind a magic header.",
    )
    assert files > 50
    assert findings == [], "\n".join(map(str, findings))


def test_a_pickle_planted_in_the_cache_is_never_unpickled(
    cluster: Cluster, mesh_redis: RedisServer, tmp_path: Path, report: Report
) -> None:
    """Whoever can write to Redis cannot make the gateway run code: a value that would run a
    command when unpickled is read as a bad value, recomputed and overwritten."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    request = gateway_pb2.GetReferenceRequest(target=inputs.target(113, 1, None))
    with client_channel(cluster.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        first = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
        store = redis.Redis.from_url(mesh_redis.url)
        header = MAGIC + bytes([FORMAT_VERSION])
        for payload in (pickle.dumps(Exploit()), header + pickle.dumps(Exploit())):
            store.set(first.cache_key, payload)
            again = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
            assert not again.cache_hit
            assert again.reference == first.reference
            stored = cast("bytes | None", store.get(first.cache_key))
            assert stored is not None and stored.startswith(header) and b"posix" not in stored
    assert not marker.exists()
    report.add(
        "security",
        "A pickle planted in the reference cache",
        ["planted under", "outcome"],
        [[first.cache_key, "read as an invalid value, recomputed, overwritten; the command in it never ran"]],
    )
