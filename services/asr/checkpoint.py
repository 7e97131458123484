"""Finding a checkpoint (local directory or Hugging Face hub id) and reading what describes it.

Two formats are served: the author's `multi_level_ctc` checkpoints (Wav2Vec2-BERT encoder with
one CTC head per level) and the `recitation-segmenter-v2` frame classifier (a stock transformers
`Wav2Vec2BertForAudioFrameClassification`). Both are a directory with `config.json`,
`preprocessor_config.json`, safetensors weights and, for the CTC model, `vocab.json`.

This machine has no route to the hub, so a hub id is looked up in the local Hugging Face cache
first and on the hub second with a short timeout; when neither has it the error says how to copy
the weights over by hand.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from services.common.errors import FailedPrecondition, Unavailable

DEFAULT_MODEL = "obadx/muaalem-model-v3_2"
DEFAULT_SEGMENTER = "obadx/recitation-segmenter-v2"

CheckpointKind = Literal["multi_level_ctc", "frame_classifier"]
KINDS: tuple[str, ...] = ("multi_level_ctc", "frame_classifier")

# Key written into config.json by `muaalem dev-model`: random weights must never pass for a model.
DEV_MARKER = "muaalem_dev_checkpoint"
# Key written into config.json by `make demo-model`: weights trained on the project's synthetic
# reciter. They hear that voice (the demo and its tests are real), not people.
DEMO_MARKER = "muaalem_demo_checkpoint"
# The committed demo checkpoint, served (MUAALEM_ASR_DEV_FALLBACK=demo) when the real weights
# cannot be reached.
DEMO_CHECKPOINT = Path(__file__).resolve().parent / "demo_model"

# Short: the hub is unreachable here and a hanging startup is worse than a clear error.
HUB_TIMEOUT_S = 5.0

_JSON_FILES = ("config.json", "preprocessor_config.json", "vocab.json")
_WEIGHTS_INDEX = "model.safetensors.index.json"
_SINGLE_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class CheckpointFiles:
    """A resolved checkpoint: where it is and what its JSON files say."""

    name: str
    kind: str
    directory: Path
    config: dict[str, Any] = field(repr=False)
    vocab: dict[str, dict[str, int]] = field(repr=False)
    preprocessor_config: dict[str, Any] = field(repr=False)
    weight_files: tuple[Path, ...]
    dev_weights: bool
    demo_weights: bool = False

    @cached_property
    def weights_digest(self) -> str:
        """First 16 hex digits of sha256 over the weight files, in order (cached per file state)."""
        return _digest(self.weight_files)

    @property
    def version(self) -> str:
        """`name@digest`, with a `+dev` suffix for random-weight checkpoints, `+demo` for the demo's."""
        suffix = "+dev" if self.dev_weights else "+demo" if self.demo_weights else ""
        return f"{self.name}@{self.weights_digest}{suffix}"


def resolve_checkpoint(name_or_path: str, kind: str = "multi_level_ctc") -> CheckpointFiles:
    """Resolves a local checkpoint directory or a hub id (local cache first, then the hub).

    Raises Unavailable when the files cannot be reached, FailedPrecondition when they are there
    but are not a checkpoint of `kind`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {KINDS}")
    if not name_or_path.strip():
        raise Unavailable(_how_to_fix(name_or_path, kind, "no checkpoint was configured"))
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        directory = local.resolve()
    elif _looks_like_path(name_or_path):
        raise Unavailable(_how_to_fix(name_or_path, kind, f"{local} is not a directory"))
    else:
        directory = _from_hub(name_or_path, kind)
    return _read(name_or_path, kind, directory)


def _looks_like_path(name: str) -> bool:
    # A hub id is exactly `owner/name`; anything else that is not a directory is a bad path.
    return (
        name.startswith(("/", ".", "~"))
        or name.count("/") != 1
        or Path(name).expanduser().exists()
    )


def _from_hub(repo_id: str, kind: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # the asr extra carries it; a slim install may not
        raise Unavailable(_how_to_fix(repo_id, kind, "huggingface_hub is not installed")) from exc

    patterns = [*_JSON_FILES, "*.safetensors", _WEIGHTS_INDEX]
    problems: list[str] = []
    for local_only in (True, False):
        try:
            path = snapshot_download(
                repo_id,
                allow_patterns=patterns,
                local_files_only=local_only,
                etag_timeout=HUB_TIMEOUT_S,
            )
        except Exception as exc:  # every hub failure mode (offline, 404, auth) ends the same way
            where = "local Hugging Face cache" if local_only else "Hugging Face hub"
            problems.append(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            continue
        directory = Path(str(path))
        if (directory / "config.json").is_file() and _weight_files_or_none(directory):
            return directory
        problems.append(f"{directory} holds no complete checkpoint")
    raise Unavailable(_how_to_fix(repo_id, kind, "; ".join(problems)))


def _how_to_fix(name: str, kind: str, problem: str) -> str:
    env = "MUAALEM_ASR_MODEL" if kind == "multi_level_ctc" else "MUAALEM_SEGMENTER_MODEL"
    hub_id = name if name.count("/") == 1 and not name.startswith((".", "/", "~")) else (
        DEFAULT_MODEL if kind == "multi_level_ctc" else DEFAULT_SEGMENTER
    )
    message = (
        f"cannot load the {kind} checkpoint {name!r} ({problem}). This machine may have no route "
        f"to the Hugging Face hub: on a machine that has one run `hf download {hub_id} "
        f"--local-dir DIR`, copy DIR here and set {env}=DIR."
    )
    if kind == "multi_level_ctc":
        message += (
            " To try the mesh without the real weights, write a random-weight dev model with "
            "`muaalem dev-model DIR --size tiny` (or --size full) and point "
            f"{env} at it (its outputs are marked as dev output)."
        )
    else:
        message += (
            " A random-weight dev segmenter can be written with "
            "`muaalem dev-model DIR --segmenter`."
        )
    return message


def _read(name: str, kind: str, directory: Path) -> CheckpointFiles:
    config = _load_json(directory, "config.json", name, kind, required=True)
    preprocessor = _load_json(directory, "preprocessor_config.json", name, kind, required=True)
    weights = _weight_files_or_none(directory)
    if not weights:
        raise Unavailable(
            _how_to_fix(name, kind, f"{directory} has no {_SINGLE_WEIGHTS} (or sharded safetensors)")
        )
    vocab: dict[str, dict[str, int]] = {}
    if kind == "multi_level_ctc":
        _check_multi_level_ctc(config, directory)
        raw_vocab = _load_json(directory, "vocab.json", name, kind, required=True)
        vocab = _check_vocab(raw_vocab, config, directory)
    else:
        _check_frame_classifier(config, directory)
    return CheckpointFiles(
        name=name,
        kind=kind,
        directory=directory,
        config=config,
        vocab=vocab,
        preprocessor_config=preprocessor,
        weight_files=weights,
        dev_weights=DEV_MARKER in config,
        demo_weights=DEMO_MARKER in config,
    )


def _load_json(directory: Path, filename: str, name: str, kind: str, *, required: bool) -> dict[str, Any]:
    path = directory / filename
    if not path.is_file():
        if required:
            raise Unavailable(_how_to_fix(name, kind, f"{path} is missing"))
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FailedPrecondition(f"{path} must hold a JSON object")
    return data


def _weight_files_or_none(directory: Path) -> tuple[Path, ...]:
    index = directory / _WEIGHTS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FailedPrecondition(f"{index} is not a safetensors index: {exc}") from exc
        shards = tuple(directory / shard for shard in sorted(set(weight_map.values())))
        return shards if all(shard.is_file() for shard in shards) else ()
    single = directory / _SINGLE_WEIGHTS
    return (single,) if single.is_file() else ()


def _check_multi_level_ctc(config: dict[str, Any], directory: Path) -> None:
    model_type = config.get("model_type")
    if model_type != "multi_level_ctc":
        raise FailedPrecondition(
            f"{directory}/config.json has model_type {model_type!r}; a multi-level CTC checkpoint "
            "(model_type 'multi_level_ctc', Wav2Vec2BertForMultilevelCTC) was expected"
        )
    sizes = config.get("level_to_vocab_size")
    if not isinstance(sizes, dict) or not sizes or "phonemes" not in sizes:
        raise FailedPrecondition(
            f"{directory}/config.json has no level_to_vocab_size with a 'phonemes' level"
        )


def _check_vocab(
    raw: dict[str, Any], config: dict[str, Any], directory: Path
) -> dict[str, dict[str, int]]:
    sizes: dict[str, int] = config["level_to_vocab_size"]
    vocab: dict[str, dict[str, int]] = {}
    for level, size in sizes.items():
        table = raw.get(level)
        if not isinstance(table, dict):
            raise FailedPrecondition(f"{directory}/vocab.json has no table for level {level!r}")
        ids = sorted(int(i) for i in table.values())
        if ids != list(range(int(size))):
            raise FailedPrecondition(
                f"{directory}/vocab.json level {level!r} has ids {ids[:5]}...; expected 0..{size - 1} "
                "as config.json's level_to_vocab_size says"
            )
        vocab[level] = {str(token): int(i) for token, i in table.items()}
    return vocab


def _check_frame_classifier(config: dict[str, Any], directory: Path) -> None:
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type != "wav2vec2-bert" or (
        architectures and "Wav2Vec2BertForAudioFrameClassification" not in architectures
    ):
        raise FailedPrecondition(
            f"{directory}/config.json (model_type {model_type!r}, architectures {architectures}) is "
            "not a Wav2Vec2BertForAudioFrameClassification segmenter checkpoint"
        )
    if config.get("add_adapter"):
        raise FailedPrecondition(f"{directory}/config.json: a frame classifier has no adapter")


# Hashing 2.4 GB takes seconds: one digest per (path, size, mtime) for the life of the process.
_DIGESTS: dict[tuple[tuple[str, int, int], ...], str] = {}
_DIGEST_LOCK = threading.Lock()


def _digest(files: tuple[Path, ...]) -> str:
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    with _DIGEST_LOCK:
        cached = _DIGESTS.get(key)
        if cached is not None:
            return cached
        sha = hashlib.sha256()
        for path in files:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    sha.update(chunk)
        digest = sha.hexdigest()[:16]
        _DIGESTS[key] = digest
        return digest
