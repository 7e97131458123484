"""Locating a recitation in the Quran (issue 25): the passage index and its search.

Transport-free, imported by no server yet. Modules:

- index.py      PassageIndex: the mushaf (or some surahs) as one phoneme string with word spans
- phonetize.py  an Uthmani text's phonemes and word spans, the reference builder's way, no sifat
- build.py      build_index: every ayah phonetized over a spawned process pool
- codec.py      the stored form (versioned, compact, never pickle)
- cache.py      index_key, load_index / store_index, IndexCache (cache-aside over a ReferenceStore)
- script.py     phoneme <-> model vocabulary id tables for whole strings
- search.py     PassageSearch.search(decoded) -> LocateResult (ranked spans, ties, margin)
- evaluation.py recitation-like queries, a seeded decode-noise model, is_right (tests, bench)

Importing this package imports none of them: build workers import only what they need.
"""
