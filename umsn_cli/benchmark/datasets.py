"""Test sets for ``umsn benchmark``: the published face-deblurring sets and any folder.

Three kinds of source give the same thing, a stream of :class:`Pair`\\ s:

- **Blurred/sharp folders** in the layout of the Shen et al. (CVPR 2018) test sets,
  ``<id>_kerNN_blur_kK.png`` next to ``<id>.png`` ground truth. The named sets
  ``helen``, ``celeba`` and ``pubfig`` are such folders under the data root; none of
  them may be redistributed, so they are never downloaded: :func:`find_named` says
  where each comes from when it is missing.
- **A folder of sharp aligned faces**, blurred here with the seeded Shen-protocol bank
  (10 kernels at each size 13 … 27) or with given kernels. The same seed always gives
  the same blurry images, so anyone can reproduce a number from its command.
- Either may carry label masks, which give per-class scores with the true classes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from umsn_cli.blur import add_noise, blur_batch
from umsn_cli.blur.kernels import enlarged, shen_bank
from umsn_cli.errors import DatasetMissingError, ImageError, UsageError
from umsn_cli.faces import FaceSet, load_faces
from umsn_cli.images import read_image
from umsn_cli.inputs import IMAGE_SUFFIXES
from umsn_cli.labels import one_hot

_SHEN_NAME = re.compile(r"^(?P<face>.+)_ker(?P<index>\d+)_blur_k(?P<size>\d+)$")
_BLUR_DIRS = ("blur", "blurry")
_SHARP_DIRS = ("gt", "sharp")
_LABEL_DIRS = ("labels", "masks")

#: Helen's 11 face-parsing labels → the four UMSN classes (docs/method.md, Conventions):
#: 0 background, 1 skin, 2–9 brows, eyes, nose and lips (features), 10 hair.
HELEN_TO_UMSN = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3], dtype=np.uint8)


@dataclass
class Pair:
    """One test case: a blurry face, its sharp original and, if known, true class masks."""

    id: str  # unique within the set, e.g. "0001_ker03_blur_k13"
    face: str  # the sharp face it comes from
    size: int | None  # blur kernel size (None when the set does not say)
    blurry: np.ndarray  # H×W×3 float32 in [0, 1]
    sharp: np.ndarray  # same size
    masks: np.ndarray | None = None  # 4×H×W soft class masks of the sharp face
    #: Photo framing: the face's (top, left, bottom, right) in the photo; the masks and
    #: the face scores cover that region, the photo scores the whole image.
    region: tuple[int, int, int, int] | None = None


@dataclass
class TestSet:
    """A named stream of pairs and the facts a report must state about it."""

    __test__ = False  # not a pytest class, whatever its name

    name: str
    protocol: str  # how the blurry images came about, in words
    count: int  # number of pairs
    has_labels: bool
    pairs: Iterator[Pair] = field(repr=False)
    #: (file, reason) of pairs that could not be read: filled while ``pairs`` is consumed,
    #: so one corrupt file is reported rather than ending the run.
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class NamedDataset:
    name: str
    source: str  # where a user gets it (these sets cannot be redistributed)
    folders: tuple[str, ...]  # names it may have under the data root
    expected: str  # the layout, in one line


NAMED_DATASETS = {
    d.name: d
    for d in (
        NamedDataset(
            "helen",
            "the Helen test set of Shen et al., CVPR 2018 "
            "(https://sites.google.com/site/ziyishenmi/cvpr18_face_deblur)",
            ("helen", "Test_data_Helen"),
            "final_Helen_blur/<id>_kerNN_blur_kK.png and final_Helen_gt/<id>.png "
            "(optional labels/<id>.png with Helen's 11 labels)",
        ),
        NamedDataset(
            "celeba",
            "the CelebA test set of Shen et al., CVPR 2018 "
            "(https://sites.google.com/site/ziyishenmi/cvpr18_face_deblur)",
            ("celeba", "Test_data_CelebA"),
            "final_CelebA_blur/<id>_kerNN_blur_kK.png and final_CelebA_gt/<id>.png",
        ),
        NamedDataset(
            "pubfig",
            "the 192 blurred PubFig faces of Song et al. (ask the authors; not downloadable)",
            ("pubfig", "PubFig"),
            "blur/<name>.png and gt/<name>.png with the same names",
        ),
    )
}


def data_root(given: Path | None) -> Path | None:
    """``--data-root``, else ``UMSN_DATA``, else None."""
    if given is not None:
        return given
    env = os.environ.get("UMSN_DATA")
    return Path(env) if env else None


def find_named(name: str, root: Path | None) -> Path:
    """The folder of a named test set; if absent, an error saying where it comes from."""
    dataset = NAMED_DATASETS[name]
    where = f"under {root}" if root else "(no --data-root or UMSN_DATA given)"
    if root is not None:
        for folder in dataset.folders:
            candidate = root / folder
            if candidate.is_dir():
                return candidate
    target = (root or Path("DATA_ROOT")) / dataset.folders[0]
    raise DatasetMissingError(
        f"test set {name!r} not found {where}: it is {dataset.source}, which cannot be "
        f"downloaded here; put it at {target} as {dataset.expected}, then pass "
        "--data-root or set UMSN_DATA"
    )


def open_dataset(
    spec: str,
    *,
    root: Path | None = None,
    kernels: list[tuple[str, np.ndarray]] | None = None,
    seed: int = 0,
    noise: float = 0.01,
    per_size: int = 10,
    crop: float = 1.0,
    size: int = 128,
    limit: int | None = None,
) -> TestSet:
    """Open ``spec``: a named set (``helen``, ``celeba``, ``pubfig``) or a folder.

    A folder holding blurred/sharp subfolders is read as it is; a folder of sharp faces
    (or one with ``images/`` and CelebAMask-HQ ``masks/``) is framed at ``size``² (the
    model's input contract) and blurred here with ``kernels`` or the seeded Shen bank.
    ``limit`` keeps only the first faces.
    """
    if spec in NAMED_DATASETS:
        return paired_folders(find_named(spec, root), spec, limit=limit)
    folder = Path(spec)
    if not folder.is_dir():
        names = ", ".join(NAMED_DATASETS)
        raise UsageError(
            f"--dataset {spec!r} is neither a named test set ({names}) nor a folder; "
            "give a folder of sharp aligned faces or of blurred/sharp pairs"
        )
    if _subfolder(folder, _BLUR_DIRS) is not None:
        return paired_folders(folder, folder.name, limit=limit)
    return synthesized(
        folder, kernels, seed=seed, noise=noise, per_size=per_size, crop=crop, size=size,
        limit=limit,
    )  # fmt: skip


def paired_folders(folder: Path, name: str, *, limit: int | None = None) -> TestSet:
    """Blurred images matched to their ground truth by name (the Shen et al. layout)."""
    blur_dir = _subfolder(folder, _BLUR_DIRS)
    sharp_dir = _subfolder(folder, _SHARP_DIRS)
    if blur_dir is None or sharp_dir is None:
        raise UsageError(
            f"{folder}: expected a blurred-image folder (*_blur or blur/) and a ground-truth "
            "folder (*_gt or gt/) side by side"
        )
    sharp_files = {p.stem: p for p in _images(sharp_dir)}
    entries: list[tuple[Path, str, int | None]] = []
    unmatched: list[str] = []
    for path in _images(blur_dir):
        match = _SHEN_NAME.match(path.stem)
        face = match["face"] if match else path.stem
        if face not in sharp_files:
            unmatched.append(path.name)
            continue
        entries.append((path, face, int(match["size"]) if match else None))
    if unmatched:
        raise UsageError(
            f"{blur_dir}: {len(unmatched)} blurred image(s) have no ground truth in "
            f"{sharp_dir}, e.g. {unmatched[0]}; the sharp file must be named <id>.png"
        )
    if not entries:
        raise UsageError(f"{blur_dir}: no blurred images found")
    if limit is not None:
        keep = sorted({face for _, face, _ in entries})[:limit]
        entries = [e for e in entries if e[1] in set(keep)]
    label_dir = _subfolder(folder, _LABEL_DIRS)
    sizes = sorted({s for _, _, s in entries if s is not None})
    protocol = f"{len(entries)} blurred files" + (
        f", kernel sizes {sizes[0]}–{sizes[-1]}" if sizes else ""
    )
    test = TestSet(name, protocol, len(entries), label_dir is not None, iter(()))
    test.pairs = _read_pairs(entries, sharp_files, label_dir, test.skipped)
    return test


def _read_pairs(
    entries: list[tuple[Path, str, int | None]],
    sharp_files: dict[str, Path],
    label_dir: Path | None,
    skipped: list[tuple[str, str]],
) -> Iterator[Pair]:
    faces: dict[str, tuple[np.ndarray, np.ndarray | None] | str] = {}  # or why it failed
    for path, face, size in entries:
        if face not in faces:
            faces.clear()  # the files come sorted: one sharp face at a time in memory
            try:
                sharp = read_image(sharp_files[face]).rgb
                masks = (
                    _helen_masks(label_dir / f"{face}.png", sharp.shape[:2]) if label_dir else None
                )
                faces[face] = (sharp, masks)
            except ImageError as exc:
                faces[face] = str(exc)
        known = faces[face]
        try:
            if isinstance(known, str):
                raise ImageError(f"its ground truth is unusable: {known}")
            sharp, masks = known
            blurry = read_image(path).rgb
            if blurry.shape != sharp.shape:
                raise ImageError(
                    f"{path}: {blurry.shape[1]}×{blurry.shape[0]} but its ground truth is "
                    f"{sharp.shape[1]}×{sharp.shape[0]}; pairs must have the same size"
                )
        except ImageError as exc:
            skipped.append((str(path), str(exc)))
            continue
        yield Pair(path.stem, face, size, blurry, sharp, masks)


def _helen_masks(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    with Image.open(path) as img:
        labels = np.asarray(img.convert("L"))
    if labels.shape != shape or labels.max(initial=0) >= len(HELEN_TO_UMSN):
        raise ImageError(
            f"{path}: a label map must match its image's size and hold Helen labels 0–10"
        )
    return one_hot(HELEN_TO_UMSN[labels])


def synthesized(
    folder: Path,
    kernels: list[tuple[str, np.ndarray]] | None,
    *,
    seed: int,
    noise: float,
    per_size: int,
    crop: float,
    size: int,
    limit: int | None,
) -> TestSet:
    """A folder of sharp faces (or ``images/`` + CelebAMask-HQ ``masks/``), blurred here."""
    faces = _sharp_faces(folder, crop=crop, size=size, limit=limit)
    return blurred_faces(folder.name, faces, kernels, seed=seed, noise=noise, per_size=per_size)


def _sharp_faces(folder: Path, *, crop: float, size: int, limit: int | None) -> FaceSet:
    """The first ``limit`` faces of a folder of sharp faces, or of its ``images/`` with
    CelebAMask-HQ ``masks/`` beside them."""
    images, masks = folder, None
    if (folder / "images").is_dir():
        images = folder / "images"
        masks = folder / "masks" if (folder / "masks").is_dir() else None
    faces = load_faces(images, masks, crop=crop, size=size)
    if limit is not None:
        faces = faces.subset(list(range(min(limit, len(faces)))))
    return faces


def _kernel_bank(
    kernels: list[tuple[str, np.ndarray]] | None, seed: int, per_size: int
) -> tuple[list[tuple[str, int, int, np.ndarray]], str]:
    """(name, size, index, kernel) of each kernel to blur with, and their description:
    ``kernels`` None is the first ``per_size`` kernels of the seeded Shen bank at each
    size 13 … 27."""
    if kernels is not None:
        bank = [(name, k.shape[0], i, k) for i, (name, k) in enumerate(kernels, start=1)]
        return bank, f"{len(kernels)} given kernels"
    bank = [(f"ker{i:02d}_blur_k{size}", size, i, k)
            for i, size, k in shen_bank(seed) if i <= per_size]  # fmt: skip
    return bank, f"{per_size} seeded kernels (seed {seed}) at each size 13–27"


def blurred_faces(
    name: str,
    faces: FaceSet,
    kernels: list[tuple[str, np.ndarray]] | None = None,
    *,
    seed: int = 0,
    noise: float = 0.01,
    per_size: int = 10,
) -> TestSet:
    """Faces at the canonical framing, each blurred with every kernel of a seeded protocol.

    ``kernels`` None is the Shen et al. protocol: the first ``per_size`` kernels of the
    seeded bank at each size 13 … 27.
    """
    sharp, soft = faces.canonical()
    bank, source = _kernel_bank(kernels, seed, per_size)
    if kernels is None:
        protocol = f"Shen et al. protocol: {source}, noise σ={noise}"
    else:
        protocol = f"{source}, noise σ={noise}, seed {seed}"
    return TestSet(
        name,
        f"{len(faces)} faces × {protocol}",
        len(faces) * len(bank),
        soft is not None,
        _blurred_pairs(faces.stems, sharp, soft, bank, seed, noise),
    )


#: Photo framing: each kernel blurs the photo as drawn (a small shake at the photo's
#: scale) and drawn this many times larger (a large one).
PHOTO_SCALES = (1, 2)


def photo_frames(
    folder: Path,
    kernels: list[tuple[str, np.ndarray]] | None,
    *,
    seed: int,
    noise: float,
    per_size: int,
    crop: float,
    face_size: int,
    limit: int | None,
) -> TestSet:
    """Sharp frames as whole photos whose centre ``crop`` fraction, the face framing, is
    ``face_size`` px, each blurred whole at its own scale by every kernel of the seeded
    Shen bank (or ``kernels``) as drawn and twice as large (:data:`PHOTO_SCALES`). A
    pair's ``size`` is the shake's size in px of the photo."""
    side = round(face_size / crop)
    faces = _sharp_faces(folder, crop=1.0, size=side, limit=limit)  # whole frames, side²
    top = (side - face_size) // 2
    region = (top, top, top + face_size, top + face_size)
    drawn, source = _kernel_bank(kernels, seed, per_size)
    bank = [
        (f"{name}_s{scale}", size * scale, index, enlarged(k, scale) if scale > 1 else k)
        for scale in PHOTO_SCALES
        for name, size, index, k in drawn
    ]
    protocol = (
        f"{len(faces)} photos of {side}², the face the centre {face_size}², × {source}, "
        f"as drawn and {PHOTO_SCALES[-1]}× larger, noise σ={noise}; restored in photo mode"
    )
    pairs = _blurred_pairs(faces.stems, *faces.canonical(), bank, seed, noise)
    return TestSet(
        folder.name,
        protocol,
        len(faces) * len(bank),
        faces.masks is not None,
        (_framed(pair, region) for pair in pairs),
    )


def _framed(pair: Pair, region: tuple[int, int, int, int]) -> Pair:
    """A photo pair with its face region named, and its masks cut to that region."""
    top, left, bottom, right = region
    masks = None if pair.masks is None else pair.masks[:, top:bottom, left:right]
    return Pair(pair.id, pair.face, pair.size, pair.blurry, pair.sharp, masks, region)


def shen_blurry(
    sharp: torch.Tensor, kernel: np.ndarray, *, seed: int, size: int, index: int, noise: float
) -> torch.Tensor:
    """N sharp faces blurred with one bank kernel, plus the noise seeded by (seed, size, index)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + size * 100 + index)
    kernels = torch.from_numpy(kernel)[None].expand(len(sharp), -1, -1)
    return add_noise(blur_batch(sharp, kernels), noise, generator)


def _blurred_pairs(
    stems: list[str],
    sharp: torch.Tensor,
    masks: torch.Tensor | None,
    bank: list[tuple[str, int, int, np.ndarray]],
    seed: int,
    noise: float,
) -> Iterator[Pair]:
    for name, size, index, kernel in bank:
        blurry = shen_blurry(sharp, kernel, seed=seed, size=size, index=index, noise=noise)
        for j, stem in enumerate(stems):
            yield Pair(
                f"{stem}_{name}",
                stem,
                size,
                blurry[j].permute(1, 2, 0).numpy(),
                sharp[j].permute(1, 2, 0).numpy(),
                None if masks is None else masks[j].numpy(),
            )


def _subfolder(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The child named one of ``names`` or ending in ``_<name>`` (Shen: final_Helen_gt)."""
    for child in sorted(folder.iterdir()):
        if child.is_dir() and any(
            child.name.lower() == n or child.name.lower().endswith(f"_{n}") for n in names
        ):
            return child
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
