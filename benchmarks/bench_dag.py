"""Time building the DAG (dry run) for a survey of 224 models x all layers.

Writes a temporary model table with 224 untrained timm models (real architectures
from config/models.csv, repeated under distinct names), points a copy of the demo
config at it, and times `snakemake -n` (start-up checks, DAG, job list). Jobs are
per model (extraction, scoring, figure), never per layer, so the DAG has about
3 x 224 + 6 jobs whatever the number of layers.

    python benchmarks/bench_dag.py [--n-models 224]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-models", type=int, default=224)
    args = ap.parse_args()
    table = pd.read_csv(ROOT / "config/models.csv", dtype=str, keep_default_na=False)
    random = table[(table["trained"] == "false") & (table["source"] == "timm")]
    rows = [random.iloc[i % len(random)].copy() for i in range(args.n_models)]
    for i, row in enumerate(rows):
        row["model"] = f"{row['model']}_{i:03d}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pd.DataFrame(rows).to_csv(tmp / "models.csv", index=False)
        cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
        cfg["models"]["table"] = str(tmp / "models.csv")
        cfg["models"]["use"] = [r["model"] for r in rows]
        for paper in ("cichy2016", "lu2025", "arend2018", "kuzovkin2018"):  # the Conwell survey only
            cfg.setdefault(paper, {})["enabled"] = False
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "2",
                              "--configfile", str(tmp / "config.yaml")],
                             cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:])
        raise SystemExit("dry run failed")
    total = [line for line in res.stdout.splitlines() if line.startswith("total")]
    print(f"{args.n_models} models: dry run (start-up checks + DAG) took {elapsed:.1f} s; "
          f"jobs {total[0].split()[-1] if total else '?'}")


if __name__ == "__main__":
    main()
