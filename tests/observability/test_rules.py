"""The alerting and recording rules: generated files are fresh, the plain file and the
PrometheusRule hold the same rules, `promtool check rules` accepts both and `promtool test rules`
passes (every alert fires on some series and stays quiet on others), and each alert's runbook
exists in docs/operations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.k8s.monitoring import generate, rules, rules_tests
from tests.conftest import REPO

MONITORING = REPO / "deploy" / "k8s" / "monitoring"
OPERATIONS = REPO / "docs" / "operations.md"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False)


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package")
    return binary


def test_generated_files_are_fresh() -> None:
    for path, text in generate.outputs().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m deploy.k8s.monitoring.generate"


def test_the_prometheus_rule_holds_the_plain_files_rules() -> None:
    plain = yaml.safe_load((MONITORING / "muaalem-rules.yaml").read_text())
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["apiVersion"] == "monitoring.coreos.com/v1" and operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"]


def test_promtool_checks_both_forms(tmp_path: Path) -> None:
    spec = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    (tmp_path / "operator-rules.yaml").write_text(yaml.safe_dump(spec))
    for path in (MONITORING / "muaalem-rules.yaml", tmp_path / "operator-rules.yaml"):
        result = _run("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {sum(len(g['rules']) for g in spec['groups'])} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    files = ["muaalem-rules.test.yaml", "muaalem-rules-slow.test.yaml"]
    result = _run("test", "rules", *files, cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2, result.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests bite: the same tests against rules whose thresholds are off fail."""
    broken = rules.rules_file()
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "MuaalemDegradedAnswers":
                rule["expr"] = rule["expr"].replace(f"> {rules.DEGRADED_SHARE}", "> 0.5")
    (tmp_path / "muaalem-rules.yaml").write_text(yaml.safe_dump(broken))
    tests = rules_tests.test_files("muaalem-rules.yaml")["1m"]
    tests["tests"] = [
        t for t in tests["tests"] if t.get("alert_rule_test", [{}])[0].get("alertname") == "MuaalemDegradedAnswers"
    ]
    (tmp_path / "muaalem-rules.test.yaml").write_text(yaml.safe_dump(tests))
    result = _run("test", "rules", "muaalem-rules.test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "MuaalemDegradedAnswers" in result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    firing = {c.alert for c in rules_tests.cases() if c.fires}
    quiet = {c.alert for c in rules_tests.cases() if not c.fires}
    names = {a.name for a in rules.alerts()}
    assert firing == names
    assert quiet == names


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def test_every_alert_links_its_runbook() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    for group in rules.groups():
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = rule["annotations"]["runbook_url"]
            path, _, anchor = url.partition("#")
            assert path == "docs/operations.md"
            assert anchor in anchors, f"{rule['alert']}: docs/operations.md has no section #{anchor}"
            assert rule["labels"]["severity"] in {"critical", "warning"}


def test_scaled_timing_keeps_the_rules_and_shortens_every_window() -> None:
    fast = rules.groups(rules.Timing(scale=1 / 60))
    slow = rules.groups()
    assert [r.get("record") or r.get("alert") for g in fast for r in g["rules"]] == [
        r.get("record") or r.get("alert") for g in slow for r in g["rules"]
    ]
    text = yaml.safe_dump(fast)
    assert "[5m]" not in text and "[1h]" not in text
    assert "[5s]" in text and "[1m]" in text
    assert all(g["interval"] == "1s" for g in fast)
