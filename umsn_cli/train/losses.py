"""The training losses of docs/method.md (S-Net, F-Nets, Losses), as plain functions of tensors.

Images are in [-1, 1] (the networks' range); masks are soft, N×4×H×W. Every L1 term
is a mean over pixels, so weights mean the same thing at any image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The authors' class weights on the masked L1 terms (m1 … m4); m3 is the facial features.
CLASS_WEIGHTS = (1.2, 1.2, 3.6, 1.2)


def segmentation_loss(
    logits: torch.Tensor, half_logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """BCE on the four maps + 0.5 × BCE at half resolution, classes weighted as in §7."""
    w = logits.new_tensor(CLASS_WEIGHTS).view(1, -1, 1, 1)
    full = F.binary_cross_entropy_with_logits(logits.float(), target, weight=w)
    half_target = F.avg_pool2d(target, 2)
    half = F.binary_cross_entropy_with_logits(half_logits.float(), half_target, weight=w)
    return full + 0.5 * half


def classwise_l1(output: torch.Tensor, target: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """‖m_i ⊙ (x̂ − x)‖₁ for each class i, as N×4 (mean over pixels and channels)."""
    diff = (output.float() - target).abs().mean(1, keepdim=True)  # N×1×H×W
    return (masks * diff).mean((2, 3))


def confidence_loss(
    per_class: torch.Tensor, confidence: torch.Tensor, lam: float = 0.01
) -> torch.Tensor:
    """Eq. 4: Σ_i w_i C_i ‖m_i ⊙ (x̂ − x)‖₁ − λ log C_i, mean over the batch."""
    w = per_class.new_tensor(CLASS_WEIGHTS)
    c = confidence.float().clamp_min(1e-6)
    return (w * c * per_class - lam * torch.log(c)).sum(1).mean()


def gradient_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical image differences (sharp edges)."""
    out, tgt = output.float(), target

    def dx(t: torch.Tensor) -> torch.Tensor:
        return t[..., :, 1:] - t[..., :, :-1]

    def dy(t: torch.Tensor) -> torch.Tensor:
        return t[..., 1:, :] - t[..., :-1, :]

    return (dx(out) - dx(tgt)).abs().mean() + (dy(out) - dy(tgt)).abs().mean()


def hard_case_l1(output: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """The L1 with each face weighted by (its L1 / the batch's mean)^``gamma``: the faces
    restored worst count most (focal-style). The weights are constants of the step
    (detached) scaled to average 1, so ``gamma`` 0 is the plain L1."""
    per_face = (output - target).abs().mean((1, 2, 3))
    weight = (per_face / per_face.mean()).detach() ** gamma
    return (weight / weight.mean() * per_face).mean()


def psnr_weighted_mse(per_face: torch.Tensor) -> torch.Tensor:
    """The batch's squared error from its faces' errors ``per_face`` (N), each face's
    term divided by its own (detached) value.

    Benchmarks average PSNR over faces, and the gradient of a face's PSNR is its
    squared error's gradient over that error: a face restored to 35 dB counts as much
    as one at 22 dB. Plain MSE lets the hardest faces of a batch dominate instead.
    Scaled by the batch's MSE (detached), the loss reads as the MSE, so its value,
    gradient norm and the spike guard keep the scale of ``--loss mse``.
    """
    weight = per_face.detach().mean() / per_face.detach().clamp_min(1e-10)
    return (weight * per_face).mean()


def perceptual(
    features: torch.nn.Module, output: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Eq. 5: mean squared distance of VGG16 relu1_2 features."""
    with torch.no_grad():
        want = features(target)
    return F.mse_loss(features(output).float(), want.float())
