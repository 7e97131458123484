"""`muaalem synth`: the synthetic reciter on the command line."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="recite an ayah with the synthetic reciter (espeak-ng), with known timings and mistakes",
        description=(
            "Renders the reference phonetic script unit by unit with espeak-ng's Arabic voice at a "
            "tempo, and writes OUT.wav and OUT.truth.json (phonemes, groups and words with times, "
            "sifat, the injected mistakes)."
        ),
    )
    synth.add_argument("out", metavar="OUT.wav")
    synth.add_argument("--surah", type=int, required=True)
    synth.add_argument("--ayah", type=int, required=True)
    synth.add_argument("--last-ayah", type=int, default=0, help="recite ayah..last-ayah")
    synth.add_argument("--moshaf", action="append", default=[], metavar="NAME=VALUE",
                       help="a moshaf attribute (e.g. madd_monfasel_len=2); repeatable")
    synth.add_argument("--tempo", type=float, default=0.3, help="seconds per haraka (default 0.3)")
    synth.add_argument("--snr-db", type=float, default=40.0,
                       help="white-noise floor under the speech, in dB (default 40); negative: none")
    synth.add_argument("--voice", default="ar", help="espeak-ng voice NAME[:PITCH[:RATE]], e.g. ar+m3:40:160")
    synth.add_argument("--mistake", action="append", default=[], metavar="KIND:WORD_INDEX",
                       help="inject a mistake in a word (0-based); kinds: letter, haraka, drop-word, "
                       "extra-word, short-madd, long-madd, no-ghunnah, no-qalqalah; repeatable")
    synth.set_defaults(handler=_synth)


def _moshaf(pairs: list[str]) -> dict[str, object]:
    from services.common.errors import InvalidArgument

    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise InvalidArgument(f"--moshaf {pair!r}: expected NAME=VALUE")
        values[name.strip()] = int(raw) if raw.strip().lstrip("-").isdigit() else raw.strip()
    return values


def _synth(args: argparse.Namespace) -> int:
    from services.common.errors import MeshError

    from .espeak import Voice
    from .mistakes import Mistake
    from .reciter import Spec, recite

    try:
        spec = Spec(
            surah=args.surah, ayah=args.ayah, last_ayah=args.last_ayah, moshaf=_moshaf(args.moshaf),
            tempo=args.tempo, voice=Voice.parse(args.voice), snr_db=args.snr_db if args.snr_db >= 0 else None,
            mistakes=tuple(Mistake.parse(m) for m in args.mistake),
        )
        recitation = recite(spec)
    except MeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    truth = recitation.write(args.out)
    print(f"wrote {args.out} ({recitation.truth['duration_s']:.1f} s) and {truth}")
    for m in recitation.truth["mistakes"]:
        print(f"  mistake {m['kind']} in word {m['word_index']} ({m['word']}): {m['detail']}")
    return 0
