"""Every stage the gateway calls, in one place: the required ones (asr, alignment, tajweed, behind
`Stages`) and the optional prosody stage. Health, readiness, GetServerInfo, the metrics and the
dashboard all read their stage list from here, so that a stage the gateway calls cannot be missing
from what an SRE sees."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.gateway.prosody_stage import ProsodyStage
from services.gateway.stages import Stages

# Required stages: an assessment without one of them is degraded, and the gateway is not ready
# while one is down. The prosody stage is optional: without it only the comparison is dropped.
REQUIRED_STAGES = ("asr", "alignment", "tajweed")
OPTIONAL_STAGES = ("prosody",)
ALL_STAGES = REQUIRED_STAGES + OPTIONAL_STAGES


@dataclass(frozen=True)
class StageState:
    name: str
    address: str
    health: str
    required: bool


@dataclass
class StageRegistry:
    stages: Stages
    prosody: ProsodyStage | None = None

    def addresses(self) -> dict[str, str]:
        out = dict(self.stages.addresses)
        out["prosody"] = self.prosody.address if self.prosody is not None else "not configured"
        return out

    async def states(self, timeout: float) -> list[StageState]:
        """Each stage's health, asked of all at once (one slow stage costs `timeout`, not a sum)."""

        async def prosody_health() -> str:
            return await self.prosody.health(timeout) if self.prosody is not None else "NOT_CONFIGURED"

        required, prosody = await asyncio.gather(self.stages.health(timeout), prosody_health())
        health = {**required, "prosody": prosody}
        addresses = self.addresses()
        return [
            StageState(name, addresses.get(name, ""), health.get(name, "UNKNOWN"), name in REQUIRED_STAGES)
            for name in ALL_STAGES
        ]

    async def ready(self, timeout: float) -> tuple[bool, dict[str, str]]:
        """Ready when every required stage serves; the optional ones are reported, not waited for."""
        states = await self.states(timeout)
        ready = all(s.health == "SERVING" for s in states if s.required)
        return ready, {s.name: s.health for s in states}

    async def close(self) -> None:
        await self.stages.close()
        if self.prosody is not None:
            await self.prosody.close()
