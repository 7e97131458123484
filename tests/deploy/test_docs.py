"""docs/deploy.md's metric tables name exactly the metrics the services export."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys

from tests.deploy.manifests import MESH, REPO

DOCS = REPO / "docs" / "deploy.md"

# Imports every service that is written and lists the muaalem_* series names it registered
# (counters with the `_total` their samples carry).
_PROBE = """
import importlib, json, sys
from prometheus_client import REGISTRY
for name in sys.argv[1:]:
    importlib.import_module(name)
names = set()
for family in REGISTRY.collect():
    if family.name.startswith("muaalem_"):
        names.add(family.name + "_total" if family.type == "counter" else family.name)
print(json.dumps(sorted(names)))
"""


@functools.cache
def _exported() -> frozenset[str]:
    modules = [f"services.{s}.__main__" for s in MESH if (REPO / "services" / s / "__main__.py").exists()]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return frozenset(json.loads(done.stdout.strip().splitlines()[-1]))


def _documented() -> set[str]:
    return set(re.findall(r"^\| `(muaalem_[a-z0-9_]+)[{`]", DOCS.read_text(), re.MULTILINE))


def test_every_exported_metric_is_documented() -> None:
    missing = _exported() - _documented()
    assert not missing, f"add to docs/deploy.md's metric tables: {sorted(missing)}"


def test_every_documented_metric_is_exported() -> None:
    exported = _exported()
    assert {"muaalem_grpc_requests_total", "muaalem_service_ready"} <= exported
    stale = _documented() - exported
    assert not stale, f"docs/deploy.md documents metrics no service exports: {sorted(stale)}"
