"""What a reciter may say before the target: the isti'adha, and the basmala before any surah's
first ayah but al-Fatiha's (where it is the first ayah itself). Recognised, never judged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import lru_cache

from services.common.pb import common_pb2
from services.gateway.follow.locate import Item
from services.gateway.reference import moshaf as moshaf_mod


@lru_cache(maxsize=8)
def prelude_phonemes(moshaf_key: tuple[tuple[str, object], ...]) -> tuple[str, str]:
    """The isti'adha and the basmala as phonemes, read with the recitation's attributes."""
    from quran_transcript import alphabet, quran_phonetizer

    from services.gateway.reference import quran

    model = moshaf_mod.to_model(dict(moshaf_key))
    istiadha = quran_phonetizer(alphabet.istiaatha.uthmani, model, remove_spaces=True).phonemes
    basmala = quran_phonetizer(quran.ayah_text(1, 1).uthmani, model, remove_spaces=True, sura_idx=1).phonemes
    return istiadha, basmala


def moshaf_key(moshaf: common_pb2.MoshafAttributes | None) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(moshaf_mod.to_dict(moshaf).items()))


async def prelude_items(
    moshaf: common_pb2.MoshafAttributes | None, words: Sequence[common_pb2.ReferenceWord]
) -> list[Item]:
    """The prelude items placed before the target's first word."""
    istiadha, basmala = await asyncio.to_thread(prelude_phonemes, moshaf_key(moshaf))
    items = [Item(istiadha, kind="istiadha")]
    first = words[0] if words else None
    if not (first is not None and first.surah == 1 and first.ayah == 1):
        items.append(Item(basmala, kind="basmala"))
    return items
