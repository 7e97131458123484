"""Every environment variable is declared once, parses its default, and is in the README table."""

from __future__ import annotations

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
