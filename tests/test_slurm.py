"""profiles/slurm through the Snakemake SLURM executor plugin.

- test_profile_sbatch_arguments: no SLURM needed. Stand-in sbatch/sinfo/sacct/... on PATH record
  the sbatch call the plugin makes for rules run with `--profile profiles/slurm`, so the GPU,
  memory, runtime and CPU requests are checked against what the rules declare.
- test_demo_through_slurm: the whole demo through a real SLURM (with accounting) on this machine,
  e.g. the single-node cluster of `.ci/slurm_setup.sh`; skipped where there is none. Select it
  with `python -m pytest tests/test_slurm.py -k demo_through_slurm`.
"""

import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
DEMO_TIMEOUT = 1800  # s, the whole demo through SLURM (see test_demo_through_slurm)

requires_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pip install snakemake-executor-plugin-slurm)",
)


def _slurm_with_accounting() -> str | None:
    """Why a real SLURM cannot be used here, or None when sinfo, a partition and sacct answer."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM here (sinfo/sacct not on PATH; see .ci/slurm_setup.sh)"
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now-1hours"], capture_output=True, text=True,
                              timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo or sacct did not answer within 15 s"
    if nodes.returncode != 0 or not re.search(r"idle|mixed|allocated", nodes.stdout):
        return f"no usable SLURM node (sinfo: {(nodes.stdout + nodes.stderr).strip()[:200]})"
    if acct.returncode != 0:
        return f"SLURM accounting (sacct) does not answer: {acct.stderr.strip()[:200]}"
    return None


# --- sbatch arguments, without SLURM ------------------------------------------------------------

GPU_SNAKEFILE = """
rule all:
    input: "gpu.txt", "cpu.txt", "train.txt"

# named like the workflow's rule, so that the profile's per-rule settings apply to it
rule extract_features:
    output: "gpu.txt"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell: "touch {output}"

# the resources train_cichy_variant declares for the demo's tiny networks (checked against the
# real rule by tests/test_training.py::test_training_rules_in_the_dag)
rule train_cichy_variant:
    output: "train.txt"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=1,
    shell: "touch {output}"

rule cpu_job:
    output: "cpu.txt"
    threads: 1
    resources:
        gpu=0,
    shell: "touch {output}"
"""

FAKE_SBATCH = """#!/bin/sh
# records its arguments, then fails the submission (nothing is run)
echo "$*" >> "{log}"
echo "fake sbatch: submission refused on purpose" >&2
exit 1
"""


@requires_plugin
def test_profile_sbatch_arguments(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls.txt"
    scripts = {"sbatch": FAKE_SBATCH.format(log=calls)}
    for name in ("sinfo", "sacct", "squeue", "scontrol", "sacctmgr", "sshare", "scancel", "srun"):
        scripts[name] = "#!/bin/sh\nexit 0\n"  # answer, with nothing to report
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    wd = tmp_path / "wf"
    wd.mkdir()
    (wd / "Snakefile").write_text(GPU_SNAKEFILE)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SLURM_JOB_ID", None)
    # (status-check wait shortened: the default 40 s also delays the shut-down after the failure)
    res = subprocess.run(SNAKEMAKE + ["--profile", str(PROFILE), "--jobs", "3", "--retries", "0",
                                      "--slurm-init-seconds-before-status-checks", "1"],
                         cwd=wd, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out  # the stand-in sbatch refuses every job
    assert calls.exists(), "the plugin never called sbatch:\n" + out[-3000:]
    submitted = calls.read_text().splitlines()
    gpu = [c for c in submitted if "rule_extract_features" in c]
    cpu = [c for c in submitted if "rule_cpu_job" in c]
    assert len(gpu) == 1 and len(cpu) == 1, submitted
    gpu, cpu = gpu[0], cpu[0]
    # gpu=1 -> one GPU; the rule's own memory and runtime; CPUs = the rule's threads
    assert re.search(r"(--gpus[= ]1\b|--gres[= ]gpu:1\b)", gpu), gpu
    assert re.search(r"--mem 8000\b", gpu), gpu
    assert re.search(r"(-t|--time)[= ]120\b", gpu), gpu
    assert "--cpus-per-task=2" in gpu or "--cpus-per-gpu=2" in gpu, gpu
    # gpu=0 requests no GPU; a rule without memory/runtime gets the profile's defaults
    assert "--gpus" not in cpu and "gres" not in cpu, cpu
    assert re.search(r"--mem 4000\b", cpu), cpu
    assert re.search(r"(-t|--time)[= ]60\b", cpu), cpu
    assert "--cpus-per-task=1" in cpu, cpu
    # the Cichy 2016 training jobs: one GPU each
    (train,) = [c for c in submitted if "rule_train_cichy_variant" in c]
    assert re.search(r"(--gpus[= ]1\b|--gres[= ]gpu:1\b)", train), train
    assert re.search(r"--mem 4000\b", train) and re.search(r"(-t|--time)[= ]15\b", train), train
    assert "--cpus-per-task=1" in train or "--cpus-per-gpu=1" in train, train


# --- the demo through a real SLURM --------------------------------------------------------------


def _copy_workflow(dest: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "envs", "profiles"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@requires_plugin
@pytest.mark.slow
def test_demo_through_slurm(tmp_path):
    reason = _slurm_with_accounting()
    if reason:
        pytest.skip(reason)
    wd = _copy_workflow(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # the profile as a user runs it; only the plugin's first status check comes after 5 s instead
    # of 40 s (each finished job is otherwise noticed up to 40-50 s late: minutes on a 15-job run)
    # the Conwell demo only: the Cichy and ReAlnet training jobs request a GPU (gpu=1), which a
    # GPU-less test cluster cannot schedule; their sbatch requests are checked above instead
    only = wd / "conwell_only.yaml"
    only.write_text("cichy2016:\n  enabled: false\nlu2025:\n  enabled: false\n")
    cmd = SNAKEMAKE + ["--profile", "profiles/slurm", "--jobs", "4", "--configfile", str(only),
                       "--slurm-init-seconds-before-status-checks", "5"]
    log = wd / "snakemake_slurm.log"
    start = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=wd, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
        try:
            rc = proc.wait(timeout=DEMO_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # snakemake cancels its SLURM jobs on interrupt
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out = log.read_text()
            m = re.search(r"SLURM run ID: (\S+)", out)
            if m:  # whatever is still queued under this run's job name
                subprocess.run(["scancel", "--name", m.group(1)], capture_output=True, timeout=30)
            pytest.fail(f"demo through SLURM did not finish in {DEMO_TIMEOUT} s:\n{out[-3000:]}")
    elapsed = time.monotonic() - start
    out = log.read_text()
    assert rc == 0, out[-5000:]
    print(f"demo through SLURM: {elapsed:.0f} s")

    results = wd / "results" / "conwell2024"
    assert (results / "tables" / "selected_layers.csv").stat().st_size > 0
    assert (results / "figures" / "model_comparison.png").stat().st_size > 10_000
    for model in ("gtnet", "resnet18_random", "alexnet_random"):
        assert (results / "figures" / f"layer_profiles_{model}.png").stat().st_size > 10_000

    # every job ran as a SLURM job (not locally) and the accounting database recorded it
    n_jobs = _submitted_jobs(out)
    run_id = _run_id(out)
    acct = subprocess.run(["sacct", "-n", "-X", "-P", "-S", "now-1days", "--name", run_id,
                           "-o", "JobID,State,ExitCode"], capture_output=True, text=True, timeout=60)
    assert acct.returncode == 0, acct.stderr
    rows = [line.split("|") for line in acct.stdout.splitlines() if line.strip()]
    assert len(rows) == n_jobs, (n_jobs, acct.stdout)
    assert all(state == "COMPLETED" and code == "0:0" for _, state, code in rows), acct.stdout


def _run_id(out: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", out)
    assert m, "no SLURM run ID in the snakemake output:\n" + out[-3000:]
    return m.group(1)


def _submitted_jobs(out: str) -> int:
    """Jobs of the run from Snakemake's job-stats table, less the local target rule `all`."""
    m = re.search(r"^total\s+(\d+)\s*$", out, flags=re.M)
    assert m, "no job-stats table in the snakemake output:\n" + out[-3000:]
    return int(m.group(1)) - 1
