"""Imported first by every rule script.

Makes the ``brainalign`` library importable when it is not pip-installed (e.g. in a
rule's conda env) and sends the script's stdout/stderr (progress bars included) to
the rule's ``log:`` file.
"""

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextlib.contextmanager
def rule_log(snakemake):
    """Redirect stdout and stderr to the rule's log file for the duration of the block."""
    if not snakemake.log:
        yield
        return
    path = Path(snakemake.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield
