"""`muaalem reference add|list|remove|warm`: the reference recitations, run on this machine with the
gateway's own settings: the audio store (MUAALEM_RECITATIONS_DIR), the cache (MUAALEM_REDIS_URL)
and the stages the analysis goes through (MUAALEM_ASR_TARGET, ..._ALIGNMENT_TARGET, ..._PROSODY_TARGET)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _app(environ: Mapping[str, str] | None = None) -> Any:
    from services.gateway.app import GatewayApp
    from services.gateway.config import GatewayConfig

    return GatewayApp.build(GatewayConfig.from_env(environ), environ=environ)


def warm_recitations(model_version: str, environ: Mapping[str, str] | None = None) -> int:
    """`cache warm --recitations`: every registered recitation's analysis under `model_version`."""
    from services.common.errors import MeshError

    async def run() -> int:
        app = _app(environ)
        try:
            return int(await app.recitations.warm(model_version))
        finally:
            await app.close()

    try:
        computed = asyncio.run(run())
    except MeshError as exc:
        print(f"reference recitations: {exc}", file=sys.stderr)
        return 1
    print(f"reference recitations: {computed} analyses computed under {model_version} (the rest were cached)")
    return 0


async def _add(args: argparse.Namespace) -> int:
    from services.common.audio import decode_bytes, peak_dbfs

    path = Path(args.file)
    data = await asyncio.to_thread(path.read_bytes)
    audio = decode_bytes(data, name_hint=path.name, max_duration_s=1200.0)
    app = _app()
    try:
        # As the RPC (recitation_api): silence or noise is refused before the analysis.
        await app.assessor.refuse_inaudible(audio, peak_dbfs(audio.samples), what="the reference audio")
        version = await app.assessor.versions.current()
        added = await app.recitations.add(
            audio.samples,
            surah=args.surah,
            ayah=args.ayah,
            last_ayah=args.last_ayah,
            reciter=args.reciter,
            make_default=args.default,
            model_version=version,
        )
    finally:
        await app.close()
    for item in added:
        flag = " (default)" if item.is_default else ""
        print(f"{item.surah}:{item.ayah} {item.reciter}{flag}: {item.duration_s:.2f} s, analysed under {version}")
    return 0


async def _warm(args: argparse.Namespace) -> int:
    app = _app()
    try:
        version = await app.assessor.versions.current()
        computed = await app.recitations.warm(version)
    finally:
        await app.close()
    print(f"{computed} reference recitation analyses computed under {version} (the rest were cached)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from services.gateway.reference.recitation_settings import RecitationConfig
    from services.gateway.reference.recitation_store import RecitationStore

    items = RecitationStore(RecitationConfig.from_env().directory).list()
    if not items:
        print("no reference recitations registered")
    for item in items:
        flag = " (default)" if item.is_default else ""
        print(f"{item.surah}:{item.ayah}\t{item.reciter}{flag}\t{item.duration_s:.2f} s\t{item.audio_sha256[:12]}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from services.gateway.reference.recitation_settings import RecitationConfig
    from services.gateway.reference.recitation_store import RecitationStore

    RecitationStore(RecitationConfig.from_env().directory).remove(args.surah, args.ayah, args.reciter)
    print(f"removed {args.reciter}'s recitation of {args.surah}:{args.ayah}")
    return 0


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from services.common.errors import MeshError

        try:
            result = handler(args)
            return int(asyncio.run(result) if asyncio.iscoroutine(result) else result)
        except MeshError as exc:
            print(f"reference: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"reference: {exc}", file=sys.stderr)
            return 2

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    reference = subparsers.add_parser("reference", help="reference recitations (a teacher's audio per ayah)")
    commands = reference.add_subparsers(dest="reference_command", required=True)
    add = commands.add_parser("add", help="register a recording; several ayahs are cut into ayahs by the alignment")
    add.add_argument("file", help="audio file (wav, flac, ogg, mp3, m4a...)")
    add.add_argument("--surah", type=int, required=True)
    add.add_argument("--ayah", type=int, required=True)
    add.add_argument("--last-ayah", type=int, help="the recording runs from --ayah to this ayah")
    add.add_argument("--reciter", required=True)
    add.add_argument("--default", action="store_true", help="make it the default reciter of its ayahs")
    add.set_defaults(handler=_run(_add))
    listing = commands.add_parser("list", help="the registered recitations")
    listing.set_defaults(handler=_run(_list))
    remove = commands.add_parser("remove", help="unregister one reciter's recitation of an ayah")
    remove.add_argument("--surah", type=int, required=True)
    remove.add_argument("--ayah", type=int, required=True)
    remove.add_argument("--reciter", required=True)
    remove.set_defaults(handler=_run(_remove))
    warm = commands.add_parser("warm", help="compute every registered recitation's analysis into the cache")
    warm.set_defaults(handler=_run(_warm))
