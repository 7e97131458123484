"""The `local` gateway mode: every stage inside the gateway process (one box, no mesh), and the
in-process baseline against which the benchmark measures the mesh's overhead."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner
from services.alignment.servicer import AlignmentServicer
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine
from services.asr.servicer import AsrServicer
from services.gateway.prosody_stage import LocalProsody
from services.gateway.stages import LocalStages
from services.prosody.config import ProsodyConfig
from services.prosody.servicer import ProsodyServicer
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.servicer import TajweedServicer
from services.tajweed.warmup import warm_up as tajweed_warm_up


@dataclass
class LocalMesh:
    """The three stages' servicers, with the start-up work their servers would do."""

    stages: LocalStages
    engine: AsrEngine
    aligner: Aligner
    prosody: LocalProsody | None = None

    @classmethod
    def build(cls, environ: Mapping[str, str] | None = None) -> LocalMesh:
        engine = AsrEngine(AsrConfig.from_env(environ))
        aligner = Aligner.from_config(AlignmentConfig.from_env(environ))
        validator = TajweedValidator(TajweedConfig.from_env(environ))
        stages = LocalStages(AsrServicer(engine), AlignmentServicer(aligner), TajweedServicer(validator))
        prosody = LocalProsody(ProsodyServicer(ProsodyConfig.from_env(environ)))
        return cls(stages=stages, engine=engine, aligner=aligner, prosody=prosody)

    async def start(self) -> None:
        await asyncio.gather(
            self.engine.start(),
            asyncio.to_thread(self.aligner.warm_up),
            asyncio.to_thread(tajweed_warm_up),
        )

    async def close(self) -> None:
        await self.engine.close()
