"""tools/audit.py judges the audit reports: a known vulnerability fails, an unreachable service is never "clean"."""

from __future__ import annotations

import importlib.util

from tests.support import ROOT

spec = importlib.util.spec_from_file_location("audit", ROOT / "tools" / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def test_pip_report_with_a_vulnerability_fails():
    report = {"dependencies": [
        {"name": "flask", "version": "3.1.3", "vulns": []},
        {"name": "jinja2", "version": "3.0.0", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]},
        {"name": "adbreak", "skip_reason": "Dependency not found on PyPI and could not be audited: adbreak (0.1.0)"},
    ]}
    outcome, message = audit.judge_pip(report)
    assert outcome == "vulnerable" and "jinja2 3.0.0: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in message


def test_pip_report_clean_and_unreachable():
    clean = {"dependencies": [{"name": "flask", "version": "3.1.3", "vulns": []}]}
    assert audit.judge_pip(clean)[0] == "ok"
    blocked = {"dependencies": [{"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: "
                                 f"{n} (1.0)"} for n in ("flask", "numpy", "adbreak")]}
    assert audit.judge_pip(blocked)[0] == "unreachable"


def test_npm_reports():
    high = {"metadata": {"vulnerabilities": {"low": 1, "moderate": 0, "high": 1, "critical": 0}},
            "vulnerabilities": {"vite": {"severity": "high"}, "x": {"severity": "low"}}}
    assert audit.judge_npm(high) == ("vulnerable", "npm audit: 1 high/critical: vite")
    low = {"metadata": {"vulnerabilities": {"low": 2, "moderate": 1, "high": 0, "critical": 0}}, "vulnerabilities": {}}
    assert audit.judge_npm(low)[0] == "ok"
    blocked = {"message": "405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk"}
    outcome, message = audit.judge_npm(blocked)
    assert outcome == "unreachable" and "405" in message


def test_main_fails_when_it_could_not_look_unless_allowed_and_always_on_findings(monkeypatch, capsys):
    monkeypatch.setattr(audit, "pip_audit", lambda: ("ok", "fine"))
    monkeypatch.setattr(audit, "npm_audit", lambda: ("unreachable", "405"))
    assert audit.main([]) == audit.EXIT_UNAUDITED == 3
    captured = capsys.readouterr()
    assert "audit web: NOT AUDITED: 405" in captured.out and "FAILED" in captured.err
    assert audit.main(["--allow-unaudited"]) == 0
    assert "WARNING: NOT AUDITED" in capsys.readouterr().err
    monkeypatch.setattr(audit, "npm_audit", lambda: ("vulnerable", "bad"))
    assert audit.main([]) == audit.EXIT_VULNERABLE == 1
    assert audit.main(["--allow-unaudited"]) == 1  # a finding is never allowed
    monkeypatch.setattr(audit, "npm_audit", lambda: ("ok", "fine"))
    assert audit.main([]) == 0


def test_the_lines_say_which_packages_were_checked():
    report = {"dependencies": [{"name": "flask", "version": "3.1.3", "vulns": []},
                               {"name": "numpy", "version": "2.4.6", "vulns": []}]}
    outcome, message = audit.judge_pip(report)
    assert outcome == "ok" and "2 packages" in message and "checked: flask 3.1.3, numpy 2.4.6" in message
    npm = {"metadata": {"vulnerabilities": {"low": 0, "moderate": 0, "high": 0, "critical": 0},
                        "dependencies": {"prod": 10, "dev": 90, "total": 100}}, "vulnerabilities": {}}
    assert "100 packages of web/package-lock.json" in audit.judge_npm(npm)[1]
