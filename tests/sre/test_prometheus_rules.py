"""deploy/prometheus and deploy/grafana as CI checks them: promtool accepts
the rules and passes their unit tests, every alert has a firing and a quiet
unit test, a severity, a summary, a description and a runbook entry that
exists, and the dashboards' JSON is what their generator writes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.grafana import dashboards

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
RULES = PROM / "yibao.rules.yml"
UNIT_TESTS = PROM / "tests" / "yibao.rules.test.yml"
RUNBOOK = REPO / "docs" / "operations.md"
# Required by issue #9, by these names.
REQUIRED = {
    "YibaoNationalStoreDown", "YibaoRegionalStoreDown", "YibaoPeerProvinceDown", "YibaoRevocationMirrorStale",
    "YibaoVerifyErrorBudgetBurn", "YibaoVerifyLatencyHigh", "YibaoDegradedVerifications",
}  # fmt: skip


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (Debian's prometheus): run scripts/setup", pytrace=False)
    return subprocess.run([exe, *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_rules() -> None:
    run = _promtool("check", "rules", str(RULES))
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_unit_tests_pass() -> None:
    run = _promtool("test", "rules", str(UNIT_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if case.get("exp_alerts") == []}
    names = {a["alert"] for a in _alerts()}
    assert REQUIRED <= names
    assert names - fired == set(), "alerts no unit test sees firing"
    assert names - quiet == set(), "alerts no unit test sees staying quiet"
    severities = {a["labels"]["severity"] for a in _alerts() if a["alert"] == "YibaoVerifyErrorBudgetBurn"}
    assert severities == {"page", "ticket"}, "the burn-rate alert pages fast burns and tickets slow ones"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces as '-'."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_alert_has_a_severity_and_a_runbook_entry() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for alert in _alerts():
        assert alert["labels"].get("severity") in {"page", "ticket"}, alert["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key), f"{alert['alert']}: no annotation {key}"
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{alert['alert']}: {url} names no runbook entry"


def test_dashboards_json_is_what_the_generator_writes() -> None:
    assert dashboards.main(["--check"]) == 0, "run: python deploy/grafana/dashboards.py"


def test_dashboard_queries_use_bounded_labels_only() -> None:
    """Panels group by labels whose values the node bounds (no caller-made values)."""
    bounded = {"outcome", "province", "grpc_method", "grpc_code", "instance", "le", "peer", "code", "store"}
    for _, rows in dashboards.DASHBOARDS.values():
        for panel in dashboards.panels(rows):
            for _, expr in panel.queries:
                for group in re.findall(r"by \(([^)]*)\)", expr):
                    labels = {x.strip() for x in group.split(",")}
                    assert labels <= bounded, (panel.title, labels - bounded)


def test_the_example_configuration_is_valid_and_loads_the_rules() -> None:
    run = _promtool("check", "config", str(PROM / "prometheus.example.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rules found" in run.stdout, "the example does not load yibao.rules.yml"
