"""Blur kernels given as files (``--kernels`` of ``umsn synth-blur`` and ``umsn
benchmark``): a ``.npy``, ``.png`` or ``.mat`` file, or a folder of them, each checked
and normalised, so that a real recorded kernel scores a model the way a drawn one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from umsn_cli.errors import UsageError, one_line

KERNEL_SUFFIXES = (".npy", ".png", ".mat")


def load_kernels(path: Path) -> list[tuple[str, np.ndarray]]:
    """Kernels from a .npy/.png/.mat file or a folder of them: (file stem, kernel) pairs.

    Each must be 2-D, finite, non-negative, odd and square, with a positive sum; it is
    normalised to sum 1. Any problem is a :class:`UsageError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in KERNEL_SUFFIXES
        )
        if not files:
            raise UsageError(f"--kernels {path}: no .npy, .png or .mat kernel files in it")
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"--kernels {path}: no such file or folder")
    return [(f.stem, _check_kernel(f, _read_kernel(f))) for f in files]


def _read_kernel(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".png":
            with Image.open(path) as img:
                if img.mode not in ("L", "I", "I;16", "F"):
                    img = img.convert("L")
                return np.asarray(img)
        if suffix == ".mat":
            return _read_mat(path)
    except UsageError:
        raise
    except Exception as exc:  # numpy, Pillow and scipy raise many types for bad files
        raise UsageError(f"--kernels {path}: cannot read it ({one_line(exc)})") from exc
    raise UsageError(f"--kernels {path}: give a .npy, .png or .mat kernel file")


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat  # scipy comes with scikit-image; only .mat kernels need it

    arrays = {
        name: value
        for name, value in loadmat(path).items()
        if not name.startswith("__")
        and isinstance(value, np.ndarray)
        and value.ndim == 2
        and min(value.shape) > 1
        and (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating))
    }
    if len(arrays) != 1:
        found = f"{len(arrays)} ({', '.join(sorted(arrays))})" if arrays else "none"
        raise UsageError(
            f"--kernels {path}: a .mat kernel file must hold exactly one 2-D numeric array, "
            f"found {found}; save one kernel per file"
        )
    return next(iter(arrays.values()))


def _check_kernel(path: Path, kernel: np.ndarray) -> np.ndarray:
    kernel = np.asarray(kernel)
    where = f"--kernels {path}"
    if kernel.dtype == bool or not (
        np.issubdtype(kernel.dtype, np.integer) or np.issubdtype(kernel.dtype, np.floating)
    ):
        raise UsageError(f"{where}: a kernel must hold real numbers, got {kernel.dtype}")
    if kernel.ndim != 2:
        raise UsageError(f"{where}: a kernel must be a 2-D array, got shape {kernel.shape}")
    height, width = kernel.shape
    if height != width or height % 2 == 0:
        raise UsageError(
            f"{where}: a kernel must be square with an odd size (its centre is a pixel), "
            f"got {height}×{width}; pad it with zeros to an odd size"
        )
    kernel = kernel.astype(np.float64)
    if not np.isfinite(kernel).all():
        raise UsageError(f"{where}: the kernel holds NaN or infinite values")
    if (kernel < 0).any():
        raise UsageError(f"{where}: the kernel has negative values; a blur kernel is ≥ 0")
    total = kernel.sum()
    if total <= 0:
        raise UsageError(f"{where}: the kernel is all zero")
    return (kernel / total).astype(np.float32)
