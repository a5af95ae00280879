"""Scoring restored faces against their sharp originals: overall, per kernel size, per class.

Every score follows :mod:`umsn_cli.metrics` (RGB, 8-bit, Gaussian-window SSIM). Each
case is scored for the restored face *and* for the blurry input, so a report always
carries its own baseline. Set means are means of per-image scores (Shen et al.'s
convention); a class absent from a face (NaN) is left out of that class's mean.
Per-class scores need masks: the dataset's true labels when it has them, else the
model's S-Net run on the *sharp* face (the paper's choice), and the report says which.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from umsn_cli.benchmark.datasets import Pair, TestSet
from umsn_cli.errors import ImageError
from umsn_cli.images import from_array
from umsn_cli.labels import one_hot
from umsn_cli.metrics import aligned, best_shift, map_mean, masked_psnr, masked_ssim, psnr, ssim_map
from umsn_cli.visualize import labels_from_probs

if TYPE_CHECKING:
    from umsn_cli.restorer import Restorer

CLASSES = 4


class Model(Protocol):
    """What scoring needs from a model: restore faces, and segment them for masks.

    ``segment`` may be None (a model without S-Net, e.g. the plain B-Net ablation):
    then only sets with true labels get per-class scores.
    """

    def deblur(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        """H×W×3 float images in [0, 1] → restored images of the same sizes."""

    segment: Callable[[Sequence[np.ndarray]], list[np.ndarray]] | None
    #: Scores of the last ``deblur`` call's images that only the model can tell (e.g.
    #: how long each photo took), one dict per image; None when it has none.
    measured: Callable[[], list[dict[str, float]]] | None


class RestorerModel:
    """A :class:`~umsn_cli.restorer.Restorer` as a :class:`Model` (resizing as ``umsn deblur``)."""

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer

    def deblur(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [r.rgb for r in self.restorer.deblur_batch([from_array(f) for f in faces])]

    def segment(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.restorer.segment_batch([from_array(f) for f in faces])

    measured = None


class PhotoModel(RestorerModel):
    """A :class:`~umsn_cli.restorer.Restorer` in photo mode (faces found, aligned,
    restored at the working size, pasted back), as ``umsn deblur --mode photo``.

    Each photo reports the milliseconds it took, the faces found, and whether every
    pixel outside the faces' blend is bit-identical to the input (``background_kept``,
    1 or 0): pasting must not touch the rest of a photo.
    """

    def __init__(self, restorer: Restorer) -> None:
        super().__init__(restorer)
        self._measured: list[dict[str, float]] = []

    def deblur(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        results, self._measured = [], []
        for photo in faces:
            start = time.perf_counter()
            done = self.restorer.restore(from_array(photo), "photo")
            took = time.perf_counter() - start
            outside = done.photo.mask == 0  # type: ignore[union-attr]
            kept = np.array_equal(done.rgb[outside], photo[outside])
            results.append(done.rgb)
            self._measured.append(
                {"ms_per_photo": 1000 * took, "background_kept": float(kept),
                 "faces_found": float(len(done.faces))}
            )  # fmt: skip
        return results

    def measured(self) -> list[dict[str, float]]:  # type: ignore[override]
        return self._measured


class Identity(Protocol):
    def distance(self, restored: np.ndarray, sharp: np.ndarray) -> float: ...


@dataclass
class Case:
    """The scores of one pair; the images are kept only for the best and worst cases."""

    id: str
    face: str
    size: int | None
    scores: dict[str, float]
    #: blurry, restored, sharp, masks (None without masks)
    images: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    @property
    def gain(self) -> float:
        """PSNR gained over the blurry input: what ranks best and worst cases."""
        return self.scores["psnr"] - self.scores["psnr_blurry"]


@dataclass
class QualityReport:
    dataset: str
    protocol: str
    model: str
    backend: str
    mask_source: str  # "labels", "S-Net on the sharp face", or "none" (no class scores)
    align: int  # PX of --align: psnr/ssim are at the best shift within ±PX (0: plain)
    identity: str | None  # how identity was measured, or why it was not
    cases: list[Case]
    best: list[Case]
    worst: list[Case]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) left out

    def overall(self) -> dict[str, float]:
        return _means(self.cases)

    def by_size(self) -> dict[int, dict[str, float]]:
        sizes = sorted({c.size for c in self.cases if c.size is not None})
        return {s: _means([c for c in self.cases if c.size == s]) for s in sizes}

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (infinite PSNR of identical images becomes null)."""
        return _finite(
            {
                "dataset": self.dataset,
                "protocol": self.protocol,
                "model": self.model,
                "backend": self.backend,
                "mask_source": self.mask_source,
                "align": self.align,
                "identity": self.identity,
                "count": len(self.cases),
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
                "overall": self.overall(),
                "by_size": {str(k): v for k, v in self.by_size().items()},
                "best": [c.id for c in self.best],
                "worst": [c.id for c in self.worst],
                "cases": [
                    {"id": c.id, "face": c.face, "size": c.size, **c.scores} for c in self.cases
                ],
            }
        )


def score(
    test: TestSet,
    model: Model,
    *,
    model_name: str,
    backend: str,
    identity: Identity | None = None,
    identity_note: str | None = None,
    batch: int = 16,
    keep: int = 3,
    align: int = 0,
    progress: Callable[[int], None] | None = None,
) -> QualityReport:
    """Restore every pair of ``test`` with ``model`` and score it against its sharp face.

    With ``align`` > 0, ``psnr``, ``ssim`` and the per-class scores are taken at each
    image's best integer shift within ±``align`` (:func:`umsn_cli.metrics.best_shift`),
    and ``psnr_plain`` / ``ssim_plain`` keep the unshifted scores beside them.

    ``keep`` best and worst cases (by PSNR gain) keep their images for the comparison
    picture; ``progress`` is called with the number of pairs done after each batch.
    """
    mask_cache: dict[str, np.ndarray] = {}
    cases: list[Case] = []
    best: list[Case] = []
    worst: list[Case] = []
    done = 0
    for chunk in _chunks(test.pairs, batch):
        restored = model.deblur([p.blurry for p in chunk])
        measured = model.measured() if model.measured else [{} for _ in chunk]
        masks = [_masks(p, model, mask_cache) for p in chunk]
        for pair, out, m, known in zip(chunk, restored, masks, measured, strict=True):
            scores = _scores(pair, out, m, identity, align) | known
            case = Case(pair.id, pair.face, pair.size, scores)
            face = [_face_of(x, pair.region) for x in (pair.blurry, out, pair.sharp)]
            case_images = (*face, m)  # a photo's face region, at the photo's resolution
            cases.append(case)
            best = _keep(best, case, case_images, keep, reverse=True)
            worst = _keep(worst, case, case_images, keep, reverse=False)
        done += len(chunk)
        if progress:
            progress(done)
    if not cases:
        reason = f" (e.g. {test.skipped[0][1]})" if test.skipped else ""
        raise ImageError(f"{test.name}: no pair could be scored{reason}")
    source = "labels" if test.has_labels else "S-Net on the sharp face"
    if not test.has_labels and model.segment is None:
        source = "none"
    return QualityReport(
        test.name,
        test.protocol,
        model_name,
        backend,
        source,
        align,
        identity_note,
        cases,
        best,
        worst,
        list(test.skipped),
    )


def _masks(pair: Pair, model: Model, cache: dict[str, np.ndarray]) -> np.ndarray | None:
    if pair.masks is not None:
        return pair.masks
    if model.segment is None:
        return None
    if pair.face not in cache:  # one face has many blurry copies: segment it once
        probs = model.segment([_face_of(pair.sharp, pair.region)])[0]
        cache[pair.face] = one_hot(labels_from_probs(probs), CLASSES)  # classes partition pixels
    return cache[pair.face]


def _scores(
    pair: Pair,
    restored: np.ndarray,
    masks: np.ndarray | None,
    identity: Identity | None,
    align: int = 0,
) -> dict[str, float]:
    out: dict[str, float] = {}
    if pair.region is not None:  # a photo: the whole of it, unshifted, then its face
        out["psnr_photo"] = psnr(restored, pair.sharp)
        out["psnr_photo_blurry"] = psnr(pair.blurry, pair.sharp)
        restored = _face_of(restored, pair.region)
        pair = replace(pair, blurry=_face_of(pair.blurry, pair.region),
                       sharp=_face_of(pair.sharp, pair.region), region=None)  # fmt: skip
    for prefix, image in (("", restored), ("blurry_", pair.blurry)):
        suffix = "_blurry" if prefix else ""
        if align > 0:
            plain = ssim_map(image, pair.sharp)
            out[f"psnr_plain{suffix}"] = psnr(image, pair.sharp)
            out[f"ssim_plain{suffix}"] = map_mean(plain)
        shift = best_shift(image, pair.sharp, align)
        moved, sharp = aligned(image, pair.sharp, shift, align)
        class_masks = masks
        if masks is not None and align > 0:
            class_masks = masks[:, align:-align, align:-align]
        values = ssim_map(moved, sharp)
        out[f"psnr{suffix}"] = psnr(moved, sharp)
        out[f"ssim{suffix}"] = map_mean(values)
        if align > 0:
            out[f"shift{suffix}"] = float(abs(shift[0]) + abs(shift[1]))
        for c in range(CLASSES if class_masks is not None else 0):
            out[f"psnr{suffix}_m{c + 1}"] = masked_psnr(moved, sharp, class_masks[c])
            out[f"ssim{suffix}_m{c + 1}"] = masked_ssim(values, class_masks[c])
        if identity is not None:
            out[f"identity{suffix}"] = identity.distance(image, pair.sharp)
        if masks is not None:
            out[f"colour_shift{suffix}"] = colour_shift(image, pair.sharp, masks[1] + masks[2])
    return out


def _face_of(image: np.ndarray, region: tuple[int, int, int, int] | None) -> np.ndarray:
    """The face region of a photo-framed image; a face crop as it is."""
    if region is None:
        return image
    top, left, bottom, right = region
    return image[top:bottom, left:right]


def colour_shift(image: np.ndarray, sharp: np.ndarray, face: np.ndarray) -> float:
    """How far the face's mean colour moved, in 8-bit levels: the largest of the three
    channels' mean differences over the face (``face``: skin and features, H×W weights)."""
    weight = float(face.sum())
    if weight < 1:
        return float("nan")
    difference = (image - sharp) * face[..., None]
    return float(np.abs(difference.sum(axis=(0, 1)) / weight).max() * 255)


def _keep(
    ranked: list[Case],
    case: Case,
    images: tuple[np.ndarray, ...],
    keep: int,
    *,
    reverse: bool,
) -> list[Case]:
    """The ``keep`` best (``reverse``) or worst cases so far, with their images."""
    if math.isnan(case.gain) or keep == 0:
        return ranked
    if len(ranked) == keep:
        last = ranked[-1].gain
        if (case.gain <= last) if reverse else (case.gain >= last):
            return ranked
    entry = Case(case.id, case.face, case.size, case.scores, images)
    return sorted([*ranked, entry], key=lambda c: c.gain, reverse=reverse)[:keep]


def _means(cases: list[Case]) -> dict[str, float]:
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for case in cases:
        for name, value in case.scores.items():
            if not math.isnan(value):
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
    return {name: sums[name] / counts[name] for name in sums}


def _chunks(pairs: Iterable[Pair], size: int) -> Iterator[list[Pair]]:
    iterator = iter(pairs)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
