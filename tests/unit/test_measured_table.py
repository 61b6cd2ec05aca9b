"""tools/measured_table.py: the README's Measured table is the one the result files in bench/results/ make."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("measured_table", ROOT / "tools" / "measured_table.py")
mt = importlib.util.module_from_spec(spec)
sys.modules["measured_table"] = mt
spec.loader.exec_module(mt)


def section(readme: str) -> str:
    return readme[readme.index(mt.BEGIN): readme.index(mt.END)]


def test_readme_agrees_with_bench_results():
    """The check `make lint` runs: README.md's table is exactly the one bench/results/*.json make."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "measured_table.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_fails_when_a_figure_is_edited_by_hand(tmp_path):
    readme = (ROOT / "README.md").read_text()
    table = section(readme)
    assert "| 0." in table or "s / " in table
    edited = readme.replace(table, table.replace("<= 170 MB", "<= 180 MB", 1))
    assert edited != readme
    (tmp_path / "README.md").write_text(edited)
    assert mt.main(["--check", "--readme", str(tmp_path / "README.md")]) == 1
    assert mt.main(["--write", "--readme", str(tmp_path / "README.md")]) == 0
    assert (tmp_path / "README.md").read_text() == readme


def test_a_rerun_changes_the_row_and_the_machine_it_names(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results, ignore=shutil.ignore_patterns("quick"))
    data = json.loads((results / "browser.json").read_text())
    data["latency_ms"]["p95"] = 301.5
    data["machine"] = {"cpu": "Test CPU 9000", "simd": ["avx2", "avx512f", "avx512_vnni"], "cores": 64,
                       "when": "2031-01-02 03:04"}
    (results / "browser.json").write_text(json.dumps(data))
    row = next(line for line in mt.table(results).splitlines() if "`bench_browser.py`" in line)
    assert "**301.5 ms**" in row  # over the 250 ms target: in bold
    assert "Test CPU 9000 (AVX2, AVX512F, AVX512 VNNI), 64 cores, 2031-01-02" in row
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    assert mt.main(["--check", "--readme", str(readme), "--results", str(results)]) == 1


def test_a_value_no_result_file_holds_is_said_so_not_guessed(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results, ignore=shutil.ignore_patterns("quick"))
    data = json.loads((results / "pipeline.json").read_text())
    del data["edge_agent_peak_rss_mb"]
    (results / "pipeline.json").write_text(json.dumps(data))
    (results / "train.json").unlink()
    table = mt.table(results)
    agent = next(line for line in table.splitlines() if "(`agent_peak_rss`)" in line)
    assert "not in bench/results (pipeline.json has no edge_agent_peak_rss_mb)" in agent
    train = next(line for line in table.splitlines() if "`bench_train.py`" in line)
    assert "not in bench/results (no train.json)" in train
    assert "| not in bench/results | `bench_train.py` |" in train  # no machine named for a file that is not there


def test_first_write_replaces_only_the_measured_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Measured (old)\n\n| hand | written |\n\n## Licence\n\nkept\n")
    assert mt.main(["--check", "--readme", str(readme)]) == 1  # no generated table yet
    assert mt.main(["--write", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n## Measured (old)\n\n" + mt.BEGIN)
    assert "| hand | written |" not in text
    assert text.endswith(mt.END + "\n\n## Licence\n\nkept\n")
    assert mt.main(["--check", "--readme", str(readme)]) == 0


def test_a_new_kind_of_run_in_a_variant_gets_into_the_row(tmp_path):
    """bench_generalise may add runs to some variants (a device that watched the channel before): they are shown."""
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results, ignore=shutil.ignore_patterns("quick"))
    data = json.loads((results / "generalise.json").read_text())
    for variant in data["variants"].values():
        variant.pop("no model, end_hold_s 16", None)
        variant.pop("no model, a device that watched the channel before", None)
    data["variants"]["promos"]["no model, a device that watched the channel before"] = {
        **data["variants"]["promos"]["no model"], "accuracy": 0.9961, "flaps": 0}
    (results / "generalise.json").write_text(json.dumps(data))
    row = next(line for line in mt.table(results).splitlines() if "-min variants" in line)
    assert "No model, a device that watched the channel before (`--state`" in row
    assert "promos 0.9961, 0 flaps" in row
    assert "end_hold_s" not in row
