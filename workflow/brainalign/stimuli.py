"""Stimulus sets: ordered ids plus lazy image access, the contract between brain and model.

A stimulus set is a sequence of PIL RGB images with a parallel array of ids. Every
artifact computed from it stores those ids, and linking refuses arrays whose ids
differ (:func:`brainalign.utils.check_ids_match`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from brainalign.utils import InputError

__all__ = ["NSDImages", "ImageFiles", "nsd_stimuli_path", "load_stimulus_set"]


def nsd_stimuli_path(nsd_root) -> Path:
    """Where NSD keeps its image brick, relative to the NSD root."""
    from brainalign.io.nsd import nsd_paths

    return nsd_paths(nsd_root, 1)["stimuli"]


class NSDImages(Sequence):
    """Images of ``nsd_stimuli.hdf5`` (dataset ``imgBrick`` (73000, 425, 425, 3) uint8) by 73k id.

    The file is opened lazily and rows are read one at a time, so memory does not
    depend on the size of the stimulus set.
    """

    def __init__(self, hdf5_path, ids):
        self.path = Path(hdf5_path)
        self.ids = np.asarray(ids, dtype=np.int64)
        if not self.path.exists():
            raise InputError(f"NSD stimulus file {self.path} does not exist (expected the "
                             "nsd_stimuli.hdf5 image brick under nsddata_stimuli/stimuli/nsd/).")
        with h5py.File(self.path, "r") as f:
            if "imgBrick" not in f:
                raise InputError(f"{self.path}: no dataset 'imgBrick' (has {list(f.keys())}).")
            shape, dtype = f["imgBrick"].shape, f["imgBrick"].dtype
        if len(shape) != 4 or shape[3] != 3 or dtype != np.uint8:
            raise InputError(f"{self.path}: imgBrick must be uint8 (n, H, W, 3), got {dtype} {shape}.")
        if self.ids.size and (self.ids.min() < 0 or self.ids.max() >= shape[0]):
            raise InputError(f"{self.path}: image ids must lie in 0..{shape[0] - 1}.")
        self._file = None

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return Image.fromarray(self._file["imgBrick"][int(self.ids[i])]).convert("RGB")

    def __getstate__(self):  # picklable (the open file is not)
        state = self.__dict__.copy()
        state["_file"] = None
        return state


class ImageFiles(Sequence):
    """Images from a list of files (any format PIL reads)."""

    def __init__(self, paths):
        self.paths = [Path(p) for p in paths]
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise InputError(f"{len(missing)} stimulus image files are missing, e.g. {missing[:3]}.")

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")


def load_stimulus_set(table_path, nsd_root=None):
    """Read a stimulus table (tsv with columns ``stimulus_id`` and ``source``) -> (ids, images).

    ``source`` is ``nsd`` (the id is a 73k id into the NSD image brick under
    ``nsd_root``) or a path to an image file.
    """
    import pandas as pd

    table = pd.read_csv(table_path, sep="\t", dtype={"stimulus_id": str, "source": str})
    if list(table.columns[:2]) != ["stimulus_id", "source"]:
        raise InputError(
            f"{table_path}: expected columns 'stimulus_id' and 'source', got {list(table.columns)}."
        )
    ids = table["stimulus_id"].to_numpy()
    if (table["source"] == "nsd").all():
        if nsd_root is None:
            raise InputError(f"{table_path}: NSD stimuli need the config key nsd.root.")
        return ids, NSDImages(nsd_stimuli_path(nsd_root), ids.astype(np.int64))
    return ids, ImageFiles(table["source"].tolist())
