"""Run every benchmark in sequence; each writes bench/results/<name>.json and .md.

`--with-load` adds the server load runs (N = 10 and 100 devices for 10 minutes, N = 1,000 for 3 minutes: about
30 minutes) and the accelerated 24-hour soak."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHES = [("bench_generalise.py", []), ("bench_pipeline.py", ["--repeats", "2"]), ("bench_train.py", ["--repeats", "2"]),
           ("bench_accuracy.py", []), ("bench_failsafe.py", [])]
LOAD = [("bench_soak.py", ["--devices", "50", "--hours", "24", "--horizon-h", "6"]),
        ("bench_load.py", ["--devices", "10", "--seconds", "600"]),
        ("bench_load.py", ["--devices", "100", "--seconds", "600"]),
        ("bench_load.py", ["--devices", "1000", "--seconds", "180"])]
for script, args in BENCHES + (LOAD if "--with-load" in sys.argv[1:] else []):
    print(f"== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE)
