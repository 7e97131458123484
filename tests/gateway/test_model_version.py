"""The model-version tracker asks the asr stage once, and not again for a while after it failed:
while asr is down, reference lookups must not each wait out their own GetModelInfo."""

from __future__ import annotations

import asyncio

from services.common.pb import asr_pb2
from services.common.ports import free_port
from services.gateway.stage_calls import ModelVersionTracker
from services.gateway.stages import GrpcStages


class CountingStages(GrpcStages):
    asks = 0

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse:
        self.asks += 1
        return await super().model_info(timeout)


def _dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


async def test_a_down_asr_is_asked_once_then_left_alone_until_the_retry_time() -> None:
    address = _dead_address()
    stages = CountingStages(address, address, address)
    tracker = ModelVersionTracker(stages)
    try:
        versions = await asyncio.gather(*(tracker.current(timeout=0.5) for _ in range(5)))
        assert versions == ["unversioned"] * 5
        assert stages.asks == 1
        assert await tracker.current(timeout=0.5) == "unversioned"
        assert stages.asks == 1
        tracker.RETRY_AFTER_S = 0.0
        await tracker.current(timeout=0.5)
        assert stages.asks == 2
    finally:
        await stages.close()
