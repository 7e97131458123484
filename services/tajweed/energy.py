"""Short-time energy of a recording, and the measures the tajweed checks read from it.

`energy_envelope` (in services.common.energy, shared with the prosody stage) is what the
gateway computes while the ASR runs.

Levels are relative to the recording itself: silence is a frame far below the loud
frames of the recitation, so the checks do not depend on the microphone's gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.energy import FLOOR_DB, energy_envelope

__all__ = ["FLOOR_DB", "Burst", "EnergyProfile", "burst", "energy_envelope", "profile", "tail_fall_db"]


@dataclass(frozen=True)
class EnergyProfile:
    """An envelope with the recording's loud level and silence threshold."""

    db: npt.NDArray[np.float32]
    hop_s: float
    loud_db: float
    silence_db: float

    @property
    def duration_s(self) -> float:
        return len(self.db) * self.hop_s

    def frame(self, t: float) -> int:
        return int(np.clip(round(t / self.hop_s), 0, len(self.db)))

    def window(self, start_s: float, end_s: float) -> npt.NDArray[np.float32]:
        return self.db[self.frame(start_s) : max(self.frame(start_s), self.frame(end_s))]

    def silent_runs(self, start_s: float, end_s: float, min_s: float) -> list[tuple[float, float]]:
        """Runs of silence at least min_s long inside [start_s, end_s), in seconds."""
        lo, hi = self.frame(start_s), self.frame(end_s)
        if hi <= lo:
            return []
        quiet = np.concatenate(([False], self.db[lo:hi] < self.silence_db, [False]))
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        runs = edges.reshape(-1, 2)
        min_frames = max(1, round(min_s / self.hop_s))
        return [
            ((lo + int(a)) * self.hop_s, (lo + int(b)) * self.hop_s) for a, b in runs if b - a >= min_frames
        ]


# A 25 ms RMS of steady noise wanders a few dB around its mean: a threshold closer to the
# floor than this would break a pause into pieces.
NOISE_SPREAD_DB = 6.0
# Never call anything within this of the loud level silence, however noisy the recording.
_MIN_DROP_DB = 10.0


def profile(
    db: npt.NDArray[np.float32],
    hop_s: float,
    speech: tuple[float, float] | None,
    silence_drop_db: float,
    floor_margin_db: float,
) -> EnergyProfile:
    """Loud level (95th percentile over the speech span) and the silence threshold below it.

    Silence is where the recording falls to its noise floor (5th percentile of the whole
    envelope), not merely far under the voice: quiet speech (a fricative, a held closure,
    a soft madd tail) can lie 30 dB under the vowels and is still speech. The threshold is
    `silence_drop_db` under the loud level but no more than `floor_margin_db` above the floor;
    at least 6 dB over the floor (noise wanders), and never within 10 dB of the loud level.
    """
    if len(db) == 0:
        return EnergyProfile(db=db, hop_s=hop_s, loud_db=FLOOR_DB, silence_db=FLOOR_DB)
    if speech is not None:
        lo = int(np.clip(round(speech[0] / hop_s), 0, len(db) - 1))
        hi = int(np.clip(round(speech[1] / hop_s), lo + 1, len(db)))
        region = db[lo:hi]
    else:
        region = db
    loud = float(np.percentile(region, 95))
    floor = float(np.percentile(db, 5))
    near_floor = min(loud - silence_drop_db, floor + floor_margin_db)
    silence = min(loud - _MIN_DROP_DB, max(floor + NOISE_SPREAD_DB, near_floor))
    return EnergyProfile(db=db, hop_s=hop_s, loud_db=loud, silence_db=silence)


# How long after the energy first rises out of the closure the release's peak is looked
# for: a qalqalah bounce is a brief vowel-like burst; a later peak is the next sound.
RELEASE_LOOK_S = 0.06


@dataclass(frozen=True)
class Burst:
    """A closure (energy minimum) and the release after it, in dB."""

    closure_db: float
    # The loudest frame within RELEASE_LOOK_S of where the energy first rises NOISE_SPREAD_DB
    # out of the closure. Nothing rising after it is no release at all, however loud the
    # letter: its release is then as quiet as silence (the closure, or the silence level).
    release_db: float
    closure_s: float
    loud_db: float

    @property
    def rise_db(self) -> float:
        return max(0.0, self.release_db - self.closure_db)

    @property
    def rose(self) -> bool:
        """Whether the energy left the closure at all (by more than steady noise wanders)."""
        return self.rise_db >= NOISE_SPREAD_DB

    @property
    def level_db(self) -> float:
        """The release's peak against the recitation's loud level (0: as loud as its vowels)."""
        return self.release_db - self.loud_db


def burst(energy: EnergyProfile, start_s: float, end_s: float) -> Burst | None:
    """The closure inside [start_s, end_s) and the release out of it.

    For a qalqalah letter the window is the letter's segment: the closure is the dip before
    the largest rise, and the release is read in the first RELEASE_LOOK_S after the energy
    leaves the closure, so that the next sound (a sonorant, or the vowel after a glottal
    stop, rising later and slower) is not taken for it. Its level is measured against the
    recitation's loud level, not the closure: under a noise floor the closure is the noise,
    and a rise from it says more about the noise than about the release (a bounce reaches
    about the level of the vowels; a letter held without release, or a release skipped
    into the next consonant, stays well under them). A letter that only decays has no
    rise (nor does a letter held at full voice, which is no stop): its release is taken as
    silent. None below two frames.
    """
    lo = energy.frame(start_s)
    window = energy.window(start_s, end_s).astype(np.float64)
    if len(window) < 2:
        return None
    running_min = np.minimum.accumulate(window)
    peak = int(np.argmax(window - running_min))
    low = int(np.argmin(window[: peak + 1]))
    closure = float(window[low])
    rising = np.flatnonzero(window[low + 1 :] >= closure + NOISE_SPREAD_DB)
    release = min(closure, energy.silence_db)
    if len(rising):
        onset = lo + low + 1 + int(rising[0])
        look = max(1, round(RELEASE_LOOK_S / energy.hop_s))
        release = float(np.max(energy.db[onset : onset + look]))
    return Burst(closure_db=closure, release_db=release, closure_s=(lo + low) * energy.hop_s, loud_db=energy.loud_db)


def tail_fall_db(energy: EnergyProfile, tail_s: float = 0.05) -> float:
    """How far the last `tail_s` of the recording (its median frame) is below its loud level, in dB."""
    frames = max(1, round(tail_s / energy.hop_s))
    tail = energy.db[-frames:]
    return energy.loud_db - float(np.median(tail)) if len(tail) else 0.0
