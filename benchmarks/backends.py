"""Cold ``rfm-spark segment`` runs, as a user types them, with each table backend.

The Delta Lake connector (``--backend spark``, the default) against the delta-rs fallback
(``--backend delta-rs``) on the same data and snapshot: the whole command's wall time (Python
start, JVM start, the run, the summary) and the times of the run's own steps, parsed from its
progress lines. The backends alternate between repetitions; each run writes a fresh warehouse.

    .venv/bin/python benchmarks/backends.py --size 1m --repeat 3
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    END_DATE,
    SIZES,
    append_result,
    cold_command,
    data_dir,
    ensure_data,
    header,
    parser,
)
from common import wait_quiet as wait_for_quiet_machine

BACKENDS = ("spark", "delta-rs")


def run_once(data: Path, backend: str) -> dict[str, Any]:
    """One cold command in a fresh warehouse: wall time and step times."""
    warehouse = Path(tempfile.mkdtemp(prefix="rfm-bench-wh-"))
    cmd = [sys.executable, "-m", "rfm_spark.cli", "segment"]
    cmd += ["--snapshot-date", END_DATE.isoformat(), "--input", str(data / "transactions")]
    cmd += ["--warehouse", str(warehouse), "--backend", backend, "--master", "local[2]"]
    cmd += ["--spark-conf", "spark.sql.shuffle.partitions=8"]
    cmd += ["--spark-conf", "spark.ui.enabled=false"]
    try:
        return {"backend": backend, **cold_command(cmd, f"{backend} run")}
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


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
