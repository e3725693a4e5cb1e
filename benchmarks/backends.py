"""Cold ``rfm-spark segment`` runs, as a user types them, with each table backend.

The Delta Lake connector (``--backend spark``, the default) against the delta-rs fallback
(``--backend delta-rs``) on the same data and snapshot: the whole command's wall time (Python
start, JVM start, the run, the summary) and the times of the run's own steps, parsed from its
progress lines. The backends alternate between repetitions; each run writes a fresh warehouse.

    .venv/bin/python benchmarks/backends.py --size 1m --repeat 3
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import END_DATE, SIZES, append_result, data_dir, ensure_data, header, load1, parser
from common import wait_quiet as wait_for_quiet_machine

BACKENDS = ("spark", "delta-rs")
_STEP = re.compile(r"^\[segment\] (?P<label>.+): done in (?P<s>[0-9.]+) s$")


def run_once(data: Path, backend: str) -> dict[str, Any]:
    """One cold command in a fresh warehouse: wall time and step times."""
    warehouse = Path(tempfile.mkdtemp(prefix="rfm-bench-wh-"))
    cmd = [
        sys.executable,
        "-m",
        "rfm_spark.cli",
        "segment",
        "--snapshot-date",
        END_DATE.isoformat(),
        "--input",
        str(data / "transactions"),
        "--warehouse",
        str(warehouse),
        "--backend",
        backend,
        "--master",
        "local[2]",
        "--spark-conf",
        "spark.sql.shuffle.partitions=8",
        "--spark-conf",
        "spark.ui.enabled=false",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    shutil.rmtree(warehouse, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{backend} run failed: {proc.stderr[-2000:]}")
    steps = {}
    for line in proc.stderr.splitlines():
        m = _STEP.match(line.strip())
        if m:
            label = m["label"].split(" to ")[0].split(" (")[0]
            steps[label] = float(m["s"])
    return {"backend": backend, "wall_s": round(wall, 2), "steps": steps, "load1": load1()}


def main() -> None:
    p = parser(__doc__, "1m")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    customers = args.customers or SIZES[args.size]
    ensure_data(customers)
    data = data_dir(customers)
    runs = []
    for i in range(args.repeat):
        order = BACKENDS if i % 2 == 0 else tuple(reversed(BACKENDS))
        for backend in order:
            wait_for_quiet_machine()
            run = run_once(data, backend)
            print(f"{backend}: {run['wall_s']} s {run['steps']}", file=sys.stderr)
            runs.append(run)
    medians = {
        b: statistics.median(r["wall_s"] for r in runs if r["backend"] == b) for b in BACKENDS
    }
    record = {
        **header("backends.py"),
        "customers": customers,
        "repeat": args.repeat,
        "note": args.note,
        "median_wall_s": medians,
        "runs": runs,
    }
    append_result("backends.jsonl", record)
    print(medians)


if __name__ == "__main__":
    main()
