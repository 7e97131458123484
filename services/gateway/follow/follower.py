"""Following one recitation through its target, a stretch between two pauses at a time.

    segment -> asr (the window's audio, plus a held-back or looked-back word) -> locate
            -> judge the stretch (its own reference: the word before the pause in waqf form)
            -> committer (which attempt at each word stands) -> event payloads

The follower is transport-free: a live session feeds it segments as the learner pauses, the
Assess flow feeds it the segments of a whole file; both end with `finish()`, whose Assessment is
composed from the same attempts the events carried (compose.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from services.common.errors import FailedPrecondition
from services.common.pb import asr_pb2, common_pb2, gateway_pb2
from services.gateway.follow.attempts import Attempt, assemble, attempts_of, not_recited
from services.gateway.follow.committer import Committer
from services.gateway.follow.judge import judge_stretch
from services.gateway.follow.judgement import Judgement
from services.gateway.follow.locate import ON_TARGET_SIMILARITY, Item, Match, locate
from services.gateway.follow.recording import Recording
from services.gateway.follow.stretch import WordKey, word_key
from services.gateway.live.segmenter import Segment
from services.gateway.reference.service import ReferenceResult
from services.gateway.stage_calls import StageCalls
from services.gateway.stage_run import StageLedger
from services.gateway.verification import ContentVerifier

log = logging.getLogger(__name__)

# Words searched behind the position (repeats, restarts) and ahead of it (skips).
BEHIND_WORDS = 40
AHEAD_WORDS = 30
# Audio kept before a segment's first matched phoneme when the window is trimmed.
TRIM_PAD_S = 0.12
MIN_TRIM_PHONEMES = 4
# A segment shorter than this (a lone short word after a pause) is decoded together with the
# word before it, if that word ended less than LOOKBACK_MAX_S before: the model is weak on a
# lone short word. Both are judged; the earlier one gets a new attempt.
LOOKBACK_BELOW_S = 0.9
LOOKBACK_MAX_S = 3.0
# A segment's last word whose decode holds less than this share of its phonemes was cut off by
# a silence inside it (a long nasal hold or closure that the voice detector took for a pause):
# it is held back and judged with the next segment, or alone if none comes (flush).
INCOMPLETE_SHARE = 0.6
# A segment this short that cannot be placed alone is carried into the next one (a fragment of a
# word); a longer one, or a second in a row, is what it sounds like: off target.
FRAGMENT_MAX_S = 2.0
# A segment placed with a similarity under this may be another passage's: the relocation hook, if
# any, is asked (it moves the segment only when the passage search is sure it lies elsewhere).
DOUBTFUL_SIMILARITY = 0.8

Event = gateway_pb2.AssessLiveResponse


@dataclass(frozen=True)
class Decoded:
    """A window's transcription made before the follower needed it (while the passage was being
    located), with the asr call's time: the follower uses it instead of calling the asr again."""

    transcription: asr_pb2.Transcription
    spent_ms: float


# Asked with a segment off target or placed doubtfully (a skip, a rough match), the start of the
# window decoded for it and that decode: whether it lies elsewhere in the Quran and the session
# follows it there (a live session that located its passage, services/gateway/live/anywhere.py);
# the follower then leaves the segment to that passage.
Relocate = Callable[[Segment, float, Decoded], Awaitable[bool]]


def window_key(start_s: float, end_s: float) -> tuple[int, int]:
    return round(start_s * 1000), round(end_s * 1000)


@dataclass
class SegmentRecord:
    """What one segment cost and gave: its stage reports, its decode, how it was placed."""

    segment: Segment
    ledger: StageLedger = field(default_factory=StageLedger)
    # The segment's window as first decoded (offset on the recording's clock, the decode).
    decode: tuple[float, asr_pb2.Transcription] | None = None
    asr_failed: bool = False
    # The aligner's refusal of the segment's stretch (too little audio for its words).
    refused: str | None = None
    # Off-target, or nothing recognisable: its decode explains no word of the target.
    unplaced: bool = False
    # A fragment carried into the next segment (unplaced alone, judged with what follows).
    carried: bool = False
    judged: Judgement | None = None


@dataclass(frozen=True)
class Followed:
    """Everything compose() reads: the target, the attempts, and what each segment gave."""

    request: gateway_pb2.AssessRequest
    reference: ReferenceResult
    committer: Committer
    records: list[SegmentRecord]
    preludes: list[gateway_pb2.LivePrelude]
    duration_s: float


class RecitationFollower:
    def __init__(
        self,
        calls: StageCalls,
        verifier: ContentVerifier,
        request: gateway_pb2.AssessRequest,
        reference: ReferenceResult,
        preludes: Sequence[Item],
        recording: Recording,
        transcribe_timeout: Callable[[], float | None],
    ) -> None:
        self.calls = calls
        self.verifier = verifier
        self.request = request
        self.reference = reference
        self.recording = recording
        self._transcribe_timeout = transcribe_timeout
        self.words: list[common_pb2.ReferenceWord] = list(reference.reference.words)
        phonemes = reference.reference.phonemes
        self.phonemes = [phonemes[w.phoneme_start : w.phoneme_end] for w in self.words]
        self.preludes = len(preludes)
        self.items: list[Item] = list(preludes) + [Item(p, word=k) for k, p in enumerate(self.phonemes)]
        self.committer = Committer(len(self.words))
        self.position = 0
        self._records: dict[int, SegmentRecord] = {}
        self._recognised: list[gateway_pb2.LivePrelude] = []
        self._off_target = False
        self._held_from: float | None = None
        self._last_word_start: float | None = None
        self._last_word_end = 0.0
        self._looked_back = False
        self._timings: dict[str, float] = {}
        # The segment whose last word is held back for the next one (see INCOMPLETE_SHARE).
        self._held_record: SegmentRecord | None = None
        # The start of a fragment that could not be placed alone (see FRAGMENT_MAX_S).
        self._carry_from: float | None = None
        self._carried_record: SegmentRecord | None = None
        # While flush() judges what waited: nothing more is held or carried (no segment follows).
        self._flushing = False
        # Windows already decoded (see Decoded), by their (start, end) in ms; each used once.
        self._decoded: dict[tuple[int, int], Decoded] = {}
        self.relocate: Relocate | None = None

    # -- the words followed ---------------------------------------------------------------

    def extend(self, reference: ReferenceResult) -> None:
        """Follows a longer target with the same first words (a located passage followed further
        as the reciter nears its end): what was judged keeps its word indexes."""
        words = list(reference.reference.words)
        if [word_key(w) for w in words[: len(self.words)]] != [word_key(w) for w in self.words]:
            raise ValueError("an extended target must begin with the words followed so far")
        phonemes = reference.reference.phonemes
        self.reference = reference
        self.request.target.CopyFrom(reference.reference.target)
        self.words = words
        self.phonemes = [phonemes[w.phoneme_start : w.phoneme_end] for w in words]
        self.items = self.items[: self.preludes] + [Item(p, word=k) for k, p in enumerate(self.phonemes)]
        self.committer.word_count = len(words)

    def index_of(self, key: WordKey) -> int | None:
        """The index of a word (surah, ayah, word in ayah) among the words followed."""
        for k, word in enumerate(self.words):
            if word_key(word) == key:
                return k
        return None

    def furthest(self) -> int | None:
        """The furthest word a stretch judged (skipped words lie before one); None: none yet."""
        return max(self.committer.committed, default=None)

    def remember(self, start_s: float, end_s: float, decoded: Decoded) -> None:
        self._decoded[window_key(start_s, end_s)] = decoded

    def forget(self, index: int) -> None:
        """Leaves a segment out of this recitation, with the attempts it made (another passage's,
        followed elsewhere)."""
        self._records.pop(index, None)
        self.committer.drop(index)

    def carried(self, index: int) -> bool:
        """Whether a segment was a fragment carried into the next one (placed with it)."""
        record = self._records.get(index)
        return record is not None and record.carried

    def fit(self, decoded: str) -> float:
        """How well a decode reads as the words near the position (the similarity of its place
        there; 0 when nothing matches)."""
        candidates, expected = self._candidates()
        match = locate(decoded, candidates, expected)
        return match.similarity if match is not None and match.words else 0.0

    # -- one segment ----------------------------------------------------------------------

    async def follow(self, segment: Segment) -> list[Event]:
        """The events of one closed segment: prelude, off-target, words, position."""
        record = SegmentRecord(segment)
        self._records[segment.index] = record
        self._timings = {"asr": 0.0, "model": 0.0, "judge": 0.0}
        try:
            return await self._follow(record, retry=False)
        except FailedPrecondition as exc:
            # The aligner refusing a stretch (too long for its audio) must not end the
            # recitation: the segment gets an empty, degraded answer.
            log.warning("segment not judged", extra={"segment": segment.index, "error": exc.message})
            record.refused = exc.message
            record.ledger.record("alignment", common_pb2.STAGE_STATUS_FAILED, message=exc.message)
            self._held_from = None
            return [self._words_event(segment, degraded=["alignment"])]

    async def _decode_and_locate(
        self, record: SegmentRecord, start_s: float
    ) -> tuple[asr_pb2.Transcription | None, Match | None]:
        """The window from start_s to the segment's end, decoded and placed in the passage."""
        transcription = await self._transcribe(record, start_s, record.segment.end_s)
        if transcription is None:
            return None, None
        record.decode = (start_s, transcription)
        candidates, expected = self._candidates()
        match = await asyncio.to_thread(locate, transcription.decode.phonemes, candidates, expected)
        return transcription, match

    def _candidates(self) -> tuple[list[Item], int]:
        """The items a segment may match (behind and ahead of the position, the preludes before
        word 0), and the index among them of the word expected next."""
        lo = max(0, self.position - BEHIND_WORDS)
        hi = min(len(self.words), self.position + AHEAD_WORDS)
        candidates = (self.items[: self.preludes] if lo == 0 else []) + self.items[
            self.preludes + lo : self.preludes + hi
        ]
        return candidates, (self.preludes if lo == 0 else 0) + self.position - lo

    async def _follow(self, record: SegmentRecord, *, retry: bool, look_back: bool = False) -> list[Event]:
        segment = record.segment
        start_s = segment.start_s if self._held_from is None or retry else min(self._held_from, segment.start_s)
        if self._carry_from is not None and not retry:
            if segment.start_s - self._carry_from < LOOKBACK_MAX_S:
                start_s = min(start_s, self._carry_from)
            else:
                # A fragment long before this segment is not its beginning.
                self._carry_from = None
        self._looked_back = look_back and self._last_word_start is not None
        self._looked_back = self._looked_back or (
            not retry
            and self._held_from is None
            and self._carry_from is None
            and self._last_word_start is not None
            and segment.end_s - segment.start_s < LOOKBACK_BELOW_S
            and segment.start_s - self._last_word_end < LOOKBACK_MAX_S
        )
        if self._looked_back and self._last_word_start is not None:
            start_s = max(0.0, self._last_word_start - TRIM_PAD_S)
        transcription, match = await self._decode_and_locate(record, start_s)
        carried = self._carry_from is not None and not retry
        self._carry_from = None if carried else self._carry_from
        # Decoded with the word before it, a short segment that adds no word of its own is no lone
        # word: it is the head of one cut off by a silence inside it.
        adds_nothing = (
            self._looked_back
            and not look_back
            and match is not None
            and bool(match.words)
            and match.words[-1].item.word < self.position
        )
        if (
            transcription is not None
            and match is not None
            and match.words
            and (match.similarity < ON_TARGET_SIMILARITY or adds_nothing)
            and not retry
            and not carried
            and not self._flushing
            and segment.end_s - segment.start_s < FRAGMENT_MAX_S
        ):
            if adds_nothing:
                start_s, self._looked_back = segment.start_s, False
            # Too little, and fitting too poorly, to place alone: perhaps the start of a word
            # that a silence inside it cut off (a long nasal hold or closure the voice detector
            # took for a pause). Judged with the next segment, from this one's start.
            self._carry_from = start_s
            self._carried_record = record
            record.unplaced = True
            record.carried = True
            self._skip_rules(record, "a fragment: judged with the next segment")
            return [self._words_event(segment)]
        if transcription is None:
            record.asr_failed = True
            for stage in ("alignment", "tajweed"):
                record.ledger.record(stage, common_pb2.STAGE_STATUS_SKIPPED, message="no transcription")
            return [self._words_event(segment, degraded=["asr"])]
        decoded = transcription.decode.phonemes
        if match is None or (not match.words and not match.preludes):
            # Nothing recognisable: an empty verdict, so that every segment has its answer.
            record.unplaced = True
            self._skip_rules(record, "no word of the target recognised")
            return [self._words_event(segment)]
        frame_s = transcription.frame_duration_s or 0.04
        tokens = transcription.decode.tokens

        def at(decoded_index: int) -> float:
            if not tokens:
                return start_s
            token = tokens[min(decoded_index, len(tokens) - 1)]
            return start_s + token.start_frame * frame_s

        events: list[Event] = []
        if match.similarity < ON_TARGET_SIMILARITY:
            if await self._moved(record, start_s, transcription, retry=retry):
                return events
            record.unplaced = True
            events.append(await self._report_off_target(segment, decoded, match.similarity))
            if not self.request.options.run_rules_on_mismatch:
                self._skip_rules(record, "content mismatch")
                return events
            # Asked to judge it anyway (as Assess does with run_rules_on_mismatch): what the
            # reciter most likely meant is the continuation, as much of it as the audio holds.
            span = self._continuation(transcription)
            if span is not None:
                first, end = span
                events.extend(await self._judge(record, transcription, start_s, first, end, None, None, retry=retry))
                return events
            if not match.words:
                return events
        for prelude in match.preludes:
            time_span = common_pb2.TimeSpan(start_s=at(prelude.decoded_start), end_s=at(prelude.decoded_end))
            found = gateway_pb2.LivePrelude(segment_index=segment.index, kind=prelude.item.kind, time_span=time_span)
            self._recognised.append(found)
            events.append(Event(prelude=found))
        if not match.words:
            self._held_from = None
            return events
        # A stretch that matches words ahead (a skip), or matches only roughly, may be the start
        # of another passage that reads a little like them ("وَٱلْعَصْرِ" like "وَوَالِدٍ" of 90:3):
        # the hook tells.
        doubtful = match.words[0].item.word > self.position or match.similarity < DOUBTFUL_SIMILARITY
        if doubtful and await self._moved(record, start_s, transcription, retry=retry):
            return events
        first_at = at(match.words[0].decoded_start)
        # Audio before the first matched word (a prelude, a false start) is trimmed off and the
        # rest decoded again: the forced alignment must see only the stretch's words. A word
        # read after a pause starts in its starting form (a hamzat al-wasl the connected
        # reference drops): a few unmatched phonemes at the start are that, not extra speech.
        leading = match.words[0].decoded_start
        trim_at = None
        if (match.preludes or leading >= MIN_TRIM_PHONEMES) and first_at - TRIM_PAD_S > start_s:
            trim_at = first_at - TRIM_PAD_S
        held_at = None
        last = match.words[-1]
        consumed = last.decoded_end - last.decoded_start
        cut_short = consumed < INCOMPLETE_SHARE * len(last.item.phonemes) or _inside_a_double(
            last.item.phonemes, consumed
        )
        if not retry and not self._flushing and len(match.words) > 1 and (not segment.closed_by_pause or cut_short):
            # Cut at the cap, or the last word cut off inside: it may go on; judge it next time.
            held_at = max(start_s, at(last.decoded_start) - TRIM_PAD_S)
            self._held_record = record
        first, end = self._span(match)
        events.extend(await self._judge(record, transcription, start_s, first, end, trim_at, held_at, retry=retry))
        return events

    async def _moved(
        self, record: SegmentRecord, start_s: float, transcription: asr_pb2.Transcription, *, retry: bool
    ) -> bool:
        """Whether the relocation hook takes the segment to another passage (then it is no
        answer of this one; a word held back for it is judged alone when this one is flushed)."""
        relocate = None if retry or self._flushing else self.relocate
        if relocate is None:
            return False
        asr_ms = sum(r.duration_ms for r in record.ledger.reports if r.stage == "asr")
        if not await relocate(record.segment, start_s, Decoded(transcription, asr_ms)):
            return False
        del self._records[record.segment.index]
        return True

    @staticmethod
    def _span(match: Match) -> tuple[int, int]:
        return match.words[0].item.word, match.words[-1].item.word + 1

    def _continuation(self, transcription: asr_pb2.Transcription) -> tuple[int, int] | None:
        """The words from the position on that the window's frames can hold (one frame per
        phoneme, and a blank between repeated neighbours, as the aligner needs)."""
        frames = transcription.num_frames
        text = ""
        end = self.position
        while end < len(self.words) and end - self.position < AHEAD_WORDS:
            longer = text + self.phonemes[end]
            needed = len(longer) + sum(a == b for a, b in pairwise(longer))
            if needed > frames:
                break
            text, end = longer, end + 1
        return (self.position, end) if end > self.position else None

    def _skip_rules(self, record: SegmentRecord, why: str) -> None:
        for stage in ("alignment", "tajweed"):
            record.ledger.record(stage, common_pb2.STAGE_STATUS_SKIPPED, message=why)

    async def _transcribe(self, record: SegmentRecord, start_s: float, end_s: float) -> asr_pb2.Transcription | None:
        known = self._decoded.pop(window_key(start_s, end_s), None)
        if known is not None:
            record.ledger.record("asr", common_pb2.STAGE_STATUS_OK, known.spent_ms)
            record.ledger.reports[-1].timings.extend(known.transcription.timings)
            self._timings["asr"] = self._timings.get("asr", 0.0) + known.spent_ms
            model_ms = sum(t.duration_ms for t in known.transcription.timings if t.stage == "model")
            self._timings["model"] = self._timings.get("model", 0.0) + model_ms
            return known.transcription
        audio = self.recording.window(start_s, end_s)
        if audio.samples.size < 1600:
            return None
        options = self.request.options

        async def call() -> asr_pb2.Transcription:
            return await self.calls.transcribe(audio, options, self._transcribe_timeout())

        started = time.perf_counter()
        transcription = await record.ledger.run("asr", call, timings=lambda t: t.timings)
        self._timings["asr"] = self._timings.get("asr", 0.0) + (time.perf_counter() - started) * 1000
        if transcription is not None:
            await self.calls.observe(transcription)
            model_ms = sum(t.duration_ms for t in transcription.timings if t.stage == "model")
            self._timings["model"] = self._timings.get("model", 0.0) + model_ms
        return transcription

    async def _report_off_target(self, segment: Segment, decoded: str, similarity: float) -> Event:
        finder = self.verifier.finder
        passages = await asyncio.to_thread(finder.find, decoded) if finder is not None else []
        self._off_target = True
        self._held_from = None
        return Event(
            off_target=gateway_pb2.LiveOffTarget(
                segment_index=segment.index, likely_recited=[p.to_proto() for p in passages], similarity=similarity
            )
        )

    async def _judge(
        self,
        record: SegmentRecord,
        transcription: asr_pb2.Transcription,
        start_s: float,
        first: int,
        end: int,
        trim_at: float | None,
        held_at: float | None,
        *,
        retry: bool,
    ) -> list[Event]:
        segment = record.segment
        commit_end = end if held_at is None else end - 1
        if not retry:
            self._held_from = held_at
        window_start = start_s
        if trim_at is not None:
            retranscribed = await self._transcribe(record, trim_at, segment.end_s)
            if retranscribed is not None:
                transcription, window_start = retranscribed, trim_at
        reason = "advance"
        missing: list[int] = []
        if self._looked_back and first == self.position - 1:
            reason = "advance"  # the word before, decoded again as look-back, not a repeat
        elif first < self.position:
            reason = "restart" if first == 0 or self.words[first].word_in_ayah == 0 else "repeat"
        elif first > self.position and not retry:
            reason = "skip"
            missing = [k for k in range(self.position, first) if k not in self.committer.committed]
        elif self._off_target:
            reason = "follow"
        judged_at = time.perf_counter()
        judgement = await judge_stretch(
            self.calls,
            self.words,
            first,
            end,
            self.request,
            transcription,
            self.recording.window(window_start, segment.end_s),
            window_start,
            record.ledger,
            segment.index,
            whole=self.reference.reference,
        )
        self._timings["judge"] = self._timings.get("judge", 0.0) + (time.perf_counter() - judged_at) * 1000
        record.judged = judgement
        skipped = [not_recited(k, self.words[k], self.phonemes[k], segment.index, skipped=True) for k in missing]
        standing = self.committer.commit([*skipped, *attempts_of(judgement, commit_end)])
        timed = [a.word for a, _ in standing if not a.skipped and a.word.time_span.end_s > 0]
        if timed and not retry:
            self._last_word_start, self._last_word_end = timed[-1].time_span.start_s, timed[-1].time_span.end_s
        events = [self._words_event(segment, standing, degraded=record.ledger.degraded(), missing=missing)]
        if not retry:
            self._off_target = False
            self.position = commit_end
            events.append(Event(position=gateway_pb2.LivePosition(next_word=self.position, reason=reason)))
        return events

    def _words_event(
        self,
        segment: Segment,
        standing: Sequence[tuple[Attempt, Sequence[Attempt]]] = (),
        *,
        degraded: Sequence[str] = (),
        missing: Sequence[int] = (),
    ) -> Event:
        """A `words` event; its delay is measured whatever it holds (an empty one too)."""
        words, errors, findings = assemble(standing)
        delay_ms = (time.perf_counter() - self.recording.arrived_at(segment.end_s)) * 1000
        return Event(
            degraded=list(degraded),
            words=gateway_pb2.LiveWords(
                segment_index=segment.index,
                words=words,
                errors=errors,
                findings=findings,
                delay_ms=delay_ms,
                missing_words=list(missing),
                timings=[common_pb2.StageTiming(stage=k, duration_ms=v) for k, v in self._timings.items()],
            ),
        )

    # -- the end ----------------------------------------------------------------------------

    async def flush(self) -> list[Event]:
        """What waited for a next segment that never came, so that the recording's end loses no
        word: a held word judged on its own (from where it started to its segment's end), and a
        last fragment decoded again with the word before it (the end of the recitation, cut off
        from it by a silence inside a word)."""
        events: list[Event] = []
        held, self._held_record = self._held_record, None
        if held is not None and self._held_from is not None:
            events += await self._refollow(held, look_back=False)
        self._held_from = None
        carried, self._carried_record = self._carried_record, None
        if carried is not None and self._carry_from is not None:
            self._carry_from = None
            events += await self._refollow(carried, look_back=True)
        self._carry_from = None
        return events

    async def _refollow(self, earlier: SegmentRecord, *, look_back: bool) -> list[Event]:
        record = SegmentRecord(earlier.segment)
        self._timings = {"asr": 0.0, "model": 0.0, "judge": 0.0}
        self._flushing = True
        try:
            events = await self._follow(record, retry=False, look_back=look_back)
        except FailedPrecondition as exc:
            record.ledger.record("alignment", common_pb2.STAGE_STATUS_FAILED, message=exc.message)
            events = []
        finally:
            self._flushing = False
        # One segment, judged in two steps: its stage reports stay together.
        earlier.ledger.reports.extend(record.ledger.reports)
        return events

    async def retry_failed(self) -> list[Event]:
        """Segments the asr could not decode (it was down, not late: a late stage is not asked
        twice) are tried once more: a stage that was briefly down costs the final nothing. The
        reciter has moved on, so a retried segment moves no position and marks no skip."""
        events: list[Event] = []
        for index in sorted(self._records):
            failed = self._records[index]
            if not failed.asr_failed or _late(failed.ledger):
                continue
            record = SegmentRecord(failed.segment)
            self._timings = {"asr": 0.0, "model": 0.0, "judge": 0.0}
            try:
                retried = await self._follow(record, retry=True)
            except FailedPrecondition as exc:
                record.refused = exc.message
                record.ledger.record("alignment", common_pb2.STAGE_STATUS_FAILED, message=exc.message)
                retried = []
            if not record.asr_failed:
                self._records[index] = record
                events.extend(e for e in retried if e.WhichOneof("kind") != "position")
        return events

    def followed(self) -> Followed:
        return Followed(
            request=self.request,
            reference=self.reference,
            committer=self.committer,
            records=[self._records[k] for k in sorted(self._records)],
            preludes=list(self._recognised),
            duration_s=self.recording.duration_s,
        )


def _inside_a_double(phonemes: str, consumed: int) -> bool:
    """Whether a word decoded up to `consumed` of its phonemes stopped between the two copies of
    a doubled letter (a shadda on a stop: its held closure is silence, which the voice detector
    takes for a pause, and the release comes after it). Within one phoneme either way, since
    the decode's count is not exact; a stop at a word's end (waqf) drops a vowel, not a copy."""
    for k in (consumed - 1, consumed, consumed + 1):
        if 0 < k < len(phonemes) and phonemes[k] == phonemes[k - 1] and phonemes[k] not in _VOWELS:
            return k < len(phonemes) - 1 or consumed < len(phonemes)
    return False


_VOWELS = frozenset("َُِاۦۥ۪ـ")


def _late(ledger: StageLedger) -> bool:
    return any(r.stage == "asr" and r.status == common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED for r in ledger.reports)
