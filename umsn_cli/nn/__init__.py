"""The UMSN networks (spec §2–§6): plain PyTorch modules, no I/O."""

from umsn_cli.nn.bnet import BNet
from umsn_cli.nn.confidence import ConfidenceNet
from umsn_cli.nn.config import CONFIGS, BNetConfig, FNetConfig, ModelConfig, SNetConfig, get_config
from umsn_cli.nn.fnet import FNet
from umsn_cli.nn.generator import Generator
from umsn_cli.nn.snet import NUM_CLASSES, SNet
from umsn_cli.nn.umsn import UMSN, build_model, count_parameters, inference_parameters

__all__ = [
    "CONFIGS",
    "NUM_CLASSES",
    "UMSN",
    "BNet",
    "BNetConfig",
    "ConfidenceNet",
    "FNet",
    "FNetConfig",
    "Generator",
    "ModelConfig",
    "SNet",
    "SNetConfig",
    "build_model",
    "count_parameters",
    "get_config",
    "inference_parameters",
]
