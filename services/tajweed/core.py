"""The tajweed core: one request in, findings and the reciter's tempo out. No transport here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from services.common.errors import InvalidArgument
from services.tajweed import energy as energy_measures
from services.tajweed import explain, ghunnah, madd, qalqalah, shadda, tempo, waqf
from services.tajweed.analysis import Analysis
from services.tajweed.calibration import Calibration, CalibrationError
from services.tajweed.config import TajweedConfig
from services.tajweed.matching import match
from services.tajweed.model import (
    VALIDATORS,
    CalibrationInfo,
    Finding,
    RuleKind,
    ValidateInput,
    ValidateResult,
    Verdict,
)
from services.tajweed.phonetics import phonetic_index
from services.tajweed.rules import madd_targets
from services.tajweed.timeline import build_timeline


class TajweedValidator:
    # Calibrations sent with requests (one per model the gateway serves): a few at most.
    MAX_MODEL_CALIBRATIONS = 4

    def __init__(self, config: TajweedConfig) -> None:
        self.config = config
        calibration = config.calibration
        self.calibration_info = CalibrationInfo(
            source=config.calibration_source, digest=calibration.digest(), defaults=calibration.is_default
        )
        self._by_calibration: dict[str, TajweedValidator] = {}

    def for_calibration(self, calibration_json: str) -> TajweedValidator:
        """The validator under a calibration sent with the request (the model's own, from beside
        its checkpoint); this one when none was sent. Parsed once per distinct file."""
        if not calibration_json:
            return self
        validator = self._by_calibration.get(calibration_json)
        if validator is None:
            try:
                calibration = Calibration.from_json(calibration_json)
            except CalibrationError as exc:
                raise InvalidArgument(f"calibration_json: {exc}") from exc
            config = dataclasses.replace(self.config, calibration=calibration, calibration_source="model checkpoint")
            validator = TajweedValidator(config)
            if len(self._by_calibration) >= self.MAX_MODEL_CALIBRATIONS:
                self._by_calibration.pop(next(iter(self._by_calibration)))
            self._by_calibration[calibration_json] = validator
        return validator

    def analyse(self, request: ValidateInput, timings: dict[str, float] | None = None) -> Analysis:
        """Everything the validators share; `timings` collects the stages' milliseconds."""
        spent = timings if timings is not None else {}
        config = self.config
        reference = request.reference

        started = time.perf_counter()
        index = phonetic_index(reference)
        spent["phonetic_index"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        alignment = request.alignment
        calibration = config.calibration
        profile = None
        if request.energy is not None:
            speech = None
            if alignment is not None:
                speech = (alignment.tokens[0].start_s, alignment.tokens[-1].end_s)
            profile = energy_measures.profile(
                request.energy.db,
                request.energy.hop_s,
                speech,
                calibration.silence_drop_db,
                calibration.silence_floor_margin_db,
            )
        targets = tuple(madd_targets(reference))
        lengthened = frozenset(t.group for t in targets)
        timeline = None
        if alignment is not None:
            leen = frozenset(t.group for t in targets if t.kind == RuleKind.MADD_LEEN)
            timeline = build_timeline(reference, alignment, profile, calibration.min_pause_s, leen)
        frame_s = alignment.frame_s if alignment is not None else config.frame_s
        estimated = tempo.estimate(reference, timeline, calibration, frame_s)
        group_match = match(reference, request.decode) if request.decode is not None else None
        spent["analysis"] = (time.perf_counter() - started) * 1000
        return Analysis(
            request=request,
            config=config,
            index=index,
            timeline=timeline,
            energy=profile,
            tempo=estimated,
            match=group_match,
            madd=targets,
            lengthened=lengthened,
            frame_s=frame_s,
        )

    def validate(self, request: ValidateInput) -> ValidateResult:
        timings: dict[str, float] = {}
        analysis = self.analyse(request, timings)
        runners: dict[str, Callable[[Analysis], list[Finding]]] = {
            "madd": lambda a: madd.validate(a, request.options.madd_tolerance_harakat),
            "shadda": shadda.validate,
            "ghunnah": ghunnah.validate,
            "qalqalah": qalqalah.validate,
            "waqf": waqf.validate,
            "explain_error": explain.validate,
        }
        findings: list[Finding] = []
        for name in VALIDATORS:
            if name not in request.options.validators:
                continue
            started = time.perf_counter()
            findings.extend(runners[name](analysis))
            timings[name] = (time.perf_counter() - started) * 1000
        if not request.options.include_correct:
            findings = [f for f in findings if f.verdict != Verdict.CORRECT]
        findings.sort(key=lambda f: (f.phoneme_start, f.phoneme_end, VALIDATORS.index(f.source)))
        return ValidateResult(
            findings=tuple(findings), tempo=analysis.tempo, timings_ms=timings, calibration=self.calibration_info
        )
