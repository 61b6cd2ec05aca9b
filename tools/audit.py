"""Dependency audit: pip-audit over the installed Python environment and `npm audit` over the dashboard's lockfile.

    python tools/audit.py [--require]

Fails (exit 1) when either finds a known vulnerability: pip-audit reports every advisory it knows (PyPI's advisories
carry no severity, so any one fails), `npm audit --audit-level=high` the high and critical ones. When an advisory
service cannot be reached (a machine whose network lets only package downloads through answers 404 to PyPI's
per-release JSON and 405 to npm's bulk advisory endpoint), the audit says so on one line and, without ``--require``,
does not fail: an audit that could not look is reported as such, never as "no vulnerabilities".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
NOT_FOUND = "Dependency not found on PyPI"


def pip_audit() -> tuple[str, str]:
    """``(outcome, message)``: outcome is ``ok``, ``vulnerable`` or ``unreachable``."""
    exe = Path(sys.executable).with_name("pip-audit")
    if not exe.exists():
        return "unreachable", "pip-audit is not installed (make install puts it in the venv)"
    proc = subprocess.run([str(exe), "--local", "--progress-spinner", "off", "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return "unreachable", f"pip-audit gave no report: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return judge_pip(report)


def judge_pip(report: dict) -> tuple[str, str]:
    """The outcome of a ``pip-audit --format json`` report."""
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    missing = [d for d in deps if NOT_FOUND in d.get("skip_reason", "") and d["name"] != "adbreak"]
    skipped = len(deps) - len(audited)
    vulnerable = [(d["name"], d["version"], v["id"], ",".join(v.get("fix_versions", [])) or "no fix")
                  for d in audited for v in d.get("vulns", [])]
    if vulnerable:
        lines = "; ".join(f"{n} {ver}: {vid} (fixed in {fix})" for n, ver, vid, fix in vulnerable)
        return "vulnerable", f"pip-audit: {len(vulnerable)} known vulnerabilit(y/ies): {lines}"
    if not audited or len(missing) > len(audited):
        return "unreachable", (f"pip-audit could not look up {len(missing)} of {len(deps)} packages "
                               "(PyPI's vulnerability API did not answer)")
    if skipped:
        return "ok", f"pip-audit: {len(audited)} packages, no known vulnerabilities ({skipped} not on PyPI)"
    return "ok", f"pip-audit: {len(audited)} packages, no known vulnerabilities"


def npm_audit() -> tuple[str, str]:
    npm = shutil.which("npm")
    if npm is None:
        return "unreachable", "npm is not installed"
    proc = subprocess.run([npm, "audit", "--json", "--audit-level=high"], cwd=WEB, capture_output=True, text=True,
                          timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return "unreachable", "npm audit gave no report"
    return judge_npm(report)


def judge_npm(report: dict) -> tuple[str, str]:
    """The outcome of an ``npm audit --json`` report (npm 7 and later)."""
    if not isinstance(report, dict) or "metadata" not in report:
        error = report.get("error") if isinstance(report, dict) else None
        summary = (error or {}).get("summary") or (report.get("message") if isinstance(report, dict) else None)
        return "unreachable", f"npm audit could not reach the advisory service: {summary or 'no advisory data'}"
    counts = report["metadata"].get("vulnerabilities", {})
    high = counts.get("high", 0) + counts.get("critical", 0)
    if high:
        names = sorted(n for n, v in report.get("vulnerabilities", {}).items() if v.get("severity") in
                       ("high", "critical"))
        return "vulnerable", f"npm audit: {high} high/critical: {', '.join(names)}"
    total = sum(counts.values()) if counts else 0
    return "ok", f"npm audit: no high or critical vulnerabilities ({total} lower)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require", action="store_true",
                        help="fail also when an advisory service cannot be reached")
    args = parser.parse_args(argv)
    status = 0
    for name, check in (("python", pip_audit), ("web", npm_audit)):
        try:
            outcome, message = check()
        except (OSError, subprocess.TimeoutExpired) as exc:
            outcome, message = "unreachable", f"{name} audit failed to run: {exc}"
        tag = {"ok": "OK", "vulnerable": "FAIL", "unreachable": "NOT AUDITED"}[outcome]
        print(f"audit {name}: {tag}: {message}")
        if outcome == "vulnerable" or (outcome == "unreachable" and args.require):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
