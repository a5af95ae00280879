"""The UMSN networks: sizes, costs, shapes, ranges and the inference graph."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from umsn_cli.nn import (
    CONFIGS,
    ConfidenceNet,
    ModelConfig,
    build_model,
    count_parameters,
)
from umsn_cli.nn.blocks import DenseBottleneck, SmoothedDilation


def gflops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def costs(config: ModelConfig) -> dict[str, float]:
    """Parameters (M) and GFLOP at 128² of S-Net and the generator, on the meta device."""
    with torch.device("meta"):
        model = build_model(config).eval()
        x = torch.empty(1, 3, 128, 128)
        masks = torch.empty(1, 4, 128, 128)
    return {
        "snet_params": count_parameters(model.snet) / 1e6,
        "snet_gflop": gflops(lambda: model.snet(x)),
        "gen_params": count_parameters(model.generator) / 1e6,
        "gen_gflop": gflops(lambda: model.generator(x, masks)),
    }


def test_paper_size_matches_published_costs():
    c = costs(CONFIGS["umsn"])
    assert c["gen_params"] == pytest.approx(7.85, rel=0.05)
    assert c["gen_gflop"] == pytest.approx(115.0, rel=0.05)
    assert c["snet_params"] == pytest.approx(6.2, rel=0.05)
    assert c["snet_gflop"] == pytest.approx(69.0, rel=0.05)


def test_lite_is_at_most_a_tenth_of_paper_size():
    paper, lite = costs(CONFIGS["umsn"]), costs(CONFIGS["umsn-lite"])
    assert lite["gen_gflop"] <= paper["gen_gflop"] / 10
    assert lite["snet_gflop"] <= paper["snet_gflop"] / 10
    assert lite["gen_params"] < paper["gen_params"] / 10


def test_lite_has_the_same_structure_as_paper_size():
    """Same modules in the same places: only the widths differ."""
    with torch.device("meta"):
        paper, lite = build_model("umsn"), build_model("umsn-lite")
    kinds = lambda m: [(name, type(mod).__name__) for name, mod in m.named_modules()]  # noqa: E731
    assert kinds(paper) == kinds(lite)


@pytest.mark.parametrize("name", ["umsn-lite", "umsn"])
def test_output_shapes_and_ranges(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    size = 128 if name == "umsn-lite" else 64  # paper size at 64² keeps the test quick
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        restored, masks = model(x)
        probs = model.segment(x)
    assert restored.shape == (2, 3, size, size)
    assert masks.shape == probs.shape == (2, 4, size, size)
    for t in (restored, masks, probs):
        assert torch.isfinite(t).all()
        assert t.min() >= 0 and t.max() <= 1
    torch.testing.assert_close(masks, probs)


def test_input_size_must_be_a_multiple_of_four():
    model = build_model("umsn-lite").eval()
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.rand(1, 3, 66, 64))


def test_fnet_image_heads_do_not_run_at_inference():
    model = build_model("umsn-lite").eval()
    calls = []
    for fnet in model.generator.fnets:
        fnet.image_head.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert calls == []
    # ... but they are real modules, used by stage-1 pre-training:
    with torch.no_grad():
        out = model.generator.fnets[0].restore(torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64))
    assert calls == [1] and out.shape == (1, 3, 64, 64)
    head_params = sum(p.numel() for f in model.generator.fnets for p in f.image_head.parameters())
    total = sum(p.numel() for p in model.generator.parameters())
    assert count_parameters(model.generator) == total - head_params > 0


def test_smoothed_dilation_starts_as_identity():
    x = torch.randn(2, 5, 16, 16)
    torch.testing.assert_close(SmoothedDilation(5)(x), x)
    block = DenseBottleneck(5, 4, "instance", dilated=2)
    plain = DenseBottleneck(5, 4, "instance", dilated=2)
    plain.load_state_dict(block.state_dict())
    plain.conv3[2] = torch.nn.Identity()  # drop the smoothing step
    torch.testing.assert_close(block(x), plain(x))


def test_smoothed_dilation_is_learnable_and_shared():
    layer = SmoothedDilation(3)
    assert layer.weight.shape == (1, 1, 3, 3) and layer.weight.requires_grad
    layer(torch.randn(1, 3, 8, 8)).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_confidence_network_gives_one_confidence_per_class():
    cn = ConfidenceNet(width=4)
    output = torch.rand(3, 3, 32, 32, requires_grad=True)
    target, masks = torch.rand(3, 3, 32, 32), torch.rand(3, 4, 32, 32)
    c = cn(output, target, masks)
    assert c.shape == (3, 4)
    assert ((c > 0) & (c < 1)).all()
    c.sum().backward()
    assert output.grad is not None and output.grad.abs().sum() > 0


def test_config_round_trip_and_unknown_keys():
    config = CONFIGS["umsn-lite"]
    assert ModelConfig.from_dict(config.to_dict()) == config
    bad = config.to_dict()
    bad["bnet"]["mystery"] = 1
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict(bad)
    assert dataclasses.replace(config, name="x").name == "x"


def test_training_mode_gradients_reach_every_inference_parameter():
    """The training losses (full and half scale) reach every generator weight."""
    model = build_model("umsn-lite").train()
    restored, half_scale = model.generator(torch.rand(2, 3, 32, 32), torch.rand(2, 4, 32, 32))
    (restored.mean() + half_scale.mean()).backward()
    generator_params = [
        (n, p) for n, p in model.generator.named_parameters() if ".image_head." not in n
    ]
    missing = [n for n, p in generator_params if p.grad is None]
    assert missing == []


def test_dilated_convolutions_train_in_bf16_channels_last():
    """torch 2.13's CPU bf16 backward of a channels-last dilated conv crashes or gives NaN."""
    from umsn_cli.nn.blocks import conv

    torch.manual_seed(0)
    layer = conv(30, 10, 3, dilation=2).to(memory_format=torch.channels_last)
    x = torch.randn(16, 30, 64, 64).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.float().square().mean().backward()
        assert torch.isfinite(layer.weight.grad).all()
