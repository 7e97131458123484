"""Settings of the tajweed service (MUAALEM_TAJWEED_*): tolerances, the tempo prior, thresholds.

Every number a verdict depends on is here, with the reason for its default, so that a
teacher's stricter or looser ear is a deployment setting and not a code change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.config import Setting, setting

_GROUP = "tajweed"

MADD_TOLERANCE = setting(
    "MUAALEM_TAJWEED_MADD_TOLERANCE_HARAKAT",
    0.5,
    "Default distance (harakat) between a measured madd and its expected length that still counts as right; "
    "0.5 puts the boundary half-way between two lengths. A request's options.madd_tolerance_harakat overrides it.",
    group=_GROUP,
    gt=0,
)
MADD_DISAGREEMENT = setting(
    "MUAALEM_TAJWEED_MADD_DISAGREEMENT_HARAKAT",
    1.5,
    "When the aligned duration and the decoded madd symbols differ by this many harakat or more, the madd "
    "verdict is UNCERTAIN instead of a blend of the two.",
    group=_GROUP,
    gt=0,
)
MADD_ACCEPT_PERMITTED = setting(
    "MUAALEM_TAJWEED_MADD_ACCEPT_PERMITTED",
    False,
    "Accept any length the rule permits (e.g. 2/4/6 for 'arid) instead of only the one the request's "
    "MoshafAttributes chose.",
    group=_GROUP,
)
DURATION_REL_SD = setting(
    "MUAALEM_TAJWEED_DURATION_REL_SD",
    0.15,
    "Relative spread of an aligned duration measured in harakat (Husary's haraka varies ~15 % around its "
    "mean); sets the confidence of duration evidence and its weight against the symbols.",
    group=_GROUP,
    gt=0,
)
SYMBOL_SD = setting(
    "MUAALEM_TAJWEED_SYMBOL_SD_HARAKAT",
    0.8,
    "Spread (harakat) of a length counted from decoded symbols (the model's published madd count RMSE on "
    "learners is 0.46 natural, 0.69 munfasil, 1.03 'arid).",
    group=_GROUP,
    gt=0,
)
PRIOR_HARAKA_S = setting(
    "MUAALEM_TAJWEED_PRIOR_HARAKA_S",
    0.379,
    "Prior haraka length at murattal speed, in seconds (Husary's measured mean); scaled by the recitation "
    "speed of the request and used, shrunk towards, when a recording has few short vowels.",
    group=_GROUP,
    gt=0,
)
PRIOR_LOG_SD = setting(
    "MUAALEM_TAJWEED_PRIOR_LOG_SD",
    0.35,
    "Spread of the haraka prior across reciters (natural-log units): how far the prior is trusted against "
    "the recording's own short vowels.",
    group=_GROUP,
    gt=0,
)
MIN_TEMPO_SAMPLES = setting(
    "MUAALEM_TAJWEED_MIN_TEMPO_SAMPLES",
    3,
    "Below this many measured short vowels the tempo is reported as coming from the prior.",
    group=_GROUP,
    ge=1,
)
CONSONANT_RATIO = setting(
    "MUAALEM_TAJWEED_CONSONANT_RATIO",
    0.6,
    "Prior length of a single (sakin) consonant as a fraction of the haraka, used when the recording has "
    "too few of them.",
    group=_GROUP,
    gt=0,
)
SHADDA_THRESHOLD = setting(
    "MUAALEM_TAJWEED_SHADDA_THRESHOLD",
    1.5,
    "A doubled consonant held at least this many single-consonant lengths counts as doubled.",
    group=_GROUP,
    gt=0,
)
GHUNNAH_HARAKAT = setting(
    "MUAALEM_TAJWEED_GHUNNAH_HARAKAT", 2.0, "Expected length of a ghunnah in harakat.", group=_GROUP, gt=0
)
GHUNNAH_TOLERANCE = setting(
    "MUAALEM_TAJWEED_GHUNNAH_TOLERANCE_HARAKAT",
    0.75,
    "Distance from the expected ghunnah length (harakat) that still counts as right.",
    group=_GROUP,
    gt=0,
)
QALQALAH_BURST_DB = setting(
    "MUAALEM_TAJWEED_QALQALAH_BURST_DB",
    6.0,
    "Rise of the energy after a qalqalah letter's closure (dB) that counts as an audible release.",
    group=_GROUP,
    gt=0,
)
SILENCE_DROP_DB = setting(
    "MUAALEM_TAJWEED_SILENCE_DROP_DB",
    25.0,
    "Energy this far (dB) below the recitation's loud frames counts as silence, for pauses and the final stop.",
    group=_GROUP,
    gt=0,
)
MIN_PAUSE_S = setting(
    "MUAALEM_TAJWEED_MIN_PAUSE_S",
    0.25,
    "Silence between two words at least this long is a pause (a stop); shorter gaps are a stop consonant's "
    "closure or a breathless sakt.",
    group=_GROUP,
    gt=0,
)
WAQF_FALL_DB = setting(
    "MUAALEM_TAJWEED_WAQF_FALL_DB",
    20.0,
    "At the end of a recitation the last 50 ms must be this far (dB) below its loud frames for a clean stop.",
    group=_GROUP,
    gt=0,
)
FRAME_S = setting(
    "MUAALEM_TAJWEED_FRAME_S",
    0.04,
    "Seconds per model output frame, used for decoded token frames when a request carries no alignment "
    "(the model emits one frame per 40 ms).",
    group=_GROUP,
    gt=0,
)


@dataclass(frozen=True)
class TajweedConfig:
    madd_tolerance_harakat: float = MADD_TOLERANCE.default
    madd_disagreement_harakat: float = MADD_DISAGREEMENT.default
    madd_accept_permitted: bool = MADD_ACCEPT_PERMITTED.default
    duration_rel_sd: float = DURATION_REL_SD.default
    symbol_sd_harakat: float = SYMBOL_SD.default
    prior_haraka_s: float = PRIOR_HARAKA_S.default
    prior_log_sd: float = PRIOR_LOG_SD.default
    min_tempo_samples: int = MIN_TEMPO_SAMPLES.default
    consonant_ratio: float = CONSONANT_RATIO.default
    shadda_threshold: float = SHADDA_THRESHOLD.default
    ghunnah_harakat: float = GHUNNAH_HARAKAT.default
    ghunnah_tolerance_harakat: float = GHUNNAH_TOLERANCE.default
    qalqalah_burst_db: float = QALQALAH_BURST_DB.default
    silence_drop_db: float = SILENCE_DROP_DB.default
    min_pause_s: float = MIN_PAUSE_S.default
    waqf_fall_db: float = WAQF_FALL_DB.default
    frame_s: float = FRAME_S.default

    def __post_init__(self) -> None:
        # Built in code (tests, tools) as well as from the environment: the same declared ranges hold.
        checks: tuple[tuple[Setting[Any], float], ...] = (
            (MADD_TOLERANCE, self.madd_tolerance_harakat),
            (MADD_DISAGREEMENT, self.madd_disagreement_harakat),
            (DURATION_REL_SD, self.duration_rel_sd),
            (SYMBOL_SD, self.symbol_sd_harakat),
            (PRIOR_HARAKA_S, self.prior_haraka_s),
            (PRIOR_LOG_SD, self.prior_log_sd),
            (MIN_TEMPO_SAMPLES, self.min_tempo_samples),
            (CONSONANT_RATIO, self.consonant_ratio),
            (SHADDA_THRESHOLD, self.shadda_threshold),
            (GHUNNAH_HARAKAT, self.ghunnah_harakat),
            (GHUNNAH_TOLERANCE, self.ghunnah_tolerance_harakat),
            (QALQALAH_BURST_DB, self.qalqalah_burst_db),
            (SILENCE_DROP_DB, self.silence_drop_db),
            (MIN_PAUSE_S, self.min_pause_s),
            (WAQF_FALL_DB, self.waqf_fall_db),
            (FRAME_S, self.frame_s),
        )
        for item, value in checks:
            item.check(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TajweedConfig:
        return cls(
            madd_tolerance_harakat=MADD_TOLERANCE.get(environ),
            madd_disagreement_harakat=MADD_DISAGREEMENT.get(environ),
            madd_accept_permitted=MADD_ACCEPT_PERMITTED.get(environ),
            duration_rel_sd=DURATION_REL_SD.get(environ),
            symbol_sd_harakat=SYMBOL_SD.get(environ),
            prior_haraka_s=PRIOR_HARAKA_S.get(environ),
            prior_log_sd=PRIOR_LOG_SD.get(environ),
            min_tempo_samples=MIN_TEMPO_SAMPLES.get(environ),
            consonant_ratio=CONSONANT_RATIO.get(environ),
            shadda_threshold=SHADDA_THRESHOLD.get(environ),
            ghunnah_harakat=GHUNNAH_HARAKAT.get(environ),
            ghunnah_tolerance_harakat=GHUNNAH_TOLERANCE.get(environ),
            qalqalah_burst_db=QALQALAH_BURST_DB.get(environ),
            silence_drop_db=SILENCE_DROP_DB.get(environ),
            min_pause_s=MIN_PAUSE_S.get(environ),
            waqf_fall_db=WAQF_FALL_DB.get(environ),
            frame_s=FRAME_S.get(environ),
        )
