"""The /live page in a real browser: Debian's chromium, headless, driven by Selenium, with a
fake microphone that plays a WAV file. Words take their colours while it plays, and the final
scores appear after Stop. A screenshot of the page goes to the test's temporary folder, or to
docs/live-page.png with MUAALEM_SCREENSHOT_DOCS=1 (so a test run leaves the tree as it was).

The checkpoint here is random (the real weights are not on this machine), so the gateway runs
the tone stand-in for asr (tests/gateway/live/tone_asr.py) with the real alignment and tajweed
stages, and the microphone plays al-Fatiha 2-4 in tones: known truth the page must show live."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from services.common.pb import common_pb2
from services.common.server import MeshServer
from services.gateway.server import HttpFrontEnd, build
from tests.conftest import serving
from tests.gateway.live.browser import COLOURED, NEEDS_CHROMIUM, chromium, until
from tests.gateway.live.harness import build_assessor, join, recite_words
from tests.gateway.live.servers import environ
from tests.gateway.live.tone_asr import ToneAsr

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
ROOT = Path(__file__).resolve().parents[3]
TARGET = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=1, first_ayah=2, last_ayah=4))
WORDS = 9


@pytest.fixture(scope="module")
async def recitation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    assessor = build_assessor(ToneAsr())
    audio = join(
        await recite_words(assessor, TARGET, 0, 4),
        await recite_words(assessor, TARGET, 4, 6),
        await recite_words(assessor, TARGET, 6, 9),
    )
    path = tmp_path_factory.mktemp("mic") / "fatiha-2-4-tones.wav"
    sf.write(str(path), audio, 16000, subtype="PCM_16")
    return path, len(audio) / 16000


@pytest.fixture(scope="module")
async def page_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    asr = ToneAsr()
    stages = build_assessor(asr).stages
    env = environ(tmp_path_factory.mktemp("live-page"), MUAALEM_LIVE_VAD="energy", MUAALEM_GATEWAY_MODE="mesh")
    server, _, http = build(env, stages=stages)
    assert isinstance(http, HttpFrontEnd)
    mesh: MeshServer = server
    async with serving(mesh, ready_timeout=120, grace=1):
        yield f"http://127.0.0.1:{http.port}/live"


@pytest.fixture
def browser(recitation: tuple[Path, float]) -> Iterator[Any]:
    with chromium(recitation[0]) as driver:
        yield driver


async def test_the_live_page_colours_words_and_shows_the_final_scores(
    page_url: str, browser: Any, recitation: tuple[Path, float], tmp_path: Path
) -> None:
    import asyncio
    import os

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    await asyncio.to_thread(driver.get, page_url)

    def setup() -> None:
        until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#surah option")) == 114, 20)
        Select(driver.find_element(By.ID, "surah")).select_by_value("1")
        last = driver.find_element(By.ID, "last")
        last.clear()
        last.send_keys("4")
        first = driver.find_element(By.ID, "first")
        first.clear()
        first.send_keys("2")
        driver.find_element(By.ID, "record").click()

    await asyncio.to_thread(setup)
    started = time.monotonic()

    def coloured() -> int:
        return len(driver.find_elements(By.CSS_SELECTOR, COLOURED))

    # Words are coloured while the recitation still plays (live, not only at the end).
    await asyncio.to_thread(until, lambda: len(driver.find_elements(By.CSS_SELECTOR, ".word")) == WORDS, 30)
    duration = recitation[1]
    await asyncio.to_thread(until, coloured, duration)
    # The first words are coloured before the recording ends: live.
    assert time.monotonic() - started < duration
    assert coloured() < WORDS or time.monotonic() - started < duration
    await asyncio.sleep(max(0.0, duration + 1.0 - (time.monotonic() - started)))
    await asyncio.to_thread(lambda: driver.find_element(By.ID, "record").click())
    await asyncio.to_thread(until, lambda: driver.find_element(By.ID, "scores").is_displayed(), 120)
    assert "Final scores" in driver.find_element(By.ID, "scores").text
    assert coloured() == WORDS
    # A word's details on a click.
    await asyncio.to_thread(driver.find_elements(By.CSS_SELECTOR, ".word")[3].click)
    assert driver.find_element(By.ID, "details").is_displayed()
    shots = ROOT / "docs" if os.environ.get("MUAALEM_SCREENSHOT_DOCS") == "1" else tmp_path
    assert driver.save_screenshot(str(shots / "live-page.png"))
