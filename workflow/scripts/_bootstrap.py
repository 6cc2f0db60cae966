"""Imported first by every rule script.

Makes the ``brainalign`` library importable when it is not pip-installed (e.g. in a
rule's conda env) and sends the script's stdout/stderr (progress bars included) to
the rule's ``log:`` file.
"""

import contextlib
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextlib.contextmanager
def rule_log(snakemake):
    """Redirect stdout and stderr to the rule's log file for the duration of the block; an
    exception's traceback is written there too (then re-raised, so Snakemake sees the failure)."""
    if not snakemake.log:
        yield
        return
    path = Path(snakemake.log[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=f)
            raise
