"""The demo checkpoint: served by MUAALEM_ASR_DEV_FALLBACK=demo when the real weights cannot be
reached, marked demo weights in every answer, and it hears the synthetic reciter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rapidfuzz.distance import Levenshtein

from services.asr import convert
from services.asr.checkpoint import DEMO_CHECKPOINT, DEMO_MARKER, resolve_checkpoint
from services.asr.config import AsrConfig
from services.asr.devmodel import write_dev_checkpoint
from services.asr.engine import AsrEngine
from services.common.config import ConfigError
from tests.asr import support

needs_demo = pytest.mark.skipif(not (DEMO_CHECKPOINT / "model.safetensors").is_file(), reason="no demo checkpoint")


def test_the_demo_marker_makes_demo_weights_not_dev_weights(tmp_path: Path) -> None:
    directory = write_dev_checkpoint(tmp_path / "ckpt")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config.pop("muaalem_dev_checkpoint")
    config[DEMO_MARKER] = {"note": "test"}
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    files = resolve_checkpoint(str(directory))
    assert files.demo_weights and not files.dev_weights
    assert files.version.endswith("+demo")


def test_the_fallback_setting_accepts_demo_only_among_known_values() -> None:
    assert AsrConfig.from_env({"MUAALEM_ASR_DEV_FALLBACK": "demo"}).dev_fallback == "demo"
    with pytest.raises(ConfigError, match="MUAALEM_ASR_DEV_FALLBACK"):
        AsrConfig.from_env({"MUAALEM_ASR_DEV_FALLBACK": "trained"})


@needs_demo
def test_the_committed_checkpoint_is_small_and_says_how_it_was_made() -> None:
    weights = DEMO_CHECKPOINT / "model.safetensors"
    assert weights.stat().st_size < 30 * 2**20
    recipe = json.loads((DEMO_CHECKPOINT / "recipe.json").read_text(encoding="utf-8"))
    # Never the evaluation split (90-114); the latest run leaves out the calibration split too.
    assert isinstance(recipe["seed"], int) and recipe["steps"] > 0 and recipe["data"]["surahs"] in ("1-79", "1-89")
    assert (DEMO_CHECKPOINT / "train.log").is_file()
    # A run continued from earlier weights names them, and every earlier run's recipe and log are kept.
    if recipe.get("started_from"):
        earlier = sorted(DEMO_CHECKPOINT.glob("recipe-run*.json"))
        assert [p.name for p in earlier] == [f"recipe-run{n}.json" for n in range(1, len(earlier) + 1)]
        for path in earlier:
            run = json.loads(path.read_text(encoding="utf-8"))
            assert run["steps"] > 0 and run["data"]["surahs"] in ("1-79", "1-89")
            assert path.with_name(path.name.replace("recipe-", "train-").replace(".json", ".log")).is_file()
    files = resolve_checkpoint(str(DEMO_CHECKPOINT))
    assert files.demo_weights and not files.dev_weights


@needs_demo
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_with_no_real_weights_the_demo_fallback_serves_a_model_that_hears(tmp_path: Path) -> None:
    from services.demo.synth.reciter import Spec, recite

    engine = AsrEngine(support.config(
        MUAALEM_ASR_MODEL="/nonexistent/muaalem-model", MUAALEM_SEGMENTER_MODEL="/nonexistent/segmenter",
        MUAALEM_ASR_DEV_FALLBACK="demo", MUAALEM_CACHE_DIR=str(tmp_path),
    ))
    await engine.start()
    try:
        version = engine.version
        assert version.demo_weights and not version.dev_weights
        assert Path(version.name) == DEMO_CHECKPOINT
        assert convert.model_version(version).demo_weights
        # An ayah of the evaluation split (never trained on): the decode is close to what was said.
        recitation = recite(Spec(112, 1, tempo=0.3))
        result = await engine.transcribe(recitation.samples)
        assert result.model_version.demo_weights
        per = Levenshtein.distance(result.decode.phonemes, recitation.phonemes) / len(recitation.phonemes)
        assert per < 0.15, (result.decode.phonemes, recitation.phonemes)
    finally:
        await engine.close()
