"""A live session without a named passage (target.locate, issue 25): find where the reciter is,
follow them there, and follow them elsewhere when they move on to another passage.

    locating   each closed segment, and every PROBE_EVERY_S of the segment still open, is decoded
               (the asr call the follower makes) and what was heard so far is searched in the
               passage index (services/gateway/locating.py): a new answer is a `located` event,
               sure or not
    a section  once sure: from the located span's first word to FOLLOW_AHEAD_WORDS further (whole
               ayahs, within its surah; extended as the reciter nears its end), followed by a
               RecitationFollower; the segments heard while locating are followed first, on the
               decodes already made
    following  each closed segment goes to the section's follower; a stretch it finds off target
               or places doubtfully is searched again (with the like ones just before it), and so
               is a long open segment (probed from FOLLOW_FIRST_PROBE_S on): surely elsewhere
               (and, for a probe, reading unlike the words near the position), the section is
               composed and a new one begins there (`located`, relocated)
    the end    each section's Assessment covers its first word to the furthest word reached; the
               last one is the final, the earlier ones its `sections`

Why probe the segment still open: a reciter may say ten words before a pause, and the learner
should see within a few words that they were found (the issue: within four words). Why sections:
`words` events count the words of the passage followed, and a jump to another surah would
otherwise be every word of the old passage missed and every word of the new one off target.

Transport-free like the follower: the session feeds it segments and probes on its worker and
relays the events it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from services.common.errors import FailedPrecondition, InvalidArgument, MeshError, Unavailable
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.follow.compose import compose
from services.gateway.follow.follower import (
    AHEAD_WORDS,
    BEHIND_WORDS,
    Decoded,
    Followed,
    RecitationFollower,
    window_key,
)
from services.gateway.follow.locate import ON_TARGET_SIMILARITY
from services.gateway.follow.preludes import prelude_items
from services.gateway.follow.recording import Recording
from services.gateway.follow.stretch import word_key
from services.gateway.live.segmenter import Segment
from services.gateway.locating import NOTHING_FOUND, LocateService, Location, span_target
from services.gateway.reference import quran
from services.locate.index import WordPlace

log = logging.getLogger(__name__)

Event = gateway_pb2.AssessLiveResponse

# Seconds of new speech in the open segment between two provisional decodes (about a word at
# a usual pace): the search gets a longer decode each time, without waiting for a pause.
PROBE_EVERY_S = 1.0
# The fewest words of a span the live search is sure of: two words place right 83-89 % of the
# time over the whole Quran (docs/benchmarks.md), three 97 %, and a wrong early answer costs
# the learner a passage that is not theirs until the next relocation.
MIN_SURE_WORDS = 3
# Words followed beyond the located span (then to the end of that ayah, within its surah): the
# follower looks AHEAD_WORDS ahead of the position, and the section's reference stays small.
FOLLOW_AHEAD_WORDS = 40
# While following, the open segment is probed for a jump elsewhere from FOLLOW_FIRST_PROBE_S on
# (the search is sure of three words at the soonest, about 3 s of a usual pace; after a segment
# off target or placed doubtfully, from PROBE_EVERY_S), then every PROBE_EVERY_S, at most FOLLOW_PROBES times, and no
# more once the search is sure of it: a long segment on target costs one or two decodes of its
# first seconds more.
FOLLOW_FIRST_PROBE_S = 3.0
FOLLOW_PROBES = 3
# Segments off target (or placed doubtfully) in a row searched together for where the reciter
# went (a short ayah alone, two or three words, is too little to be sure of).
MAX_ASTRAY = 3
# How much better (similarity) the answer over fewer parts must read to be taken over the one
# over more (see _best_of).
SCORE_SLACK = 0.1


@dataclass(frozen=True)
class Probe:
    """A provisional decode of the segment still open (it starts at start_s), up to the audio
    taken when the worker gets to it."""

    start_s: float


@dataclass
class Heard:
    """A segment no section placed (closed while locating, or off target while following), its
    decode (None: the asr did not answer) and where the decoded window starts."""

    segment: Segment
    decoded: Decoded | None
    start_s: float


@dataclass
class Section:
    """One passage followed: its number, the answer that opened it, its follower, and the words
    followed (start to last, both included)."""

    number: int
    location: Location
    follower: RecitationFollower
    start: WordPlace
    last: WordPlace
    assessment: gateway_pb2.Assessment | None = None


# An answer, and in how many of the last parts searched it was found (the parts it spans).
Found = tuple[Location, int]


def ahead(last: WordPlace, words: int) -> WordPlace:
    """The last word of the ayah `words` words after `last`, within its surah."""
    surah, ayah = last.surah, last.ayah
    left = words - (len(quran.ayah_text(surah, ayah).uthmani_words) - 1 - last.word)
    while left > 0 and ayah < quran.ayah_count(surah):
        ayah += 1
        left -= len(quran.ayah_text(surah, ayah).uthmani_words)
    return WordPlace(surah, ayah, len(quran.ayah_text(surah, ayah).uthmani_words) - 1)


def ends_surah(place: WordPlace) -> bool:
    return place.ayah == quran.ayah_count(place.surah) and place.word == (
        len(quran.ayah_text(place.surah, place.ayah).uthmani_words) - 1
    )


def _words_heard(location: Location) -> int:
    span = location.decision.span
    return span.end_word - span.first_word


class Anywhere:
    def __init__(
        self,
        assessor: Assessor,
        request: gateway_pb2.AssessRequest,
        recording: Recording,
        transcribe_timeout: Callable[[], float | None],
    ) -> None:
        if assessor.locator is None:
            raise InvalidArgument("target.locate: locating is off on this gateway")
        self.assessor = assessor
        self.locator: LocateService = assessor.locator
        self.request = request
        self.moshaf = request.moshaf if request.HasField("moshaf") else None
        self.recording = recording
        self._timeout = transcribe_timeout
        self.sections: list[Section] = []
        # The segments no section placed: all so far while locating, the last ones off target (or
        # placed doubtfully) in a row while following. Then the best answer so far and what was
        # last announced.
        self._heard: list[Heard] = []
        self._best: tuple[Location, float] | None = None
        self._announced: tuple[int, int, tuple[int, ...]] | None = None
        self._asr_error: str | None = None
        # Windows encoded while recited, by (start ms, end ms), not yet asked for.
        self._known: dict[tuple[int, int], Decoded] = {}
        # Probing the open segment (see probe_due).
        self._probe_start: float | None = None
        self._probed_until = 0.0
        self._probes = 0
        self._probe_queued = False
        self._probing_done = False
        # Set by the follower's relocation hook while it follows a segment.
        self._jump: Found | None = None
        self._hooked = False
        self._closing = False

    @property
    def current(self) -> Section | None:
        return self.sections[-1] if self.sections else None

    # -- the segment still open -----------------------------------------------------------

    def probe_due(self, open_start_s: float | None, taken_s: float) -> Probe | None:
        """A probe of the open segment when PROBE_EVERY_S of new audio was taken since the last
        one (one waits in the worker's queue at a time: a worker behind the audio decodes the
        latest audio once, not every step it missed)."""
        if open_start_s is None or self._probe_queued:
            return None
        if open_start_s != self._probe_start:
            self._probe_start, self._probed_until = open_start_s, open_start_s
            self._probes, self._probing_done = 0, False
        first = self.current is not None and not self._probes and not self._heard
        wait_s = FOLLOW_FIRST_PROBE_S if first else PROBE_EVERY_S
        if self._probing_done or taken_s - self._probed_until < wait_s:
            return None
        self._probe_queued = True
        self._probed_until = taken_s
        return Probe(open_start_s)

    async def probe(self, probe: Probe, open_start_s: float | None) -> list[Event]:
        """The open segment decoded so far: searched while locating, checked for a jump while
        following. Nothing when the segment closed meanwhile (it comes next, whole)."""
        self._probe_queued = False
        if open_start_s != probe.start_s:
            return []
        end_s = self.recording.duration_s
        self._probed_until = max(self._probed_until, end_s)
        self._probes += 1
        decoded = await self._transcribe(probe.start_s, end_s)
        if decoded is None:
            return []
        phonemes = decoded.transcription.decode.phonemes
        if self.current is None:
            return await self._search_heard([*self._decodes(), phonemes], end_s)
        return await self._check_open(phonemes, end_s)

    async def _check_open(self, decoded: str, heard_s: float) -> list[Event]:
        """Following: an open segment that surely lies elsewhere (with the doubtful or off-target
        segments just before it), and reads unlike the words near the position, starts a new
        section now, not at its pause."""
        section = self.current
        assert section is not None
        found = await self._best_of([*self._decodes(), decoded])
        sure = found is not None and found[0].decision.sure
        if sure or self._probes >= FOLLOW_PROBES:
            self._probing_done = True
        if found is None or not sure or not self._away(found[0]):
            return []
        if await asyncio.to_thread(section.follower.fit, decoded) >= ON_TARGET_SIMILARITY:
            return []  # the search and the follower disagree: the pause decides
        location, parts = found
        return await self._relocate_to((location, parts - 1), heard_s)  # the open segment is no part yet

    # -- closed segments ------------------------------------------------------------------

    def remember(self, start_s: float, end_s: float, decoded: Decoded) -> None:
        """A window decoded before it was asked for (encoded while recited): used instead of
        calling the asr for it."""
        if self.current is not None:
            self.current.follower.remember(start_s, end_s, decoded)
        else:
            self._known[window_key(start_s, end_s)] = decoded

    async def segment(self, segment: Segment) -> list[Event]:
        if self.current is not None:
            return await self._follow(segment)
        decoded = await self._transcribe(segment.start_s, segment.end_s)
        self._heard.append(Heard(segment, decoded, segment.start_s))
        return await self._search_heard(self._decodes(), segment.end_s)

    def _decodes(self) -> list[str]:
        return [h.decoded.transcription.decode.phonemes for h in self._heard if h.decoded is not None]

    async def _follow(self, segment: Segment) -> list[Event]:
        section = self.current
        assert section is not None
        self._jump, self._hooked = None, False
        events = await section.follower.follow(segment)
        jump, self._jump = self._jump, None
        if jump is not None:
            # The new section follows this segment (and the ones off target before it that
            # the answer spans) on their decodes.
            return events + await self._relocate_to(jump, segment.end_s)
        if not self._hooked and not section.follower.carried(segment.index):
            self._heard.clear()  # placed: the reciter is back, what was astray stays off target
        return events + await self._extend_if_near(section, segment.end_s)

    async def _relocate(self, segment: Segment, start_s: float, decoded: Decoded) -> bool:
        """The follower's hook for a segment off target or placed doubtfully (see
        follower.Relocate): searched with the ones just before it that were either."""
        self._hooked = True
        self._heard.append(Heard(segment, decoded, start_s))
        del self._heard[:-MAX_ASTRAY]
        found = await self._best_of(self._decodes())
        if found is None or not found[0].decision.sure or not self._away(found[0]):
            return False
        self._jump = found
        return True

    # -- searching ------------------------------------------------------------------------

    async def _search(self, decoded: str) -> Location | None:
        if not decoded:
            return None
        try:
            return await self.locator.locate(decoded, self.moshaf, min_words=MIN_SURE_WORDS)
        except InvalidArgument:
            return None  # nothing reads like a passage (yet)

    async def _best_of(self, parts: list[str]) -> Found | None:
        """The answer for the parts heard: all of them searched together, and the last one, two
        and three (what came before may be a false start, noise the model decoded as phonemes,
        or the passage the reciter left). Of the sure answers, the one over the most parts that
        reads within SCORE_SLACK of the best (a longer query that reads clearly worse holds
        something that is not the passage: 90:2's end before 103:1 placed it at 102:8); none
        sure, the answer over all of them."""
        answers: list[Found] = []
        for count in sorted({len(parts), *range(1, min(MAX_ASTRAY, len(parts)) + 1)}, reverse=True):
            location = await self._search("".join(parts[-count:]))
            if location is not None:
                answers.append((location, count))
        sure = [answer for answer in answers if answer[0].decision.sure]
        if not sure:
            return answers[0] if answers else None
        best = max(location.decision.span.score for location, _ in sure)
        return next(answer for answer in sure if answer[0].decision.span.score >= best - SCORE_SLACK)

    async def _search_heard(self, parts: list[str], heard_s: float) -> list[Event]:
        """Locating: what was heard so far, searched; a sure answer opens the first section."""
        found = await self._best_of(parts)
        if found is None:
            return []
        location = found[0]
        self._best = (location, heard_s)
        if location.decision.sure:
            return await self._open(location, heard_s, relocated=False)
        decision = location.decision
        said = (decision.span.first_word, decision.span.end_word, tuple(c.first_word for c in decision.candidates))
        if said == self._announced:
            return []
        self._announced = said
        located = gateway_pb2.LiveLocated(
            located=location.located, section=len(self.sections), heard_s=heard_s, words_heard=_words_heard(location)
        )
        return [Event(located=located)]

    def _away(self, location: Location) -> bool:
        """Whether a place lies outside the words the follower searches around its position
        (there it places a stretch itself: a repeat, a restart, a skip)."""
        section = self.current
        assert section is not None
        start = location.decision.span.start
        found = section.follower.index_of((start.surah, start.ayah, start.word))
        position = section.follower.position
        return found is None or not position - BEHIND_WORDS <= found < position + AHEAD_WORDS

    # -- sections -------------------------------------------------------------------------

    async def _open(self, location: Location, heard_s: float, *, relocated: bool) -> list[Event]:
        """A section from the located span's first word on; the segments heard while locating
        are followed first, on the decodes already made."""
        span = location.decision.span
        last = ahead(span.last, FOLLOW_AHEAD_WORDS)
        target = span_target(span.start, last)
        reference = await self.assessor.reference(target, self.moshaf)
        request = gateway_pb2.AssessRequest()
        request.CopyFrom(self.request)
        request.target.CopyFrom(target)
        words = reference.reference.words
        follower = RecitationFollower(
            self.assessor.calls,
            self.assessor.verifier,
            request,
            reference,
            await prelude_items(self.moshaf, words),
            self.recording,
            self._timeout,
        )
        section = Section(len(self.sections), location, follower, span.start, last)
        self.sections.append(section)
        # The segment still open is what located this section, or is followed by it: no more
        # probes of it.
        self._probing_done = True
        located = gateway_pb2.LiveLocated(
            located=location.located,
            target=target,
            words=words,
            uthmani=reference.reference.uthmani,
            section=section.number,
            relocated=relocated,
            heard_s=heard_s,
            words_heard=_words_heard(location),
        )
        events = [Event(located=located)]
        heard, self._heard = self._heard, []
        # What was heard before the answer is not decoded again: it is what located it.
        for part in heard:
            if part.decoded is not None:
                follower.remember(part.start_s, part.segment.end_s, part.decoded)
            events += await follower.follow(part.segment)
        follower.relocate = self._relocate
        return events + await self._extend_if_near(section, heard_s)

    async def _relocate_to(self, found: Found, heard_s: float) -> list[Event]:
        """The section followed is over; the next one follows the segments the answer was found
        in (taken from the old section, where they were off target)."""
        current = self.current
        assert current is not None
        location, parts = found
        self._heard = self._heard[len(self._heard) - parts :] if parts > 0 else []
        for part in self._heard:
            current.follower.forget(part.segment.index)
        events = await self._close(current)
        return events + await self._open(location, heard_s, relocated=True)

    async def _extend_if_near(self, section: Section, heard_s: float) -> list[Event]:
        """More words of the surah once the follower's look-ahead reaches past the words
        followed: the earlier words keep their indexes."""
        follower = section.follower
        if follower.position + AHEAD_WORDS <= len(follower.words) or ends_surah(section.last):
            return []
        last = ahead(section.last, FOLLOW_AHEAD_WORDS)
        target = span_target(section.start, last)
        reference = await self.assessor.reference(target, self.moshaf)
        follower.extend(reference)
        section.last = last
        located = gateway_pb2.LiveLocated(
            located=section.location.located,
            target=target,
            words=reference.reference.words,
            uthmani=reference.reference.uthmani,
            section=section.number,
            extended=True,
            heard_s=heard_s,
            words_heard=_words_heard(section.location),
        )
        return [Event(located=located)]

    async def _close(self, section: Section) -> list[Event]:
        """The section is over: what it held back is judged, and its Assessment composed over
        the words it reached (the `words` of those it never gave a verdict come now, before the
        next section's words)."""
        follower = section.follower
        follower.relocate = None
        events = [*await follower.flush(), *await follower.retry_failed()]
        reached = await self._reached(section)
        try:
            composition = await compose(reached, self.assessor.verifier, self.assessor.versions.model)
        except FailedPrecondition as exc:
            if section is self.current and self._closing:
                raise  # the final's own input problem, as Assess reports it
            # An earlier section none of whose stretches could be aligned: the session goes on,
            # and its Assessment says why it holds no verdicts.
            report = common_pb2.StageReport(
                stage="alignment", status=common_pb2.STAGE_STATUS_FAILED, message=exc.message
            )
            section.assessment = gateway_pb2.Assessment(
                target=reached.request.target, located=section.location.located, stages=[report], degraded=["alignment"]
            )
            return events
        assessment = composition.assessment
        assessment.located.CopyFrom(section.location.located)
        section.assessment = assessment
        if composition.unseen is not None:
            unseen = composition.unseen
            unseen.delay_ms = (time.perf_counter() - self.recording.arrived_at(self.recording.duration_s)) * 1000
            events.append(Event(words=unseen))
        return events

    async def _reached(self, section: Section) -> Followed:
        """What the section's Assessment covers: its first word to the furthest word a stretch
        judged (or, with none judged, the span the search heard). The words after it were not
        reached, which is no mistake: the reciter stopped, or moved to another passage."""
        follower = section.follower
        followed = follower.followed()
        furthest = follower.furthest()
        if furthest is None:
            last = section.location.decision.span.last
            found = follower.index_of((last.surah, last.ayah, last.word))
            end = found + 1 if found is not None else len(follower.words)
        else:
            end = furthest + 1
        if end >= len(follower.words):
            return followed
        word = follower.words[end - 1]
        target = span_target(section.start, WordPlace(word.surah, word.ayah, word.word_in_ayah))
        reference = await self.assessor.reference(target, self.moshaf)
        if [word_key(w) for w in reference.reference.words] != [word_key(w) for w in follower.words[:end]]:
            log.warning("the reached span's words differ from those followed; the whole target is composed")
            return followed
        request = gateway_pb2.AssessRequest()
        request.CopyFrom(followed.request)
        request.target.CopyFrom(target)
        return replace(followed, request=request, reference=reference)

    # -- the end --------------------------------------------------------------------------

    async def finish(self) -> tuple[list[Event], gateway_pb2.Assessment]:
        """The recitation ended: the last section composed, the earlier ones in its `sections`.
        Never sure, the best answer is followed now (the final says it was not sure)."""
        events: list[Event] = []
        self._closing = True
        if self.current is None:
            if self._best is None:
                if self._asr_error is not None:
                    raise Unavailable(f"locating needs the asr stage's decode: {self._asr_error}")
                raise InvalidArgument(NOTHING_FOUND)
            location, heard_s = self._best
            events += await self._open(location, heard_s, relocated=False)
        section = self.current
        assert section is not None
        events += await self._close(section)
        final = section.assessment
        assert final is not None
        final.sections.extend(s.assessment for s in self.sections[:-1] if s.assessment is not None)
        return events, final

    # -- the asr --------------------------------------------------------------------------

    async def _transcribe(self, start_s: float, end_s: float) -> Decoded | None:
        """The window decoded by the asr stage, as the follower calls it; None when it did not
        answer (the follower tries again when it follows the segment)."""
        known = self._known.pop(window_key(start_s, end_s), None)
        if known is not None:
            return known
        audio = self.recording.window(start_s, end_s)
        if audio.samples.size < 1600:
            return None
        calls = self.assessor.calls
        started = time.perf_counter()
        try:
            transcription = await calls.transcribe(audio, self.request.options, self._timeout())
            await calls.observe(transcription)
        except MeshError as exc:
            self._asr_error = exc.message
            log.warning("a live locate decode failed", extra={"error": exc.message})
            return None
        return Decoded(transcription, (time.perf_counter() - started) * 1000)
