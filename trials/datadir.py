"""Where CIFAR-10 lives and whether a folder holds it; torch-free, so `submit` checks it before creating anything.

One precedence for `ghostsweep train`, `ghostsweep submit` and every sweep worker (`data_root`); `trials/data.py`
loads and validates the images themselves.
"""

from __future__ import annotations

import codecs
import os
import pickle
import shutil
import stat
from pathlib import Path
from typing import Any

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
DEFAULT_CACHE = Path("~/.cache/ghostsweep/cifar10")
DATA_DIR_ENV = "GHOSTSWEEP_DATA_DIR"
DOWNLOAD_ENV = "GHOSTSWEEP_DOWNLOAD"


MAX_BATCH_BYTES = 64 << 20  # a batch is 30.7 MB (10,000 images of 3,072 bytes, pickled)
# What a CIFAR-10 batch pickle may name: numpy's array and scalar reconstruction (numpy 1.x and 2.x spell the module
# differently; protocol 5 rebuilds from a buffer) and, in protocols 0-2, `_codecs.encode` for bytes. Anything
# else (os.system, subprocess, builtins.eval, any class's __reduce__) is refused before it is even imported.
PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})


class DataError(ValueError):
    """The data directory is missing or does not hold a valid CIFAR-10."""


class _BatchUnpickler(pickle.Unpickler):
    """A pickle that can name only `PICKLE_GLOBALS`: a data folder is someone else's files, and `pickle.load`
    runs whatever a file names."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds (refused, "
                                         "not run)")
        if module == "_codecs":
            return codecs.encode
        import numpy

        array, scalar = numpy.zeros(1, dtype=numpy.uint8), numpy.uint8(0)
        return {"ndarray": numpy.ndarray, "dtype": numpy.dtype, "_reconstruct": array.__reduce__()[0],
                "scalar": scalar.__reduce__()[0], "_frombuffer": array.__reduce_ex__(5)[0]}[name]


def load_batch(path: Path) -> Any:
    """One batch file, unpickled with only what a CIFAR-10 batch holds (numpy arrays, lists, strings, numbers);
    DataError, one line naming the file, for anything else or for a file that is not a regular one of a batch's
    size. Torch-free: `submit` checks every batch this way before anything is created."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as file:  # a FIFO: no wait
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BATCH_BYTES:
                raise ValueError(f"not a regular file of at most {MAX_BATCH_BYTES >> 20} MiB")
            return _BatchUnpickler(file, encoding="latin1").load()
    except Exception as error:  # unpickling garbage raises anything
        raise DataError(f"CIFAR-10 file {path} is unreadable: {type(error).__name__}: {error}") from None


def check_batches(folder: Path) -> None:
    """Every batch in `folder` loads as `load_batch` loads it (DataError otherwise): a crafted file is refused by
    the command that was handed the folder, in one line, not in every trial's worker."""
    for name in (*TRAIN_FILES, TEST_FILE):
        load_batch(folder / name)


def data_root(flag: str | Path | None = None, spec_data_dir: str | Path | None = None) -> Path:
    """Where CIFAR-10 is looked for, in the one precedence of `ghostsweep train` and every sweep worker:
    `--data-dir`, else $GHOSTSWEEP_DATA_DIR, else the sweep spec's `data_dir`, else ~/.cache/ghostsweep/cifar10.

    The variable beats the spec because it belongs to the machine (each cluster keeps its data elsewhere) while
    one spec runs on many; a flag typed for this one run beats both. Path logic only: nothing is checked here.
    """
    return Path(flag or os.environ.get(DATA_DIR_ENV) or spec_data_dir or DEFAULT_CACHE).expanduser()


def download_allowed(flag: bool | None = None) -> bool:
    """`--download`, else $GHOSTSWEEP_DOWNLOAD (1, true, yes)."""
    return flag if flag is not None else os.environ.get(DOWNLOAD_ENV, "") in ("1", "true", "yes")


def cifar10_folder(root: Path) -> Path:
    """The `cifar-10-batches-py` folder for `root`, which may be that folder itself or its parent."""
    return root if root.name == FOLDER or (root / TEST_FILE).exists() else root / FOLDER


def missing_files(folder: Path) -> list[str]:
    """The CIFAR-10 batch files `folder` lacks (all of them when it does not exist)."""
    return [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]


def resolve_data_dir(data_dir: str | Path | None, download: bool | None = None) -> Path:
    """The `cifar-10-batches-py` folder under `data_root(data_dir)`, downloaded there only when allowed
    (`download=None` defers to $GHOSTSWEEP_DOWNLOAD); DataError when it is absent or incomplete."""
    root = data_root(data_dir)
    folder = cifar10_folder(root)
    if not folder.exists() and download_allowed(download):
        _download(root)
        folder = cifar10_folder(root)
    if not folder.exists():
        if root == DEFAULT_CACHE.expanduser():
            how = "pass --download (or GHOSTSWEEP_DOWNLOAD=1) to fetch it"
        else:
            how = f"check --data-dir, ${DATA_DIR_ENV} or the spec's data_dir"
        raise DataError(f"CIFAR-10 not found at {folder}: {how}")
    missing = missing_files(folder)
    if missing:
        raise DataError(f"CIFAR-10 at {folder} is incomplete: missing {', '.join(missing)}")
    return folder


def _download(root: Path) -> None:
    """torchvision fetches and checks the archive (imported only here: nothing else needs it). A failed download
    leaves no folder behind that it created."""
    import torchvision

    created = next((folder for folder in reversed([root, *root.parents]) if not folder.exists()), None)
    root.mkdir(parents=True, exist_ok=True)
    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as error:  # no network, a proxy, a bad archive: one line, not a traceback
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"downloading CIFAR-10 to {root} failed: {message}") from None
