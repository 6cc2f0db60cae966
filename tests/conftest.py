"""Shared fixtures: a copy of the workflow, and the default demo run once per test session."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PAPERS = ("conwell2024", "cichy2016", "lu2025", "arend2018", "kuzovkin2018")


def copy_workflow(dest: Path) -> Path:
    """Copy what a user's checkout holds (no results, no demo resources) into ``dest``."""
    for name in ("Snakefile", "workflow", "config", "envs", "profiles"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(args, cwd, timeout=600, env=None):
    return subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


#: Imported by every Python process started with :func:`no_network_env` (as ``sitecustomize``):
#: any attempt to resolve a host name or open a non-local socket raises.
NO_NETWORK_SITECUSTOMIZE = """
import socket

_MESSAGE = "network access blocked by the brainalign tests: nothing may be fetched at run time"
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _blocked(*args, **kwargs):
    raise OSError(_MESSAGE)


def _local_only(method):
    def wrapper(self, address, *args, **kwargs):
        if self.family == getattr(socket, "AF_UNIX", None):
            return method(self, address, *args, **kwargs)
        raise OSError(_MESSAGE + f" (connect to {address!r})")
    return wrapper


socket.socket.connect = _local_only(_connect)
socket.socket.connect_ex = _local_only(_connect_ex)
socket.getaddrinfo = _blocked
socket.create_connection = _blocked
"""


def no_network_env(folder: Path) -> dict:
    """Environment whose Python processes (Snakemake and every job it starts) cannot reach the
    network: ``folder/sitecustomize.py`` is put first on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NO_NETWORK_SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The default demo (`snakemake --cores 2`), run once; returns the working directory.

    ``BRAINALIGN_DEMO_PAPERS=cichy2016,lu2025`` runs only those papers' parts (for
    development; tests of the other papers then skip).

    ``BRAINALIGN_DEMO_DIR=<checkout>`` tests the demo in that working directory instead of a
    fresh copy: e.g. the checkout where the README's command 1 ran the demo, on another CPU
    configuration (``.ci/run`` does this to check every planted answer a second time).
    Snakemake runs there too, so whatever is missing or out of date is (re)made first.

    The run has no network (:func:`no_network_env`): the demo must not fetch anything.
    """
    given = os.environ.get("BRAINALIGN_DEMO_DIR")
    if given:
        wd = Path(given).resolve()
        if not (wd / "Snakefile").is_file():
            raise RuntimeError(f"BRAINALIGN_DEMO_DIR={given} is not a brainalign checkout (no Snakefile)")
    else:
        wd = copy_workflow(tmp_path_factory.mktemp("demo"))
    args = ["--cores", "2"]
    only = os.environ.get("BRAINALIGN_DEMO_PAPERS")
    if only:
        wanted = {p.strip() for p in only.split(",") if p.strip()}
        only_cfg = wd / "only_papers.yaml"
        only_cfg.write_text("".join(f"{p}:\n  enabled: {str(p in wanted).lower()}\n" for p in PAPERS))
        args += ["--configfile", str(only_cfg)]
    env = no_network_env(tmp_path_factory.mktemp("no_network"))
    res = run_snakemake(args, wd, timeout=2400, env=env)
    assert res.returncode == 0, (res.stdout + res.stderr)[-8000:]
    wd.joinpath("demo_run.log").write_text(res.stdout + res.stderr)
    return wd


def skip_unless_ran(wd: Path, paper: str) -> None:
    """Skip a demo test whose paper was left out with BRAINALIGN_DEMO_PAPERS, or is not enabled
    in the demo's config/config.yaml (a paper not yet part of the default demo)."""
    only = os.environ.get("BRAINALIGN_DEMO_PAPERS")
    if only and paper not in {p.strip() for p in only.split(",")}:
        pytest.skip(f"{paper} not in BRAINALIGN_DEMO_PAPERS={only}")
    import yaml

    section = yaml.safe_load((wd / "config" / "config.yaml").read_text()).get(paper, {})
    if not section.get("enabled", False):
        pytest.skip(f"{paper} is not enabled in the demo config (config/config.yaml)")
