"""The peer side by side: quran-muaalem 0.2.2's `Muaalem` (the model author's reference
implementation, in its own environment .venv-peer) against our ASR (Transcribe) and our whole
Assess through the mesh, on the same checkpoint and the same audio, in one run.

The peer runs with its defaults (bfloat16 on CPU) and in float32 (like for like). Ours runs as
the mesh: alignment and tajweed processes shared by one asr process and one gateway per CPU
option. Runs are interleaved (ours, peer, ours, peer...; the order flips every round) so that
load on the shared machine weighs on both alike. Peer times are the `Muaalem` call alone
(features, model, softmax, greedy decode with sifat), measured inside its worker; ours are the
client's round trips, WAV file in, so they include audio decoding, protobuf and gRPC.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from rapidfuzz.distance import Levenshtein

from bench import calls
from bench.clips import Clip, describe, write_npy
from bench.common import ROOT, p50, p50_p95, table
from bench.context import Context, Section
from bench.models import Backend, log
from bench.processes import CHANNEL_OPTIONS, Cluster, Proc, base_env, peak_rss_mib, stage_targets
from services.common.pb import asr_pb2_grpc, gateway_pb2_grpc

PEER_DIR = ROOT / "bench" / "peer"
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
PEER_LABELS = {"default": "peer, its defaults (bfloat16)", "float32": "peer, float32", "bfloat16": "peer, bfloat16"}


class PeerWorker:
    """bench/peer/worker.py in .venv-peer, loaded once, answering one clip at a time."""

    def __init__(self, checkpoint: Path, dtype: str, log_path: Path) -> None:
        self.dtype = dtype
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [str(PEER_PYTHON), str(PEER_DIR / "worker.py"), str(checkpoint), "--dtype", dtype],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
        )
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise RuntimeError(f"the peer worker ({dtype}) did not start: {self.ready}")

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self._log.flush()
            raise RuntimeError(f"the peer worker ({self.dtype}) exited; see {self._log.name}")
        message: dict[str, Any] = json.loads(line)
        return message

    def run(self, wave: Path, uthmani: str, moshaf: dict[str, Any]) -> tuple[float, str]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps({"wave": str(wave), "uthmani": uthmani, "moshaf": moshaf}, ensure_ascii=False) + "\n")
        stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"the peer ({self.dtype}) failed: {answer['error']}")
        return float(answer["ms"]), str(answer["phonemes"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def ensure_peer_env() -> None:
    """Creates .venv-peer (PyPI only; idempotent) when it is missing."""
    if PEER_PYTHON.exists() and any((ROOT / ".venv-peer").glob(".peer-ready-*")):
        return
    import torch

    env = dict(os.environ)
    if torch.__version__.endswith("+cpu"):
        # The peer gets the same torch build as ours: PyPI's default wheel carries CUDA (GBs).
        env.setdefault("TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    log("creating the peer environment .venv-peer (bench/peer/setup_env.sh)")
    subprocess.run(["bash", str(PEER_DIR / "setup_env.sh")], check=True, cwd=ROOT, env=env)


@dataclass
class ClipResult:
    peer_ms: dict[str, list[float]] = field(default_factory=dict)
    peer_decode: dict[str, str] = field(default_factory=dict)
    transcribe_ms: dict[str, list[float]] = field(default_factory=dict)
    assess_ms: dict[str, list[float]] = field(default_factory=dict)
    assess_total_ms: dict[str, list[float]] = field(default_factory=dict)
    decode: dict[str, str] = field(default_factory=dict)
    degraded: int = 0


@dataclass
class PeerResult:
    backends: list[Backend]
    dtypes: list[str]
    clips: dict[float, ClipResult]
    versions: dict[str, str]
    memory: list[tuple[str, float]]

    def ratio(self, seconds: float, backend: str, peer: str = "default", what: str = "assess") -> float:
        clip = self.clips[seconds]
        ours = (clip.assess_ms if what == "assess" else clip.transcribe_ms).get(backend, [])
        theirs = clip.peer_ms.get(peer, [])
        return p50(ours) / p50(theirs) if ours and theirs else float("nan")

    def agreement(self, seconds: float, backend: str, reference: str) -> float | None:
        """Normalised edit distance of a backend's decode to `reference` (a peer dtype or one of
        our backends); None when either is missing."""
        clip = self.clips[seconds]
        ours = clip.decode.get(backend)
        other = clip.peer_decode.get(reference, clip.decode.get(reference))
        if ours is None or other is None:
            return None
        return float(Levenshtein.normalized_distance(ours, other))


def _agree(distance: float | None) -> str:
    if distance is None:
        return "-"
    return "identical" if distance == 0 else f"differs (edit distance {distance:.3f})"


async def _ours(stubs: dict[str, Any], backend: str, clip: Clip, result: ClipResult) -> None:
    transcribed = await calls.transcribe(stubs[f"asr:{backend}"], clip.transcribe_request())
    assessed = await calls.assess(stubs[f"gateway:{backend}"], clip.assess_request())
    result.transcribe_ms.setdefault(backend, []).append(transcribed.wall_ms)
    result.assess_ms.setdefault(backend, []).append(assessed.wall_ms)
    result.assess_total_ms.setdefault(backend, []).append(assessed.total_ms)
    result.decode[backend] = transcribed.phonemes
    result.degraded += bool(assessed.degraded)


async def _compare(
    ctx: Context, clips: list[Clip], procs: dict[str, Proc], peers: dict[str, PeerWorker], backends: list[Backend]
) -> dict[float, ClipResult]:
    channels = {key: grpc.aio.insecure_channel(p.address, options=CHANNEL_OPTIONS) for key, p in procs.items()}
    stubs: dict[str, Any] = {}
    for key, channel in channels.items():
        stubs[key] = (asr_pb2_grpc.AsrServiceStub if key.startswith("asr:") else gateway_pb2_grpc.GatewayServiceStub)(
            channel
        )
    results: dict[float, ClipResult] = {}
    try:
        for clip in clips:
            wave = write_npy(clip, ctx.work_dir)
            uthmani, moshaf = clip.reference_text()
            result = results.setdefault(clip.seconds, ClipResult())

            async def peer_round(record: bool) -> None:
                for dtype, worker in peers.items():
                    ms, phonemes = await asyncio.to_thread(worker.run, wave, uthmani, moshaf)  # noqa: B023
                    if record:
                        result.peer_ms.setdefault(dtype, []).append(ms)  # noqa: B023
                        result.peer_decode[dtype] = phonemes  # noqa: B023

            async def ours_round() -> None:
                for backend in backends:
                    await _ours(stubs, backend.key, clip, result)  # noqa: B023

            # Warm-up: first calls, the reference cache's miss, the peer's lazy initialisation.
            warm = ClipResult()
            for backend in backends:
                await _ours(stubs, backend.key, clip, warm)
            await peer_round(record=False)
            for run in range(ctx.runs):
                if run % 2 == 0:
                    await ours_round()
                    await peer_round(record=True)
                else:
                    await peer_round(record=True)
                    await ours_round()
                log(f"peer {clip.name}: round {run + 1}/{ctx.runs}")
    finally:
        await asyncio.gather(*(c.close(None) for c in channels.values()))
    return results


async def measure(ctx: Context, clips: list[Clip], backends: list[Backend], dtypes: list[str]) -> PeerResult:
    await asyncio.to_thread(ensure_peer_env)
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    log_dir = ctx.log_dir / "peer"
    peers: dict[str, PeerWorker] = {}
    with Cluster(env, log_dir) as cluster:
        try:
            alignment = cluster.start("alignment", "alignment")
            tajweed = cluster.start("tajweed", "tajweed")
            procs: dict[str, Proc] = {}
            for backend in backends:
                procs[f"asr:{backend.key}"] = cluster.start("asr", f"asr {backend.key}", backend.env(ctx.assets))
            await asyncio.to_thread(cluster.wait_serving)
            for backend in backends:
                targets = stage_targets(procs[f"asr:{backend.key}"], alignment, tajweed)
                procs[f"gateway:{backend.key}"] = cluster.start("gateway", f"gateway {backend.key}", targets)
            await asyncio.to_thread(cluster.wait_serving)
            for dtype in dtypes:
                peers[dtype] = await asyncio.to_thread(
                    PeerWorker, ctx.assets.checkpoint, dtype, log_dir / f"peer-{dtype}.log"
                )
            log("peer: every process is ready")
            results = await _compare(ctx, clips, procs, peers, backends)
            memory = [(PEER_LABELS[d], peak_rss_mib(w.process.pid)) for d, w in peers.items()]
            memory += [
                (f"ours: {p.label}", peak_rss_mib(p.process.pid)) for key, p in procs.items() if key.startswith("asr:")
            ]
            versions = next(iter(peers.values())).ready["versions"] if peers else {}
        finally:
            for worker in peers.values():
                worker.close()
    return PeerResult(backends, dtypes, results, versions, memory)


def _ratio(values: list[float], reference: list[float] | None) -> str:
    return f"{p50(values) / p50(reference):.2f}" if values and reference else "-"


def _distance(a: str | None, b: str | None) -> float | None:
    return None if a is None or b is None else float(Levenshtein.normalized_distance(a, b))


def render(result: PeerResult, clips: list[Clip], runs: int) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    lines = [
        f"Peer: `quran_muaalem.Muaalem` ({versions}) in .venv-peer, loading the same checkpoint "
        "directory (saved in the author's format). ms, p50 / p95 over "
        f"{runs} interleaved runs. Ratios: the row's p50 over the peer's p50 (below 1: faster than "
        "the peer). Decodes are compared as phoneme strings (normalised edit distance).",
        "",
        *describe(clips),
    ]
    for clip in clips:
        data = result.clips[clip.seconds]
        base, fp32 = data.peer_ms.get("default"), data.peer_ms.get("float32")
        fp32_decode = data.peer_decode.get("float32")
        rows = []
        for dtype in result.dtypes:
            values = data.peer_ms.get(dtype, [])
            agreement = "-" if dtype == "float32" else _agree(_distance(data.peer_decode.get(dtype), fp32_decode))
            rows.append([PEER_LABELS[dtype], "Muaalem call", p50_p95(values), _ratio(values, base),
                         _ratio(values, fp32), agreement])
        for backend in result.backends:
            transcribed = data.transcribe_ms.get(backend.key, [])
            assessed = data.assess_ms.get(backend.key, [])
            agreement = _agree(_distance(data.decode.get(backend.key), fp32_decode))
            rows.append([f"ours, {backend.label}", "Transcribe (asr over gRPC)", p50_p95(transcribed),
                         _ratio(transcribed, base), _ratio(transcribed, fp32), agreement])
            rows.append([f"ours, {backend.label}", "Assess (whole mesh over gRPC)", p50_p95(assessed),
                         _ratio(assessed, base), _ratio(assessed, fp32), "(same model call)"])
        lines += ["", f"### {clip.name} ({clip.spec.target_label})", ""]
        lines += table(
            ["system", "timed", "ms p50 / p95", "/ peer default p50", "/ peer fp32 p50", "decode vs peer fp32"],
            rows,
        )
        if data.degraded:
            lines += ["", f"**{data.degraded} of our assessments came back degraded.**"]
    lines += ["", "Peak resident memory (VmHWM) of the model processes in this comparison:", ""]
    lines += table(["process", "peak RSS MiB"], [[label, f"{mib:.0f}"] for label, mib in result.memory])
    return lines


async def run(ctx: Context) -> list[Section]:
    clips = ctx.clips(ctx.args.peer_durations)
    backends = ctx.backends(ctx.args.peer_backends)
    dtypes = [d.strip() for d in ctx.args.peer_dtypes.split(",") if d.strip()]
    provenance = ctx.provenance()
    result = await measure(ctx, clips, backends, dtypes)
    ctx.results["peer"] = result
    provenance.finish()
    return [Section("peer", "The peer (quran-muaalem 0.2.2) side by side", render(result, clips, ctx.runs), provenance)]

