"""Every environment variable is declared once, parses its default, and is in the README table."""

from __future__ import annotations

import pytest

from services.common import config
from tests.conftest import REPO


def test_readme_configuration_table_is_current() -> None:
    readme = (REPO / "README.md").read_text()
    assert config.readme_with_table(readme) == readme, (
        "the README's configuration table is stale: run `python -m services.common.config --write-readme README.md`"
    )


def test_every_setting_has_help_and_a_prefix() -> None:
    settings = config.load_all_settings()
    assert len(settings) > 50
    for name, item in settings.items():
        assert name.startswith("MUAALEM_"), name
        assert item.help.strip(), name
        assert item.get({}) == item.default


def test_bad_values_name_the_variable() -> None:
    item = config.load_all_settings()["MUAALEM_ASR_PORT"]
    try:
        item.get({"MUAALEM_ASR_PORT": "fifty"})
    except config.ConfigError as exc:
        assert "MUAALEM_ASR_PORT" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a non-integer port was accepted")


def test_ranges_are_declared_and_checked_in_one_place() -> None:
    settings = config.load_all_settings()
    port = settings["MUAALEM_ASR_PORT"]
    assert port.allowed() == "0..65535"
    with pytest.raises(config.ConfigError, match=r"MUAALEM_ASR_PORT=70000: must be within 0\.\.65535"):
        port.get({"MUAALEM_ASR_PORT": "70000"})
    with pytest.raises(config.ConfigError, match=r"MUAALEM_ASR_MAX_BATCH_SIZE=0: must be >= 1"):
        settings["MUAALEM_ASR_MAX_BATCH_SIZE"].get({"MUAALEM_ASR_MAX_BATCH_SIZE": "0"})
    with pytest.raises(config.ConfigError, match=r"MUAALEM_ASR_PRECISION='fp8': expected one of `auto`"):
        settings["MUAALEM_ASR_PRECISION"].get({"MUAALEM_ASR_PRECISION": "fp8"})
    with pytest.raises(config.ConfigError, match="MUAALEM_TAJWEED_FRAME_S=nan: must be a finite number"):
        settings["MUAALEM_TAJWEED_FRAME_S"].get({"MUAALEM_TAJWEED_FRAME_S": "nan"})
    assert settings["MUAALEM_ASR_DEVICE"].get({"MUAALEM_ASR_DEVICE": " cuda:1 "}) == "cuda:1"
    with pytest.raises(config.ConfigError, match="MUAALEM_ASR_DEVICE='gpu'"):
        settings["MUAALEM_ASR_DEVICE"].get({"MUAALEM_ASR_DEVICE": "gpu"})


def test_every_declared_default_is_allowed_and_the_table_shows_the_range() -> None:
    table = config.markdown_table()
    for name, item in config.load_all_settings().items():
        assert item.check(item.default) == item.default, name
        if item.allowed():
            assert f"| {item.allowed()} |" in table, name


def test_a_declaration_keeps_the_three_argument_form_and_rejects_a_contradiction() -> None:
    try:
        plain = config.setting("MUAALEM_TEST_PLAIN", 3, "a test setting", group="test")
        assert plain.get({"MUAALEM_TEST_PLAIN": "-5"}) == -5 and plain.allowed() == ""
        with pytest.raises(config.ConfigError, match="MUAALEM_TEST_BAD_DEFAULT=0: must be >= 1"):
            config.setting("MUAALEM_TEST_BAD_DEFAULT", 0, "a default outside its range", group="test", ge=1)
        with pytest.raises(TypeError, match="numeric range on a str"):
            config.setting("MUAALEM_TEST_BAD_KIND", "x", "a range on text", group="test", ge=1)
    finally:
        config.REGISTRY.pop("MUAALEM_TEST_PLAIN", None)
