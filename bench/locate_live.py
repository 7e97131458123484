"""Live sessions with no passage named (AssessLive with target.locate) through the running mesh:
how soon, and how right, the session finds where the reciter is (`python -m bench.locate --live`).

The demo checkpoint serves the asr (services/asr/demo_model; it hears the synthetic reciter), the
gateway's passage index covers the whole Quran (built at start, MUAALEM_LOCATE_WARM), and each
recitation is synthesized (services/demo/synth: espeak voices, tempo 0.22-0.3 s a haraka, a noise
floor 40 dB down) and streamed at real time, so that the gateway decodes the segment still open
as it would a reciter's. Recitations start at a random ayah of surahs 90-114 (two ayahs, or to
the surah's end) or at a random word inside a long ayah (>= 12 words) of the other surahs (eight
words); the demo model was trained on the other surahs' synthetic recitations, not on 90-114.
Jumps recite two ayahs of one surah of 90-114, pause a second, then two of another.

Measured per session, by the client:
- right: the first sure `located` answer starts at the first word recited (or at a place whose
  words read the same: the identical text elsewhere);
- words of audio before it: the recitation's words begun before `heard_s` (the audio the answer
  was decided on), from the synthesizer's word times;
- before the first pause: of the sessions whose first segment holds more than four words, those
  whose answer came before that segment's `segment` event (it closes at the pause);
- the final covers the words recited: its words are the recitation's, no more, no fewer;
- a jump: the `located` answer with `relocated`, where it starts, and the second passage's words
  begun before it;
- what the text allows: the fewest words of the recitation's own phonetic text, without a
  decode's errors, that the search places sure and right with live mode's rule (MIN_SURE_WORDS,
  the default sure margin). A start whose first four words read as words elsewhere cannot be
  placed by four words by any listener; "within 4 words" is given over all the right answers and
  over those whose text allows it.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import load_average, table
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.demo.synth.espeak import VOICES, Voice
from services.demo.synth.reciter import Recitation, Spec, recite
from services.gateway.live.anywhere import MIN_SURE_WORDS
from services.gateway.locate_settings import LocateConfig
from services.gateway.locating import decide
from services.gateway.reference import quran
from services.locate.build import build_index
from services.locate.evaluation import recited
from services.locate.search import PassageSearch

RATE = 16000
CHUNK_S = 0.1
SHORT_SURAHS = range(90, 115)
LONG_AYAH_WORDS = 12
LONG_WORDS = 8
TEMPOS = (0.22, 0.26, 0.3)
JUMP_PAUSE_S = 1.0
TAIL_S = 1.0


@dataclass
class Case:
    kind: str  # "ayah start of 90-114", "inside a long ayah", "jump"
    audio: np.ndarray
    # (surah, ayah, word in ayah, uthmani, start_s) of each word recited, in order.
    words: list[tuple[int, int, int, str, float]]
    # Where a jump's second passage starts in `words` (0 for no jump).
    jump_at: int = 0
    # The fewest words of the recitation's own text (no decode noise) that the search places
    # sure and right as live mode decides; None: not within LONG_WORDS (see words_needed).
    text_needs: int | None = None


@dataclass
class Outcome:
    case: Case
    events: list[gateway_pb2.AssessLiveResponse] = field(default_factory=list)
    error: str = ""

    def located(self, *, relocated: bool) -> tuple[int, gateway_pb2.LiveLocated] | None:
        """The first answer that began a section (relocated or not), sure, with its words, and
        where it is in the stream."""
        for k, event in enumerate(self.events):
            if event.WhichOneof("kind") == "located":
                found = event.located
                if found.words and not found.extended and found.relocated == relocated and found.located.sure:
                    return k, found
        return None

    def first_segment(self) -> tuple[int, float]:
        """Where the first `segment` event is in the stream, and the end of its audio."""
        for k, event in enumerate(self.events):
            if event.WhichOneof("kind") == "segment":
                return k, event.segment.time_span.end_s
        return len(self.events), float("inf")

    @property
    def final(self) -> gateway_pb2.Assessment | None:
        last = self.events[-1] if self.events else None
        return last.final if last is not None and last.WhichOneof("kind") == "final" else None


def _spec(rng: random.Random, surah: int, ayah: int, **more: Any) -> Spec:
    voice = Voice(rng.choice(VOICES), rng.choice((35, 50, 65)), rng.choice((140, 170)))
    return Spec(surah, ayah, tempo=rng.choice(TEMPOS), voice=voice, **more)


def _words_of(recitation: Recitation, offset_s: float = 0.0) -> list[tuple[int, int, int, str, float]]:
    words = []
    for spoken, reference in zip(recitation.truth["words"], recitation.reference.words, strict=True):
        words.append(
            (reference.surah, reference.ayah, reference.word_in_ayah, reference.uthmani, spoken["start_s"] + offset_s)
        )
    return words


def short_case(rng: random.Random) -> Case:
    surah = rng.choice(SHORT_SURAHS)
    ayah = rng.randint(1, quran.ayah_count(surah))
    recitation = recite(_spec(rng, surah, ayah, last_ayah=min(ayah + 1, quran.ayah_count(surah))))
    return Case(f"ayah start of {SHORT_SURAHS[0]}-{SHORT_SURAHS[-1]}", recitation.samples, _words_of(recitation))


def long_case(rng: random.Random, long_ayahs: Sequence[tuple[int, int, int]]) -> Case:
    surah, ayah, count = rng.choice(long_ayahs)
    start = rng.randint(1, count - LONG_WORDS)
    recitation = recite(_spec(rng, surah, ayah, words=(start, LONG_WORDS)))
    return Case("inside a long ayah", recitation.samples, _words_of(recitation))


def jump_case(rng: random.Random) -> Case:
    first, second = rng.sample(list(SHORT_SURAHS), 2)
    a = rng.randint(1, quran.ayah_count(first) - 1)
    b = rng.randint(1, max(1, quran.ayah_count(second) - 2))
    one = recite(_spec(rng, first, a, last_ayah=a + 1))
    two = recite(_spec(rng, second, b, last_ayah=min(b + 1, quran.ayah_count(second))))
    gap = np.zeros(round(JUMP_PAUSE_S * RATE), dtype=np.float32)
    offset = (len(one.samples) + len(gap)) / RATE
    words = _words_of(one)
    return Case("jump", np.concatenate([one.samples, gap, two.samples]), words + _words_of(two, offset), len(words))


def long_ayahs() -> list[tuple[int, int, int]]:
    """(surah, ayah, words) of the ayahs of >= LONG_AYAH_WORDS words outside surahs 90-114."""
    found = []
    for surah in range(1, SHORT_SURAHS[0]):
        for ayah in range(1, quran.ayah_count(surah) + 1):
            count = len(quran.ayah_text(surah, ayah).uthmani_words)
            if count >= LONG_AYAH_WORDS:
                found.append((surah, ayah, count))
    return found


async def _requests(audio: np.ndarray) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    config = gateway_pb2.LiveConfig(
        target=common_pb2.Target(locate=common_pb2.LocateTarget()),
        pcm=common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
    )
    yield gateway_pb2.AssessLiveRequest(config=config)
    pcm = (np.clip(np.concatenate([audio, np.zeros(round(TAIL_S * RATE), np.float32)]), -1, 1) * 32767).astype("<i2")
    step = round(CHUNK_S * RATE)
    started = time.perf_counter()
    for offset in range(0, len(pcm), step):
        await asyncio.sleep(max(0.0, started + offset / RATE - time.perf_counter()))
        yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + step].tobytes())


async def run_session(stub: gateway_pb2_grpc.GatewayServiceStub, api_key: str, case: Case) -> Outcome:
    import grpc

    outcome = Outcome(case)
    try:
        call = stub.AssessLive(_requests(case.audio), metadata=[("authorization", f"Bearer {api_key}")], timeout=300)
        async for event in call:
            outcome.events.append(event)
    except grpc.aio.AioRpcError as exc:
        outcome.error = f"{exc.code().name}: {exc.details()}"
    return outcome


def _begun(words: Sequence[tuple[int, int, int, str, float]], heard_s: float) -> int:
    return sum(1 for *_, start_s in words if start_s < heard_s)


def _plain(text: str) -> str:
    """Uthmani text without spaces and the Quran's annotation marks (pause signs, small letters)."""
    return "".join(c for c in text if not c.isspace() and not "\u06d6" <= c <= "\u06ed")


def _reads_as(passage: gateway_pb2.RecognizedPassage, words: Sequence[tuple[int, int, int, str, float]]) -> bool:
    """A located passage starts at the first word recited, or reads the same words (the identical
    text elsewhere: 109:3 and 109:5, 7:73 and 11:64)."""
    if (passage.surah, passage.ayah, passage.start_word) == words[0][:3]:
        return True
    said = _plain(passage.uthmani)
    return bool(said) and _plain("".join(w[3] for w in words)).startswith(said)


def _is_right(found: gateway_pb2.LiveLocated, words: Sequence[tuple[int, int, int, str, float]]) -> bool:
    return _reads_as(found.located.passage, words)


def _place(passage: gateway_pb2.RecognizedPassage) -> str:
    return f"{passage.surah}:{passage.ayah}:{passage.start_word}"


def _truth(word: tuple[int, int, int, str, float]) -> str:
    return f"{word[0]}:{word[1]}:{word[2]}"


def _spread(values: Sequence[int]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def rank(q: float) -> int:
        return ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]

    return f"{rank(0.5)} / {rank(0.95)} / {ordered[-1]}"


def report(outcomes: Sequence[Outcome]) -> list[str]:
    lines = _singles([o for o in outcomes if o.case.kind != "jump"])
    jumps = [o for o in outcomes if o.case.kind == "jump"]
    if jumps:
        lines += ["", "Jumps (two ayahs of one surah, a 1 s pause, two of another):", ""]
        lines += _jumps(jumps)
    odd = [o for o in outcomes if not _all_right(o) or _late(o) or not _covers(o)]
    if odd:
        lines += ["", "Not located right at once, after more than four words, or a final other than the words"]
        lines += ["recited: the answers in order (place, sure, score, margin, heard s)", ""]
        for o in odd:
            lines.append(f"- {o.case.kind}, recited from {_truth(o.case.words[0])}: {_answers(o)}")
    errors = [f"{_truth(o.case.words[0])}: {o.error}" for o in outcomes if o.error]
    if errors:
        lines += ["", "Sessions that failed:", *errors]
    return lines


def _singles(singles: Sequence[Outcome]) -> list[str]:
    rows = []
    wrong_rows = []
    for kind in [*sorted({o.case.kind for o in singles}), "all"]:
        group = [o for o in singles if kind in ("all", o.case.kind)]
        right, wrong, identical, never, covered = 0, 0, 0, 0, 0
        begun: list[int] = []
        allowed: list[int] = []
        heard: list[int] = []
        long_first, early = 0, 0
        for o in group:
            words = o.case.words
            final = o.final
            covered += _covers(o)
            answer = o.located(relocated=False)
            if answer is None:
                # Not sure to the end: rightly so when the words stand elsewhere too (a tie).
                tie = final is not None and final.located.ambiguous and _reads_as(final.located.passage, words)
                identical += tie
                never += not tie
                continue
            at, found = answer
            if not _is_right(found, words):
                wrong += 1
                if kind == "all":
                    passage = found.located.passage
                    row = [
                        _truth(words[0]),
                        _place(passage),
                        f"{passage.similarity:.2f}",
                        f"{found.located.margin:.2f}",
                    ]
                    wrong_rows.append(row)
                continue
            right += 1
            begun.append(_begun(words, found.heard_s))
            if o.case.text_needs is not None and o.case.text_needs <= 4:
                allowed.append(begun[-1])
            heard.append(found.words_heard)
            pause_at, pause_s = o.first_segment()
            if _begun(words, pause_s) > 4:
                long_first += 1
                early += at < pause_at
        rows.append(
            [
                kind,
                str(len(group)),
                f"{right} ({100 * right / max(1, len(group)):.0f} %)",
                str(wrong),
                str(identical),
                str(never),
                f"{sum(b <= 4 for b in begun)}/{right}",
                f"{sum(b <= 4 for b in allowed)}/{len(allowed)}",
                _spread(begun),
                _spread(heard),
                f"{early}/{long_first}",
                f"{covered}/{len(group)}",
            ]
        )
    header = [
        "start",
        "sessions",
        "sure and right",
        "sure, wrong",
        "not sure: identical text elsewhere",
        "never sure, other",
        "within 4 words",
        "within 4 words, where the text allows it",
        "words begun p50/p95/max",
        "span words p50/p95/max",
        "1st segment > 4 words: before its end",
        "final = words recited",
    ]
    lines = table(header, rows)
    if wrong_rows:
        lines += ["", "Wrong sure answers:", ""]
        lines += table(["recited from", "located at", "score", "margin"], wrong_rows)
    return lines


def _jumps(jumps: Sequence[Outcome]) -> list[str]:
    rows = []
    for o in jumps:
        first, second = o.case.words[: o.case.jump_at], o.case.words[o.case.jump_at :]
        opened = o.located(relocated=False)
        start = "right" if opened is not None and _is_right(opened[1], first) else "wrong or never"
        moves = [e.located for e in o.events if e.WhichOneof("kind") == "located" and e.located.relocated]
        there = next((m for m in moves if _is_right(m, second)), None)
        sections = str(len(o.final.sections) + 1) if o.final is not None else "-"
        if there is None:
            rows.append([_truth(first[0]), _truth(second[0]), start, "no", "-", "-", str(len(moves)), sections])
            continue
        rows.append(
            [
                _truth(first[0]),
                _truth(second[0]),
                start,
                "yes",
                str(_begun(second, there.heard_s)),
                f"{there.located.passage.similarity:.2f} / {there.located.margin:.2f}",
                str(len(moves)),
                sections,
            ]
        )
    header = [
        "first",
        "then",
        "first located",
        "relocated to the second",
        "its words begun",
        "score / margin",
        "relocations",
        "sections in final",
    ]
    return table(header, rows)


def words_needed(search: PassageSearch, words: Sequence[tuple[int, int, int, str, float]]) -> int | None:
    """The fewest of the recitation's first words whose text alone the search places sure and at
    the first word (live mode's rule); None when LONG_WORDS of them leave it unsure."""
    surah, ayah, word = words[0][:3]
    first = search.index.word_of(surah, ayah, word)
    # Never more words than were recited (a two-word ayah at a surah's end stays two words).
    for count in range(1, min(LONG_WORDS, len(words)) + 1):
        result = search.search(recited(search.index, first, count))
        decision = decide(result, LocateConfig().sure_margin, MIN_SURE_WORDS)
        if decision is not None and decision.sure and decision.span.first_word == first:
            return count
    return None


def _all_right(outcome: Outcome) -> bool:
    words = outcome.case.words
    first = outcome.located(relocated=False)
    if first is None or not _is_right(first[1], words[: outcome.case.jump_at or None]):
        return False
    moved = outcome.located(relocated=True)
    return not outcome.case.jump_at or (moved is not None and _is_right(moved[1], words[outcome.case.jump_at :]))


def _late(outcome: Outcome) -> bool:
    first = outcome.located(relocated=False)
    return first is not None and _begun(outcome.case.words, first[1].heard_s) > 4


def _covers(outcome: Outcome) -> bool:
    """The final's words are the words recited (a jump's: those of the second passage)."""
    final = outcome.final
    words = outcome.case.words[outcome.case.jump_at :]
    return final is not None and _plain("".join(w.uthmani for w in final.words)) == _plain("".join(w[3] for w in words))


def _answers(outcome: Outcome) -> str:
    said = []
    for event in outcome.events:
        if event.WhichOneof("kind") == "located" and not event.located.extended:
            found = event.located
            mark = "sure" if found.located.sure else "unsure"
            mark += ", relocated" if found.relocated else ""
            said.append(
                f"{_place(found.located.passage)} ({mark}, {found.located.passage.similarity:.2f}, "
                f"{found.located.margin:.2f}, {found.heard_s:.1f} s)"
            )
    final = outcome.final
    if final is None:
        return "; ".join(said) + "; no final"
    target = final.target.WhichOneof("kind")
    return "; ".join(said) + (
        f"; final located {_place(final.located.passage)}, {len(final.words)} words ({target}) of "
        f"{len(outcome.case.words) - outcome.case.jump_at} recited"
    )


async def _sessions(address: str, api_key: str, cases: Sequence[Case], concurrency: int) -> list[Outcome]:
    import grpc

    gate = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        async def one(case: Case) -> Outcome:
            async with gate:
                return await run_session(stub, api_key, case)

        return list(await asyncio.gather(*(one(case) for case in cases)))


def _warm(address: str, api_key: str, case: Case) -> float:
    """One Assess with a locate target: it waits for the passage index (built at start)."""
    import grpc

    from services.client.options import build_request

    buffer = (np.clip(case.audio, -1, 1) * 32767).astype("<i2").tobytes()
    started = time.perf_counter()
    with grpc.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        request = build_request(_wav(buffer), surah=None, ayah=None)
        stub.Assess(request, metadata=[("authorization", f"Bearer {api_key}")], timeout=600)
    return time.perf_counter() - started


def _wav(pcm: bytes) -> bytes:
    import io

    import soundfile

    out = io.BytesIO()
    soundfile.write(out, np.frombuffer(pcm, dtype="<i2"), RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def start_mesh(root: Path) -> Any:
    """The mesh with the demo checkpoint (as bench.demo_model_eval starts it), the whole-Quran
    index warmed at start, and a cache directory kept between runs: the asr's exported graph is
    reused (exporting it on a loaded 2-core machine took over the launcher's 120 s)."""
    from services.asr.checkpoint import DEMO_CHECKPOINT
    from services.common.ports import free_port
    from services.launcher import Mesh

    env = dict(os.environ)
    env.update(
        {
            "MUAALEM_CACHE_DIR": str(root / "cache"),
            "MUAALEM_ASR_MODEL": str(DEMO_CHECKPOINT),
            "MUAALEM_ASR_DEV_FALLBACK": "",
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_SHUTDOWN_DELAY_S": "0",
            "MUAALEM_LOCATE_WARM": "true",
        }
    )
    for name in ("gateway", "asr", "alignment", "tajweed"):
        env[f"MUAALEM_{name.upper()}_PORT"] = str(free_port())
        env[f"MUAALEM_{name.upper()}_METRICS_PORT"] = str(free_port())
    env["MUAALEM_GATEWAY_HTTP_PORT"] = str(free_port())
    mesh = Mesh(env=env, log_dir=root / "logs", start_timeout_s=600)
    mesh.start()
    return mesh


def main(sessions: int, jumps: int, seed: int, concurrency: int) -> None:
    rng = random.Random(seed)
    ayahs = long_ayahs()
    cases = [short_case(rng) if k % 2 == 0 else long_case(rng, ayahs) for k in range(sessions)]
    cases += [jump_case(rng) for _ in range(jumps)]
    started = time.perf_counter()
    search = PassageSearch(build_index(workers=2))
    for case in cases:
        case.text_needs = words_needed(search, case.words[: case.jump_at or None])
    needs = [c.text_needs for c in cases if not c.jump_at]
    print(
        f"what the text allows (an index of the whole Quran, built in {time.perf_counter() - started:.0f} s): "
        f"{sum(n is not None and n <= 4 for n in needs)} of {len(needs)} single starts are placed sure by their "
        f"own first 4 words or fewer; words needed: {sorted(needs, key=lambda n: n or 99)}"
    )
    audio_s = sum(len(c.audio) / RATE + TAIL_S for c in cases)
    print(
        f"{len(cases)} live sessions ({sessions} single, {jumps} jumps), {audio_s:.0f} s of audio at real time, "
        f"{concurrency} at once; 1-min load average {load_average():.2f} at the start"
    )
    root = Path(tempfile.gettempdir()) / "muaalem-bench-locate-live"
    started = time.perf_counter()
    mesh = start_mesh(root)
    try:
        print(f"mesh serving after {time.perf_counter() - started:.0f} s")
        warm_s = _warm(mesh.address("gateway"), mesh.api_key, cases[0])
        print(f"the first Assess with a locate target (waits for the whole-Quran index): {warm_s:.0f} s\n")
        run_started = time.perf_counter()
        outcomes = asyncio.run(_sessions(mesh.address("gateway"), mesh.api_key, cases, concurrency))
        print(f"sessions done in {time.perf_counter() - run_started:.0f} s\n")
    finally:
        mesh.stop()
    print("\n".join(report(outcomes)))
    print(f"\n1-min load average at the end: {load_average():.2f}")
