"""Follow-anywhere from the two clients a learner uses (issue 25): `muaalem live FILE` with no
--surah, and the /live page's "Find my place" in headless Chromium. The gateway is real (gRPC and
HTTP on loopback, the real alignment and tajweed stages) with the tone stand-in asr (it hears
exactly the phonemes it is played) and a passage index of surahs 103-114; the recitation is
113:2-4, so nothing names the passage but the audio."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import soundfile as sf

from services.common.pb import common_pb2
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.server import HttpFrontEnd, build
from tests.conftest import serving
from tests.gateway.live.browser import COLOURED, NEEDS_CHROMIUM, chromium, until
from tests.gateway.live.harness import build_assessor, join, local_stages, recite_words
from tests.gateway.live.servers import environ
from tests.gateway.live.tone_asr import ToneAsr

pytestmark = pytest.mark.slow

SURAH_113 = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=113, first_ayah=1, last_ayah=5))
# 113:2-4 is word 4 to word 17 of the surah (113:2-5 is 19 words): 14 words, in two stretches.
RECITED = 14
DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture(scope="module")
async def recitation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    assessor = build_assessor(ToneAsr())
    audio = join(await recite_words(assessor, SURAH_113, 4, 13), await recite_words(assessor, SURAH_113, 13, 18))
    path = tmp_path_factory.mktemp("mic") / "falaq-2-4-tones.wav"
    sf.write(str(path), audio, 16000, subtype="PCM_16")
    return path, len(audio) / 16000


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[MeshServer, GatewayApp, int]]:
    # Tones are not speech to Silero: segments on energy alone, none cut at the length cap.
    env = environ(
        tmp_path_factory.mktemp("live-locate-clients"),
        MUAALEM_LIVE_VAD="energy",
        MUAALEM_LIVE_MAX_SEGMENT_S="20",
        MUAALEM_LOCATE_SURAHS="103-114",
        MUAALEM_LOCATE_WARM="true",
        MUAALEM_GATEWAY_MODE="mesh",
    )
    server, app, http = build(env, stages=local_stages(ToneAsr()))
    assert isinstance(http, HttpFrontEnd)
    async with serving(server, ready_timeout=120, grace=1):
        assert app.assessor.locator is not None
        await app.assessor.locator.search_for(None)
        yield server, app, http.port


async def test_the_cli_without_surah_finds_the_place_and_reports_what_was_recited(
    gateway: tuple[MeshServer, GatewayApp, int],
    recitation: tuple[Path, float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.cli import main

    argv = ["live", str(recitation[0]), "--realtime", "--address", f"127.0.0.1:{gateway[0].port}"]
    assert await asyncio.to_thread(main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    lines = out.splitlines()
    started = next(line for line in lines if "session " in line)
    assert "finding the passage from the first words" in started, started
    located = [line for line in lines if "] located 113:2" in line]
    assert located and "(sure," in located[0], out
    # Found before the first pause's segment event: from the open segment, as the reciter goes on.
    first_segment = next(k for k, line in enumerate(lines) if "segment 0:" in line)
    assert lines.index(located[0]) < first_segment, out
    assert "final: overall" in out
    # The final report names the passage found, sure, and no word of 113:5 as not recited.
    assert "located 113:2, sure" in out, out
    assert "Not recited" not in out, out


@NEEDS_CHROMIUM
async def test_the_page_finds_my_place_and_colours_the_words_recited(
    gateway: tuple[MeshServer, GatewayApp, int], recitation: tuple[Path, float], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    with chromium(recitation[0]) as driver:
        await asyncio.to_thread(driver.get, f"http://127.0.0.1:{gateway[2]}/live")

        def find_my_place() -> None:
            until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#surah option")) == 114, 20)
            driver.find_element(By.ID, "anywhere").click()
            # The passage selectors step aside.
            assert not driver.find_element(By.ID, "surah").is_enabled()
            driver.find_element(By.ID, "record").click()

        await asyncio.to_thread(find_my_place)
        started = time.monotonic()
        located = driver.find_element(By.ID, "located")
        await asyncio.to_thread(until, located.is_displayed, recitation[1] + 10)
        assert "Found your place: الفلق 113:2" in located.text, located.text
        # The words of the place found, 113:2-5 (19 words), take colours as recited.
        assert len(driver.find_elements(By.CSS_SELECTOR, ".word")) == 19
        await asyncio.to_thread(until, lambda: driver.find_elements(By.CSS_SELECTOR, COLOURED), recitation[1] + 10)
        await asyncio.sleep(max(0.0, recitation[1] + 1.0 - (time.monotonic() - started)))
        await asyncio.to_thread(driver.find_element(By.ID, "record").click)
        await asyncio.to_thread(until, lambda: driver.find_element(By.ID, "scores").is_displayed(), 120)
        assert "Final scores" in driver.find_element(By.ID, "scores").text
        # The final's words are those recited (113:2-4): each coloured, none after them.
        assert len(driver.find_elements(By.CSS_SELECTOR, COLOURED)) == RECITED
        shots = DOCS if os.environ.get("MUAALEM_SCREENSHOT_DOCS") == "1" else tmp_path
        assert driver.save_screenshot(str(shots / "live-page-find-my-place.png"))
