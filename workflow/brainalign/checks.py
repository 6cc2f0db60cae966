"""Start-up checks the workflow runs before scheduling any job (clear errors, named keys)."""

from __future__ import annotations

from pathlib import Path

from brainalign.io.nsd import nsd_paths
from brainalign.utils import InputError

__all__ = ["check_nsd_root"]


def check_nsd_root(root, *, demo: bool, subjects) -> None:
    """Check config key ``nsd.root`` before any job runs.

    With the demo enabled the root is generated, so it must be a relative path
    inside ``resources/``. Otherwise it must already hold the NSD design file and a
    betas folder for every configured subject.
    """
    root = Path(root)
    if demo:
        if root.is_absolute() or not root.parts or root.parts[0] != "resources":
            raise InputError(
                f"config key nsd.root is {str(root)!r} but demo.enabled is true: the demo writes its "
                "synthetic data under resources/ (e.g. resources/demo/nsd). Set demo.enabled: false "
                "to analyse real data at that path."
            )
        return
    design = nsd_paths(root, 1)["design"]
    if not design.exists():
        raise InputError(
            f"config key nsd.root: {root} does not contain nsddata/experiments/nsd/nsd_expdesign.mat. "
            "Point nsd.root at your NSD copy (see README, 'Real data') or set demo.enabled: true."
        )
    for s in subjects:
        betas = nsd_paths(root, int(s))["betas_dir"]
        if not betas.is_dir():
            raise InputError(f"config key nsd.subjects lists {s}, but {betas} does not exist.")
