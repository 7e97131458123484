"""Settings of the tajweed service (MUAALEM_TAJWEED_*): the calibration file, the madd policy, the frame.

Every threshold a verdict depends on lives in one calibration object (calibration.py),
fitted on the calibration split and written beside the checkpoint; MUAALEM_TAJWEED_CALIBRATION
names its file. Without one the service runs on the documented defaults and says so
(ValidateResponse.calibration). What stays an environment setting is policy, not threshold:
whether any length a rule permits is accepted, and the model's frame duration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.config import ConfigError, setting
from services.tajweed.calibration import Calibration, CalibrationError

_GROUP = "tajweed"

CALIBRATION = setting(
    "MUAALEM_TAJWEED_CALIBRATION",
    "",
    "Calibration of the tajweed verdicts: a calibration.json, or the checkpoint directory holding one (every "
    "threshold: madd and ghunnah tolerances, the uncertain band, how timing and decoded symbols combine, sifa "
    "evidence levels, silence and pauses). Fitted on surahs 80-89, never on the evaluation surahs 90-114. "
    "Unset: the documented defaults.",
    group=_GROUP,
)
MADD_ACCEPT_PERMITTED = setting(
    "MUAALEM_TAJWEED_MADD_ACCEPT_PERMITTED",
    False,
    "Accept any length the rule permits (e.g. 2/4/6 for 'arid) instead of only the one the request's "
    "MoshafAttributes chose.",
    group=_GROUP,
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
    madd_accept_permitted: bool = MADD_ACCEPT_PERMITTED.default
    frame_s: float = FRAME_S.default
    calibration: Calibration = field(default_factory=Calibration)
    # Where the calibration came from: its file, or "" for the defaults.
    calibration_source: str = ""

    def __post_init__(self) -> None:
        # Built in code (tests, tools) as well as from the environment: the same declared range holds.
        FRAME_S.check(self.frame_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TajweedConfig:
        source = CALIBRATION.get(environ)
        calibration = Calibration()
        if source:
            try:
                calibration = Calibration.load(source)
            except CalibrationError as exc:
                raise ConfigError(f"{CALIBRATION.name}={source!r}: {exc}") from exc
        return cls(
            madd_accept_permitted=MADD_ACCEPT_PERMITTED.get(environ),
            frame_s=FRAME_S.get(environ),
            calibration=calibration,
            calibration_source=source,
        )
