"""Gates that CI enforces: ruff on the Python code, snakefmt on the rules, the install and README commands."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_is_clean():
    res = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_snakefmt_is_clean():
    pytest.importorskip("snakefmt")
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow/rules").glob("*.smk"))]
    res = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_install_brings_what_the_report_needs():
    """`snakemake --report` needs pygments. The README's command 1 installs only the package's
    own dependencies (pytest, a test extra, brings pygments too and so hid its absence), so the
    snakemake requirement must carry the ``reports`` extra (or pygments be listed itself)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps]
    assert "pygments" in names or any(
        n.startswith("snakemake[") and "reports" in n[n.index("[") + 1:n.index("]")].split(",")
        for n in names
    ), deps


def test_ci_runs_the_readme_commands():
    """`.ci/run` reads the README's two numbered set-up commands; both must be there, one line
    each, command 1 making the virtual environment that command 2 reuses."""
    import re

    readme = (ROOT / "README.md").read_text().splitlines()
    cmds = {}
    for i, line in enumerate(readme):
        m = re.match(r"# ([12])\. ", line)
        if m:
            cmds[m.group(1)] = readme[i + 1]
    assert set(cmds) == {"1", "2"}, cmds
    assert cmds["1"].startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert cmds["1"].endswith("snakemake --cores 2")
    assert cmds["2"].startswith(". .venv/bin/activate && ") and cmds["2"].endswith("python -m pytest")
    assert "readme_command 1" in (ROOT / ".ci" / "run").read_text()
