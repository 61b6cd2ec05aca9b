"""Dependency audit: pip-audit over the installed Python environment and `npm audit` over the dashboard's lockfile.

    python tools/audit.py [--allow-unaudited]

Exit 1 when either finds a known vulnerability: pip-audit reports every advisory it knows (PyPI's advisories carry no
severity, so any one fails), `npm audit --audit-level=high` the high and critical ones. Exit 3 when an advisory
service could not be reached (a machine whose network lets only package downloads through answers 404 to PyPI's
per-release JSON and 405 to npm's bulk advisory endpoint), even if the other one looked: an audit that could not look
is a failure of its own, never "no vulnerabilities". ``--allow-unaudited`` turns that one case into a loud warning
and exit 0 (CI's choice: ``.ci/run``); a vulnerability still fails. Each line says which packages were checked.
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
EXIT_VULNERABLE = 1
EXIT_UNAUDITED = 3
CHECKED_SHOWN = 60
"""At most this many package names are listed on a line (all of them are counted)."""


def checked_list(names: list[str]) -> str:
    """``"checked: a 1.0, b 2.0, ..."`` (sorted, the first :data:`CHECKED_SHOWN`), or nothing."""
    if not names:
        return ""
    names = sorted(names, key=str.lower)
    more = f", and {len(names) - CHECKED_SHOWN} more" if len(names) > CHECKED_SHOWN else ""
    return f"; checked: {', '.join(names[:CHECKED_SHOWN])}{more}"


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
    checked = checked_list([f"{d['name']} {d['version']}" for d in audited])
    if skipped:
        return "ok", f"pip-audit: {len(audited)} packages, no known vulnerabilities ({skipped} not on PyPI){checked}"
    return "ok", f"pip-audit: {len(audited)} packages, no known vulnerabilities{checked}"


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
    deps = report["metadata"].get("dependencies", {})
    n = deps.get("total", deps) if isinstance(deps, dict) else deps
    return "ok", (f"npm audit: {n} packages of web/package-lock.json, no high or critical vulnerabilities "
                  f"({total} lower)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allow-unaudited", action="store_true",
                        help="an advisory service that cannot be reached is a loud warning, not a failure")
    args = parser.parse_args(argv)
    vulnerable = unaudited = False
    for name, check in (("python", pip_audit), ("web", npm_audit)):
        try:
            outcome, message = check()
        except (OSError, subprocess.TimeoutExpired) as exc:
            outcome, message = "unreachable", f"{name} audit failed to run: {exc}"
        tag = {"ok": "OK", "vulnerable": "FAIL", "unreachable": "NOT AUDITED"}[outcome]
        print(f"audit {name}: {tag}: {message}")
        vulnerable |= outcome == "vulnerable"
        unaudited |= outcome == "unreachable"
    if vulnerable:
        return EXIT_VULNERABLE
    if unaudited:
        if args.allow_unaudited:
            print("audit: WARNING: NOT AUDITED (an advisory service could not be reached); allowed by "
                  "--allow-unaudited, so this is not a failure", file=sys.stderr)
            return 0
        print("audit: FAILED: an advisory service could not be reached, so some dependencies were not checked "
              f"(exit {EXIT_UNAUDITED})", file=sys.stderr)
        return EXIT_UNAUDITED
    return 0


if __name__ == "__main__":
    sys.exit(main())
