"""When each reference phoneme group starts and ends in the recording.

A CTC aligner must decide where the blank frames between two tokens go (to neither token,
to the one before, split at the middle...). Durations here do not depend on that choice:
a group runs from its first token's start (its onset, where the model first emits it) to
the next group's onset, whatever lies between. The last group of the recitation runs to
its own last token's end.

Between words a reciter may pause or breathe, and onset-to-onset would then count the
pause as part of the word's last group. So a word's last group ends where a lasting
silence starts inside it (energy below the silence threshold for at least min_pause_s);
the last group of the recitation likewise ends where the speech ends (which also extends
it when the aligner leaves trailing blank frames unattributed). Silences inside a word
(a stop consonant's closure, a doubled stop) never cut a group: only word boundaries do.
Without an energy envelope nothing is trimmed: blank gaps cannot tell a pause from a
held vowel (CTC emits a long madd as spikes with long blanks between them). The last
group then ends at its last token's end, or, for a group of n tokens, n inter-onset
intervals after its onset when that is later (the last spike of a final madd is one
frame long, yet its share of the vowel is not).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tajweed.energy import EnergyProfile
from services.tajweed.model import Alignment, Reference


@dataclass(frozen=True)
class Timeline:
    onsets: tuple[float, ...]
    ends: tuple[float, ...]

    def duration(self, group: int) -> float:
        return max(0.0, self.ends[group] - self.onsets[group])

    def span(self, first_group: int, last_group: int) -> tuple[float, float]:
        return self.onsets[first_group], max(self.onsets[first_group], self.ends[last_group])


def build_timeline(
    reference: Reference, alignment: Alignment, energy: EnergyProfile | None, min_pause_s: float
) -> Timeline:
    groups = reference.groups
    tokens = alignment.tokens
    onsets = [tokens[g.start].start_s for g in groups]
    token_ends = [tokens[g.end - 1].end_s for g in groups]
    count = len(groups)
    ends: list[float] = []
    for i, group in enumerate(groups):
        last = i == count - 1
        if last and energy is None:
            ends.append(_extrapolated_end(alignment, group.start, group.end))
            continue
        nominal = token_ends[i] if last else onsets[i + 1]
        word_final = last or groups[i + 1].word_index != group.word_index
        if not word_final:
            ends.append(nominal)
            continue
        if energy is not None:
            limit = max(energy.duration_s, token_ends[i]) if last else onsets[i + 1]
            runs = energy.silent_runs(onsets[i], limit, min_pause_s)
            # At least one frame, so that a group never ends before it starts.
            floor = min(limit, onsets[i] + energy.hop_s)
            ends.append(max(floor, runs[0][0]) if runs else limit)
        else:
            ends.append(nominal)
    return Timeline(onsets=tuple(onsets), ends=tuple(ends))


def _extrapolated_end(alignment: Alignment, start: int, end: int) -> float:
    tokens = alignment.tokens
    token_end = tokens[end - 1].end_s
    n = end - start
    if n < 2:
        return token_end
    spacing = (tokens[end - 1].start_s - tokens[start].start_s) / (n - 1)
    return max(token_end, tokens[start].start_s + n * spacing)
