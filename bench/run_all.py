"""Run every benchmark in sequence; each writes bench/results/<name>.json and .md."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
for script, args in (("bench_pipeline.py", ["--repeats", "2"]), ("bench_train.py", ["--repeats", "2"]),
                     ("bench_accuracy.py", [])):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE)
