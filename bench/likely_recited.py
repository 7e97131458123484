"""What was recited instead (a content mismatch's likely_recited, a live off_target event): the two
searches the gateway can ask, side by side on the same decodes (services/gateway/likely.py).

Decodes: whole ayahs of surahs 90-114 as the phonetizer reads them, then noised as a decode is
(services.locate.evaluation.NoiseModel: substitutions, insertions and deletions, madd counts moved
by up to 2). Right: the first passage offered reads the same as the ayah recited (identical ayahs
count as right). Times are wall milliseconds of one search in this process; both searches run on
the same decode one after the other, so the machine's load touches both alike.

Run: python -m bench.likely_recited [--ayahs 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from functools import cache

from bench.common import cpu_model, fmt_ms, load_average, p50, p95, table
from services.gateway.likely import indexed
from services.gateway.reference import builder, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.verification import PassageFinder, RecognizedPassage
from services.locate.build import build_index
from services.locate.evaluation import NoiseModel
from services.locate.search import PassageSearch

NOISE = (0.0, 0.1, 0.2, 0.3)
SURAHS = range(90, 115)


@cache
def ayah_phonemes(surah: int, ayah: int) -> str:
    return builder.build_reference(targets.ayah_target(surah, ayah), moshaf_mod.default_values()).phonemes


def _timed(find: Callable[[str], list[RecognizedPassage]], decode: str) -> tuple[list[RecognizedPassage], float]:
    started = time.perf_counter()
    found = find(decode)
    return found, (time.perf_counter() - started) * 1000


def _right(found: Sequence[RecognizedPassage], truth: str) -> bool:
    return bool(found) and found[0].start_word == 0 and ayah_phonemes(found[0].surah, found[0].ayah) == truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ayahs", type=int, default=40, help="ayahs of surahs 90-114 drawn per noise level")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="processes that build the index")
    args = parser.parse_args()

    print(f"machine: {cpu_model()}; load average {load_average():.1f} at the start")
    started = time.perf_counter()
    search = PassageSearch(build_index(workers=args.workers))
    print(f"index of the whole Quran built in {time.perf_counter() - started:.0f} s (once per gateway and reading)")
    finder = PassageFinder()
    finder.load()
    places = [(s, a) for s in SURAHS for a in range(1, quran.ayah_count(s) + 1)]
    rng = random.Random(args.seed)
    rows = []
    for rate in NOISE:
        noise = NoiseModel(rate)
        searches: dict[str, Callable[[str], list[RecognizedPassage]]] = {
            "quran-transcript PhoneticSearch": finder.find,
            "passage index": lambda d: indexed(search, d, 5),
        }
        right = dict.fromkeys(searches, 0)
        times: dict[str, list[float]] = {name: [] for name in searches}
        for surah, ayah in rng.sample(places, args.ayahs):
            truth = ayah_phonemes(surah, ayah)
            decode = noise.apply(truth, rng)
            for name, find in searches.items():
                found, ms = _timed(find, decode)
                right[name] += _right(found, truth)
                times[name].append(ms)
        for name in searches:
            spent = times[name]
            share = f"{right[name]}/{args.ayahs}"
            rows.append([f"{rate:.0%}", name, share, fmt_ms(p50(spent)), fmt_ms(p95(spent)), fmt_ms(max(spent))])
    print()
    print("\n".join(table(["decode noise", "search", "right", "p50", "p95", "max"], rows)))
    print(f"\nload average {load_average():.1f} at the end")


if __name__ == "__main__":
    main()
