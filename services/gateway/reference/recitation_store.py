"""The durable store of reference recitations: one 16 kHz WAV per (ayah, reciter) and a JSON
registry of who recited which ayah and who is each ayah's default, in a directory (a
PersistentVolume in Kubernetes). The analyses live in the reference cache; this is what they
are recomputed from."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from services.common.errors import InvalidArgument

RATE = 16000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_reciter(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"reciter name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Registered:
    surah: int
    ayah: int
    reciter: str
    is_default: bool
    audio_sha256: str
    duration_s: float


class RecitationStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    @property
    def _index(self) -> Path:
        return self.root / "registry.json"

    def _read(self) -> dict[str, dict[str, object]]:
        if not self._index.exists():
            return {}
        data = json.loads(self._index.read_text())
        return dict(data.get("ayahs", {}))

    def _write(self, ayahs: dict[str, dict[str, object]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Written beside and renamed: a crash never leaves half a registry.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".registry-")
        with os.fdopen(fd, "w") as out:
            json.dump({"version": 1, "ayahs": ayahs}, out, ensure_ascii=False, indent=1, sort_keys=True)
        os.replace(tmp, self._index)

    def audio_path(self, surah: int, ayah: int, reciter: str) -> Path:
        return self.root / f"{surah:03d}" / f"{ayah:03d}" / f"{check_reciter(reciter)}.wav"

    def put(
        self, surah: int, ayah: int, reciter: str, samples: npt.NDArray[np.float32], make_default: bool
    ) -> Registered:
        path = self.audio_path(surah, ayah, reciter)
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = np.clip(samples, -1.0, 1.0)
        sf.write(path, pcm, RATE, subtype="PCM_16")
        digest = sha256_of(read_audio(path))
        with self._lock:
            ayahs = self._read()
            entry = ayahs.setdefault(f"{surah}:{ayah}", {"reciters": {}, "default": reciter})
            reciters = dict(entry["reciters"])  # type: ignore[call-overload]
            reciters[reciter] = {"sha256": digest, "duration_s": round(len(pcm) / RATE, 3)}
            entry["reciters"] = reciters
            if make_default or entry.get("default") not in reciters:
                entry["default"] = reciter
            self._write(ayahs)
        return Registered(surah, ayah, reciter, entry["default"] == reciter, digest, len(pcm) / RATE)

    def remove(self, surah: int, ayah: int, reciter: str) -> None:
        with self._lock:
            ayahs = self._read()
            entry = ayahs.get(f"{surah}:{ayah}")
            reciters = dict(entry["reciters"]) if entry else {}  # type: ignore[call-overload]
            if reciter not in reciters:
                raise InvalidArgument(f"no reference recitation by {reciter!r} for {surah}:{ayah}")
            del reciters[reciter]
            if reciters:
                assert entry is not None
                entry["reciters"] = reciters
                if entry["default"] == reciter:
                    entry["default"] = sorted(reciters)[0]
            else:
                del ayahs[f"{surah}:{ayah}"]
            self._write(ayahs)
        self.audio_path(surah, ayah, reciter).unlink(missing_ok=True)

    def resolve(self, surah: int, ayah: int, reciter: str) -> str:
        """The reciter's name ('' is the ayah's default); InvalidArgument when none is registered."""
        entry = self._read().get(f"{surah}:{ayah}")
        if not entry:
            raise InvalidArgument(f"compare_to: no reference recitation is registered for {surah}:{ayah}")
        reciters = dict(entry["reciters"])  # type: ignore[call-overload]
        name = reciter or str(entry["default"])
        if name not in reciters:
            raise InvalidArgument(
                f"compare_to: reciter {name!r} has no recitation of {surah}:{ayah}; "
                f"registered: {', '.join(sorted(reciters))}"
            )
        return name

    def list(self) -> list[Registered]:
        out = []
        for key, entry in sorted(self._read().items(), key=lambda kv: tuple(int(x) for x in kv[0].split(":"))):
            surah, ayah = (int(x) for x in key.split(":"))
            for name, meta in sorted(dict(entry["reciters"]).items()):  # type: ignore[call-overload]
                out.append(Registered(surah, ayah, name, entry["default"] == name, meta["sha256"], meta["duration_s"]))
        return out

    def load(self, surah: int, ayah: int, reciter: str) -> npt.NDArray[np.float32]:
        path = self.audio_path(surah, ayah, reciter)
        if not path.exists():
            raise InvalidArgument(f"the audio of {reciter!r} for {surah}:{ayah} is missing from {self.root}")
        return read_audio(path)


def read_audio(path: Path) -> npt.NDArray[np.float32]:
    samples, rate = sf.read(path, dtype="float32")
    if rate != RATE:
        raise InvalidArgument(f"{path} is {rate} Hz, not {RATE}")
    return np.asarray(samples, dtype=np.float32)


def sha256_of(samples: npt.NDArray[np.float32]) -> str:
    return hashlib.sha256(np.ascontiguousarray(samples).tobytes()).hexdigest()
