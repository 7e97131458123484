"""Alignment latency for 5 s, 15 s, 30 s and 10 minutes of CTC frames against real references.

References are real: quran-transcript phonetizes consecutive ayahs (Hafs, madd 4/4/4/4,
no spaces) from 2:1 until the phoneme count a recitation of that length carries (the issue's
15 s / 200 tokens, about 13 phonemes a second), and the whole of surah Ya-Sin (36, 6,106
phonemes) for 10 minutes. Groups come from the phonetizer's sifat, words from its mappings.
The log-probs are synthetic (no real weights here): a peaky CTC posteriorgram where every
token holds at least one frame, repeated neighbours a blank between them, and the spare
frames go to random tokens and gaps.

Run: .venv/bin/python -m bench.alignment_bench [--runs 200] [--long-runs 20]
Prints a markdown table: the Viterbi alone, the core call (normalisation, Viterbi, confidence,
roll-ups), and the servicer in process (Tensor decode, core, protobuf encode).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from quran_transcript import Aya, MoshafAttributes, quran_phonetizer

from bench.common import p50, p95, table
from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner, GroupRef, ReferenceInput, WordRef
from services.alignment.servicer import AlignmentServicer
from services.alignment.viterbi import best_path
from services.alignment.vocabulary import default_vocabulary
from services.common import tensors
from services.common.pb import alignment_pb2, common_pb2

FRAME_S = 0.04
MOSHAF = MoshafAttributes(
    rewaya="hafs",
    madd_monfasel_len=4,
    madd_mottasel_len=4,
    madd_mottasel_waqf=4,
    madd_aared_len=4,
)


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float
    # Phonemes to take from 2:1 on; None: the whole of `surah`.
    tokens: int | None
    surah: int = 2


CASES = [
    Case("5 s", 5.0, 67),
    Case("15 s", 15.0, 200),
    Case("30 s", 30.0, 400),
    Case("10 min, surah 36", 600.0, None, surah=36),
]


def ayah_reference(surah: int, ayah: int) -> tuple[str, list[GroupRef], list[WordRef]]:
    """One ayah's phonemes, groups (sifat) and words (mappings), ranges local to the ayah."""
    uthmani = Aya(surah, ayah).get().uthmani
    out = quran_phonetizer(uthmani, MOSHAF, remove_spaces=True)
    words: list[WordRef] = []
    char = 0
    for word in uthmani.split(" "):
        spans = [m.pos for m in out.mappings[char : char + len(word)]]
        words.append(WordRef(word, min(s for s, _ in spans), max(e for _, e in spans)))
        char += len(word) + 1
    groups: list[GroupRef] = []
    start = 0
    for sifa in out.sifat:
        end = start + len(sifa.phonemes)
        word_index = next((i for i, w in enumerate(words) if w.start <= start < w.end), len(words) - 1)
        groups.append(GroupRef(sifa.phonemes, start, end, word_index))
        start = end
    return out.phonemes, groups, words


def build_reference(case: Case) -> ReferenceInput:
    vocabulary = default_vocabulary()
    phonemes = ""
    groups: list[GroupRef] = []
    words: list[WordRef] = []
    ayahs = Aya(case.surah, 1).get().num_ayat_in_sura
    for ayah in range(1, ayahs + 1):
        if case.tokens is not None and len(phonemes) >= case.tokens:
            break
        text, ayah_groups, ayah_words = ayah_reference(case.surah, ayah)
        offset, word_offset = len(phonemes), len(words)
        phonemes += text
        words += [WordRef(w.uthmani, w.start + offset, w.end + offset) for w in ayah_words]
        groups += [
            GroupRef(g.phonemes, g.start + offset, g.end + offset, g.word_index + word_offset)
            for g in ayah_groups
        ]
    size = len(phonemes) if case.tokens is None else case.tokens
    kept_words = [WordRef(w.uthmani, min(w.start, size), min(w.end, size)) for w in words if w.start < size]
    kept_groups = [
        GroupRef(g.phonemes, g.start, min(g.end, size), g.word_index) for g in groups if g.start < size
    ]
    text = phonemes[:size]
    return ReferenceInput(text, [vocabulary.index(c) for c in text], kept_groups, kept_words)


def posteriorgram(
    rng: np.random.Generator, ids: npt.NDArray[np.int64], frames: int
) -> npt.NDArray[np.float32]:
    """Peaky log-probs for `ids` spread over exactly `frames` frames."""
    repeats = np.flatnonzero(ids[1:] == ids[:-1]) + 1
    durations = np.ones(ids.size, dtype=np.int64)
    gaps = np.zeros(ids.size + 1, dtype=np.int64)  # gaps[k]: blanks before token k; gaps[-1]: after
    gaps[repeats] = 1
    spare = frames - durations.sum() - gaps.sum()
    if spare < 0:
        raise ValueError(f"{frames} frames cannot hold {ids.size} tokens")
    # A third of the spare frames lengthen tokens, the rest are blanks (CTC is peaky).
    to_tokens = spare // 3
    durations += rng.multinomial(to_tokens, np.full(ids.size, 1 / ids.size))
    gaps += rng.multinomial(spare - to_tokens, np.full(gaps.size, 1 / gaps.size))
    labels = np.zeros(frames, dtype=np.int64)
    at = 0
    for k, token in enumerate(ids.tolist()):
        at += int(gaps[k])
        labels[at : at + durations[k]] = token
        at += int(durations[k])
    logits = rng.normal(0.0, 1.0, size=(frames, len(default_vocabulary())))
    logits[np.arange(frames), labels] += 6.0
    shifted = logits - logits.max(axis=1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32)


def request_of(reference: ReferenceInput, log_probs: npt.NDArray[np.float32]) -> alignment_pb2.AlignRequest:
    return alignment_pb2.AlignRequest(
        phoneme_log_probs=tensors.to_proto(log_probs, "float16"),
        frame_duration_s=FRAME_S,
        reference=common_pb2.Reference(
            phonemes=reference.phonemes,
            phoneme_ids=list(reference.ids),
            groups=[
                common_pb2.ReferenceGroup(
                    phonemes=g.phonemes, phoneme_start=g.start, phoneme_end=g.end, word_index=g.word_index
                )
                for g in reference.groups
            ],
            words=[
                common_pb2.ReferenceWord(uthmani=w.uthmani, phoneme_start=w.start, phoneme_end=w.end)
                for w in reference.words
            ],
        ),
    )


def measure(case: Case, aligner: Aligner, runs: int, rng: np.random.Generator) -> list[object]:
    reference = build_reference(case)
    ids = np.asarray(reference.ids, dtype=np.int64)
    frames = round(case.seconds / FRAME_S)
    log_probs = posteriorgram(rng, ids, frames)
    repeats = int(np.count_nonzero(ids[1:] == ids[:-1]))

    viterbi, core = [], []
    result = aligner.align(log_probs, FRAME_S, reference)
    for _ in range(runs):
        started = time.perf_counter()
        best_path(log_probs, ids, band_frames=0, max_table_bytes=aligner.max_table_bytes)
        viterbi.append(time.perf_counter() - started)
        started = time.perf_counter()
        aligner.align(log_probs, FRAME_S, reference)
        core.append(time.perf_counter() - started)

    servicer = AlignmentServicer(aligner)
    request = request_of(reference, log_probs)

    async def served() -> list[float]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            await servicer.Align(request, None)
            samples.append(time.perf_counter() - started)
        return samples

    service = asyncio.run(served())
    band = "full" if result.band_frames is None else f"±{result.band_frames}"
    viterbi_ms, core_ms, service_ms = ([x * 1000 for x in xs] for xs in (viterbi, core, service))
    return [
        case.name,
        frames,
        f"{ids.size} ({repeats})",
        f"{len(reference.groups)} / {len(reference.words)}",
        band,
        *(f"{v:.2f}" for v in (p50(viterbi_ms), p50(core_ms), p95(core_ms), p50(service_ms), p95(service_ms))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per short case")
    parser.add_argument("--long-runs", type=int, default=20, help="timed calls for 10 minutes")
    args = parser.parse_args()
    aligner = Aligner.from_config(AlignmentConfig.from_env({}))
    aligner.warm_up()
    rng = np.random.default_rng(0)
    header = [
        "case",
        "frames",
        "tokens (repeats)",
        "groups / words",
        "band (frames)",
        "Viterbi p50",
        "align p50",
        "align p95",
        "servicer p50",
        "servicer p95",
    ]
    rows = []
    for case in CASES:
        runs = args.runs if case.tokens is not None else args.long_runs
        rows.append(measure(case, aligner, runs, rng))
    print("Alignment latency, ms (nearest-rank p50 / p95, 1 thread per call)\n")
    print("\n".join(table(header, rows)))


if __name__ == "__main__":
    main()
