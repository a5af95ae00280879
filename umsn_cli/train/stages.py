"""The four things ``umsn train`` can train, each as a module whose forward is one loss.

A stage owns its networks and knows how to score them. Its ``forward`` takes a batch
and returns (loss, terms): that way DistributedDataParallel, which syncs gradients
only for calls through its own forward, wraps a whole stage at once.

- ``snet``  S-Net on clean or blurred faces (docs/method.md, S-Net).
- ``fnet``  one F-Net-i with its image head, on faces blurred only inside class i (§4).
- ``umsn``  the generator end to end with the confidence network, S-Net frozen (§5–§7).
- ``bnet``  the plain B-Net ablation: no masks, no F-Nets, no confidence network.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umsn_cli.errors import UsageError
from umsn_cli.faces import FaceSet, load_faces
from umsn_cli.nn import ModelConfig
from umsn_cli.nn.umsn import make_confidence, make_fnet, make_generator, make_snet
from umsn_cli.train import losses
from umsn_cli.train.checkpoint import load_weights_into
from umsn_cli.train.config import TrainConfig
from umsn_cli.train.data import Batch, Sampler
from umsn_cli.train.validation import (
    ValidationSet,
    in_batches,
    make_validation_set,
    restoration_scores,
    segmentation_scores,
)
from umsn_cli.visualize import CLASS_COLOURS

Terms = dict[str, torch.Tensor]


class Stage(nn.Module):
    #: The validation score that decides which checkpoint is best (higher is better).
    key_metric: str = ""
    #: How the sampler blurs training batches: "all", "none" or "class".
    blur: str = "all"

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def sample(self, sampler: Sampler, batch_size: int) -> Batch:
        """A training batch, blurred the way this stage learns from."""
        return sampler.sample(batch_size, self.blur)

    def load_parts(self, cfg: TrainConfig) -> None:
        """Load the trained networks this stage starts from (none by default)."""

    def validation_set(self, cfg: TrainConfig, holdout: FaceSet | None) -> ValidationSet:
        """The faces scored after every ``val_every`` steps: the held-out labelled ones."""
        if holdout is None:
            raise UsageError(
                "no validation faces: pass --masks DIR with --holdout N, or --val-data DIR"
            )
        return make_validation_set(holdout, cfg.val_noise)

    def validate(self, val: ValidationSet) -> dict[str, float]:
        raise NotImplementedError

    def pictures(self, val: ValidationSet, count: int = 6) -> np.ndarray:
        """Rows of example faces for the sample grid (uint8 H×W×3)."""
        raise NotImplementedError


def _perceptual(cfg: TrainConfig) -> nn.Module | None:
    if not cfg.perceptual_term:
        return None
    from umsn_cli.train.vgg import load_relu1_2

    return load_relu1_2()


def _signed(images: torch.Tensor) -> torch.Tensor:
    return images * 2 - 1


def _rows(*columns: torch.Tensor) -> np.ndarray:
    """Stack images N×3×H×W in [0, 1] as a grid: one row per face, one column per tensor."""
    columns = tuple(c.detach().float().cpu() for c in columns)
    grid = torch.cat([torch.cat(list(c.clamp(0, 1)), dim=2) for c in columns], dim=1)
    # grid: 3 × (rows·H) × (N·W) with faces along the width; transpose to faces as rows.
    n, h, w = columns[0].shape[0], columns[0].shape[2], columns[0].shape[3]
    grid = grid.view(3, len(columns), h, n, w).permute(3, 2, 1, 4, 0).reshape(n * h, -1, 3)
    return (grid.numpy() * 255).round().astype(np.uint8)


def _colour(masks: torch.Tensor) -> torch.Tensor:
    """Soft masks N×4×H×W → an RGB picture in the class colours."""
    colours = torch.from_numpy(CLASS_COLOURS).float().to(masks.device)  # 4×3
    return torch.einsum("nchw,cd->ndhw", masks.float(), colours)


class SNetStage(Stage):
    key_metric = "f_mean"

    def __init__(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().__init__()
        self.snet = make_snet(model)
        self.blur = cfg.blur

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        logits, half = self.snet(_signed(batch.blurry))
        loss = losses.segmentation_loss(logits, half, batch.masks)
        return loss, {"bce": loss.detach()}

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.snet(_signed(images))[0].float())

    def validate(self, val: ValidationSet) -> dict[str, float]:
        scores = {}
        for name, images in (("", val.blurry), ("clean_", val.sharp)):
            probs = in_batches(self.probs, images)
            for k, v in segmentation_scores(probs, val.masks).items():
                scores[name + k] = v
        scores["f_mean"] = float(np.mean([scores[f"f_m{i}"] for i in range(1, 5)]))
        return scores

    def pictures(self, val: ValidationSet, count: int = 6) -> np.ndarray:
        blurry = val.blurry[:count]
        with torch.no_grad():
            probs = self.probs(blurry)
        return _rows(blurry, _colour(probs), _colour(val.masks[:count]))


class FNetStage(Stage):
    key_metric = "psnr"
    blur = "class"

    def __init__(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().__init__()
        self.index = cfg.fnet_class - 1
        self.fnet = make_fnet(model)
        self.vgg = _perceptual(cfg)
        self.weight = cfg.perceptual_weight

    def sample(self, sampler: Sampler, batch_size: int) -> Batch:
        """Faces blurred only inside this stream's class (docs/method.md, F-Nets)."""
        return sampler.sample(batch_size, "class", self.index)

    def validation_set(self, cfg: TrainConfig, holdout: FaceSet | None) -> ValidationSet:
        if holdout is None:
            raise UsageError("the fnet stage validates on held-out labelled faces: --holdout N")
        return make_validation_set(holdout, cfg.val_noise, blur_class=self.index)

    def restore(self, blurry: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        mask = masks[:, self.index : self.index + 1]
        return self.fnet.restore(_signed(blurry), mask)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        out = self.restore(batch.blurry, batch.masks)
        target = _signed(batch.sharp)
        l1 = (out.float() - target).abs().mean()
        terms = {"l1": l1.detach()}
        loss = l1
        if self.vgg is not None:
            p = losses.perceptual(self.vgg, out, target)
            loss = loss + self.weight * p
            terms["perceptual"] = p.detach()
        return loss, terms

    def validate(self, val: ValidationSet) -> dict[str, float]:
        n = len(val)
        restored = torch.cat(
            [
                self._restore01(val.blurry[i : i + 25], val.masks[i : i + 25])
                for i in range(0, n, 25)
            ]
        )
        return restoration_scores(restored, val)

    def _restore01(self, blurry: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return ((self.restore(blurry, masks).float() + 1) / 2).clamp(0, 1)

    def pictures(self, val: ValidationSet, count: int = 6) -> np.ndarray:
        restored = self._restore01(val.blurry[:count], val.masks[:count])
        return _rows(val.blurry[:count], restored, val.sharp[:count])


class GeneratorStage(Stage):
    """Shared by ``umsn`` and ``bnet``: restoration losses, validation and pictures."""

    key_metric = "psnr"

    def __init__(self, cfg: TrainConfig, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.vgg = _perceptual(cfg)
        self.weight = cfg.perceptual_weight
        self.loss = cfg.loss
        # The teacher is held in a tuple, not as a child module: it is never trained,
        # averaged or saved in a checkpoint (a resumed run loads it again).
        self._teacher: tuple[nn.Module, ...] = ()
        self.teacher_weight = cfg.teacher_weight

    def attach_teacher(self, cfg: TrainConfig) -> None:
        """``--teacher``: the trained restorer whose output the loss also follows."""
        if cfg.teacher:
            from umsn_cli.weights import load_model

            teacher, _ = load_model(cfg.teacher, offline=True)
            self._teacher = (teacher.eval().requires_grad_(False),)

    def with_teacher(
        self, loss: torch.Tensor, terms: Terms, out: torch.Tensor, blurry: torch.Tensor
    ) -> tuple[torch.Tensor, Terms]:
        """``loss`` plus, with a teacher, the weighted L1 between the output (signed range)
        and the teacher's restoration of the same blurred faces."""
        if not self._teacher:
            return loss, terms
        (teacher,) = self._teacher
        with torch.no_grad():
            taught = teacher.to(blurry.device)(blurry)[0].float() * 2 - 1
        l1 = (out.float() - taught).abs().mean()
        return loss + self.teacher_weight * l1, {**terms, "teacher_l1": l1.detach()}

    def forward(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        """The method's loss, or with ``--loss mse``/``psnr`` the squared error of the
        restored face alone (L1 still logged, so the curves of all stay comparable)."""
        if self.loss == "method":
            return self.method_loss(batch)
        out = self.restore(batch.blurry)[0].float()
        target = _signed(batch.sharp)
        per_face = (out - target).pow(2).mean((1, 2, 3))
        mse = per_face.mean()
        terms = {"mse": mse.detach(), "l1": (out - target).abs().mean().detach()}
        if self.loss == "mse":
            loss = mse
        else:
            # Mean PSNR of the batch on the 0…1 scale (the signed range's MSE is 4×).
            terms["psnr"] = (-10 * torch.log10((per_face.detach() / 4).clamp_min(1e-10))).mean()
            loss = losses.psnr_weighted_mse(per_face)
        return self.with_teacher(loss, terms, out, batch.blurry)

    def method_loss(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def guidance(self, blurry: torch.Tensor) -> torch.Tensor | None:
        return None

    def validation_set(self, cfg: TrainConfig, holdout: FaceSet | None) -> ValidationSet:
        """Generators validate on ``--val-data`` when given (deblurring needs no labels)."""
        if cfg.val_data:
            faces = load_faces(Path(cfg.val_data), crop=cfg.face_crop, size=cfg.contract.size)
            return make_validation_set(faces, cfg.val_noise)
        return super().validation_set(cfg, holdout)

    def restore(self, blurry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator(_signed(blurry), self.guidance(blurry))

    def shared_terms(
        self, out: torch.Tensor, half: torch.Tensor, target: torch.Tensor, blurry: torch.Tensor
    ) -> tuple[torch.Tensor, Terms]:
        """Half-scale L1 (0.33), gradient L1 (0.15 full, 0.08 half), perceptual (λ₁), the
        L1 to the teacher's output (``--teacher-weight``)."""
        target_half = F.avg_pool2d(target, 2)
        half_l1 = (half.float() - target_half).abs().mean()
        grad = losses.gradient_l1(out, target)
        grad_half = losses.gradient_l1(half, target_half)
        loss = 0.33 * half_l1 + 0.15 * grad + 0.08 * grad_half
        terms = {"half_l1": half_l1.detach(), "grad": grad.detach()}
        if self.vgg is not None:
            p = losses.perceptual(self.vgg, out, target)
            loss = loss + self.weight * p
            terms["perceptual"] = p.detach()
        return self.with_teacher(loss, terms, out, blurry)

    def restore01(self, blurry: torch.Tensor) -> torch.Tensor:
        return ((self.restore(blurry)[0].float() + 1) / 2).clamp(0, 1)

    def validate(self, val: ValidationSet) -> dict[str, float]:
        return restoration_scores(in_batches(self.restore01, val.blurry), val)

    def pictures(self, val: ValidationSet, count: int = 6) -> np.ndarray:
        with torch.no_grad():
            restored = self.restore01(val.blurry[:count])
        return _rows(val.blurry[:count], restored, val.sharp[:count])


class UMSNStage(GeneratorStage):
    """End to end: L_c (confidence-weighted class L1 − λ log C) + shared terms."""

    def __init__(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().__init__(cfg, make_generator(replace(model, guided=True)))
        self.snet = make_snet(model).eval().requires_grad_(False)
        self.confidence = make_confidence(model)
        self.lam = cfg.confidence_lambda
        # The F-Net image heads get no loss end to end: keep them out of the optimiser.
        for fnet in self.generator.fnets:
            fnet.image_head.requires_grad_(False)

    def load_parts(self, cfg: TrainConfig) -> None:
        """The trained S-Net (frozen) and, when given, the four pre-trained F-Nets."""
        if cfg.snet:  # checked() requires it for training
            load_weights_into(self.snet, cfg.snet, "snet")
            for fnet, path in zip(self.generator.fnets, cfg.fnets, strict=False):
                load_weights_into(fnet, path, "fnet")

    def train(self, mode: bool = True) -> UMSNStage:
        super().train(mode)
        self.snet.eval()  # frozen: BatchNorm keeps its trained statistics
        return self

    def guidance(self, blurry: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(self.snet(_signed(blurry))[0].float())

    def method_loss(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        out, half = self.restore(batch.blurry)
        target = _signed(batch.sharp)
        masks = batch.masks if batch.masks is not None else self.guidance(batch.sharp)
        per_class = losses.classwise_l1(out, target, masks)
        confidence = self.confidence(out, target, masks)
        lc = losses.confidence_loss(per_class, confidence, self.lam)
        rest, terms = self.shared_terms(out, half, target, batch.blurry)
        terms.update({"l_c": lc.detach(), "l1": per_class.sum(1).mean().detach()})
        for i in range(confidence.shape[1]):
            terms[f"c_m{i + 1}"] = confidence[:, i].mean().detach()
        return lc + rest, terms


class PlainBNetStage(GeneratorStage):
    """The ablation: the same budget and terms, with a plain L1 instead of L_c."""

    def __init__(self, cfg: TrainConfig, model: ModelConfig) -> None:
        super().__init__(cfg, make_generator(replace(model, guided=False)))
        self.hard_cases = cfg.hard_cases

    def method_loss(self, batch: Batch) -> tuple[torch.Tensor, Terms]:
        out, half = self.restore(batch.blurry)
        target = _signed(batch.sharp)
        l1 = (out.float() - target).abs().mean()
        rest, terms = self.shared_terms(out, half, target, batch.blurry)
        terms["l1"] = l1.detach()
        if self.hard_cases:
            return losses.hard_case_l1(out.float(), target, self.hard_cases) + rest, terms
        return l1 + rest, terms


STAGE_TYPES: dict[str, type[Stage]] = {
    "snet": SNetStage,
    "fnet": FNetStage,
    "umsn": UMSNStage,
    "bnet": PlainBNetStage,
}


def build_stage(cfg: TrainConfig, model: ModelConfig) -> Stage:
    return STAGE_TYPES[cfg.stage](cfg, model)
