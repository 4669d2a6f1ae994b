"""Time a whole `fairdml audit` per stage at a given N, from the report's own `timings`.

Writes a seeded, clustered .npz as benchmarks/bench_metrics.py does (D = 128, ~50 samples per class, two
groups with a 20% minority drawn per sample, so each group holds nearly every class), runs `fairdml audit`
on it in a fresh process (the user's command, model card included unless --no-card) and prints the
audit's stage lines live and then a table: seconds per stage (report["timings"]), the process's wall and
CPU seconds and its peak RSS. The stages: read, knn, clustering (NMI, overall and per group), geometry
(alignments and uniformity, overall and per group), leakage, write, card (which includes card_pairs).

    nice -n 10 python benchmarks/bench_audit.py --n 100000 [--kmeans sklearn] [--no-card]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_metrics import make_embeddings  # noqa: E402 - the same data as the metrics benchmark


def write_npz(n: int, path: Path) -> None:
    """The benchmark's embeddings and labels, and a 20% "minority" group drawn per sample (seeded)."""
    import numpy as np

    x, labels = make_embeddings(n)
    groups = np.where(np.random.default_rng(1).random(n) < 0.2, "minority", "majority")
    np.savez(path, embeddings=x, labels=labels, groups=groups)


def run_audit_process(npz: Path, out: Path, kmeans: str, card: bool) -> dict:
    """`fairdml audit` in a fresh process; its wall, CPU (user + system) and peak RSS, and its report."""
    command = [sys.executable, "-c", "import sys; from fairdml.cli import main; main(sys.argv[1:])"]
    command += ["audit", str(npz), "--out", str(out), "--kmeans", kmeans] + ([] if card else ["--no-card"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=sys.stderr)  # the stage lines, live
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads((out / "report.json").read_text())
    return {"wall": wall, "cpu": cpu, "peak_mib": after.ru_maxrss / 1024, "report": report}


def format_table(result: dict) -> str:
    """Stage | seconds | share of the process's wall time, then the process's totals."""
    timings, wall = result["report"]["timings"], result["wall"]
    nested = {"card_pairs"}  # inside "card": not added to the sum
    rows = [(name, seconds) for name, seconds in timings.items()]
    accounted = sum(seconds for name, seconds in rows if name not in nested)
    rows.append(("other (imports, table, start-up)", wall - accounted))
    lines = [f"{'stage':<34} {'seconds':>8} {'share':>6}"]
    for name, seconds in rows:
        label = f"  {name} (in card)" if name in nested else name
        lines.append(f"{label:<34} {seconds:>8.1f} {seconds / wall:>6.0%}")
    lines.append(f"{'total wall':<34} {wall:>8.1f}")
    lines.append(f"{'total CPU (user + system)':<34} {result['cpu']:>8.1f}")
    lines.append(f"{'peak RSS MiB':<34} {result['peak_mib']:>8.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples (about N / 50 classes)")
    parser.add_argument("--kmeans", choices=["auto", "sklearn", "faiss"], default="auto", help="NMI k-means")
    parser.add_argument("--no-card", dest="card", action="store_false", help="skip the model card")
    parser.add_argument("--keep", default=None, metavar="DIR", help="write the npz and the audit here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        npz = folder / f"bench_audit_{args.n}.npz"
        write_npz(args.n, npz)
        result = run_audit_process(npz, folder / f"audit_{args.n}", args.kmeans, args.card)
    report, threads = result["report"], os.environ.get("OMP_NUM_THREADS")
    overall = report["overall"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; OMP_NUM_THREADS={threads}")
    print(f"fairdml audit of N = {args.n}, D = 128, {len(report['groups'])} groups, --kmeans {args.kmeans}")
    print(f"k-means that ran: {report['settings']['kmeans_backend']}; recall@1 {overall['recall@1']:.4f}, "
          f"map@r {overall['map@r']:.4f}, nmi {overall['nmi']:.4f}")  # fmt: skip
    print(format_table(result))


if __name__ == "__main__":
    main()
