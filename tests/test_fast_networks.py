"""The ``fast`` family (docs/method.md, The CPU family): the method in CPU-friendly blocks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from umsn_cli.nn import CONFIGS, ModelConfig, build_model, count_parameters
from umsn_cli.nn.config import FastBNetConfig
from umsn_cli.nn.fast import FastBNet, NAFBlock, ResBlock
from umsn_cli.nn.generator import Generator, PlainBNet
from umsn_cli.nn.umsn import make_confidence, make_fnet, make_generator


def test_a_fresh_model_returns_its_input():
    """Residual blocks and image heads start at zero: nothing is invented before training."""
    torch.manual_seed(0)
    model = build_model("umsn-fast").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        restored, masks = model(x)
    torch.testing.assert_close(restored, x)
    assert masks.shape == (2, 4, 64, 64) and masks.min() >= 0 and masks.max() <= 1


def test_trained_weights_change_the_output_and_keep_the_range(tiny_fast_config):
    torch.manual_seed(0)
    model = build_model(tiny_fast_config).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        restored, masks = model(x)
    assert restored.shape == (2, 3, 32, 48)
    assert not torch.allclose(restored, x)
    assert restored.min() >= 0 and restored.max() <= 1
    assert masks.shape == (2, 4, 32, 48)


def test_input_must_be_a_multiple_of_eight(tiny_fast_config):
    model = build_model(tiny_fast_config).eval()
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.rand(1, 3, 36, 32))


def test_guided_generator_uses_masks_and_class_streams(tiny_fast_config):
    """Changing one class mask changes the output; the plain B-Net ignores masks."""
    torch.manual_seed(0)
    guided = make_generator(tiny_fast_config)
    plain = make_generator(dataclasses.replace(tiny_fast_config, guided=False))
    assert isinstance(guided, Generator) and isinstance(plain, PlainBNet)
    assert isinstance(guided.bnet, FastBNet) and isinstance(plain.bnet, FastBNet)
    for net in (guided, plain):
        for p in net.parameters():
            p.data.normal_(0, 0.3)
    x, masks = torch.rand(1, 3, 32, 32), torch.rand(1, 4, 32, 32)
    other = masks.clone()
    other[:, 2] = 1 - other[:, 2]
    with torch.no_grad():
        assert not torch.allclose(guided(x, masks)[0], guided(x, other)[0])
        torch.testing.assert_close(plain(x, masks)[0], plain(x, other)[0])
        # The class stream of m3 alone carries part of that change.
        features = [f(x, masks[:, i : i + 1]) for i, f in enumerate(guided.fnets)]
        assert features[0].shape == (1, 4, 8, 8)


def test_gradients_reach_every_inference_parameter(tiny_fast_config):
    """After one step away from the zero start, the losses reach every generator weight."""
    torch.manual_seed(0)
    generator = make_generator(tiny_fast_config)
    for p in generator.parameters():
        p.data.normal_(0, 0.1)
    restored, half = generator(torch.rand(2, 3, 32, 32), torch.rand(2, 4, 32, 32))
    (restored.mean() + half.mean()).backward()
    missing = [
        n for n, p in generator.named_parameters() if ".image_head." not in n and p.grad is None
    ]
    assert missing == []


def test_fnet_pretraining_head_and_confidence(tiny_fast_config):
    fnet = make_fnet(tiny_fast_config)
    out = fnet.restore(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    cn = make_confidence(tiny_fast_config)
    c = cn(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32), torch.rand(3, 4, 32, 32))
    assert c.shape == (3, 4) and (c > 0).all() and (c < 1).all()


def test_res_block_starts_as_identity():
    block = ResBlock(8)
    x = torch.randn(1, 8, 16, 16)
    torch.testing.assert_close(block(x), x)


def test_naf_block_starts_as_identity_and_then_mixes_space_and_channels():
    block = NAFBlock(8)
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.beta.fill_(1.0)
        block.gamma.fill_(1.0)
    y = block(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    # One pixel changed moves its 3×3 neighbours most (the depthwise convolution), and
    # the rest of the face a little (the channel attention's global mean).
    poked = x.clone()
    poked[0, 0, 8, 8] += 1  # one channel: the LayerNorm would cancel a shift of all
    change = (block(poked) - y)[0].abs().sum(0)
    near = change[7:10, 7:10].clone()
    change[7:10, 7:10] = 0
    assert near.min() > change.max() > 0


def test_naf_blocks_follow_the_residual_blocks_of_each_level(tiny_fast_config):
    bnet_cfg = dataclasses.replace(tiny_fast_config.bnet, naf=(0, 1, 2))
    config = dataclasses.replace(tiny_fast_config, bnet=bnet_cfg)
    net = make_generator(dataclasses.replace(config, guided=False)).bnet
    assert [type(b) for b in net.body] == [ResBlock, NAFBlock, NAFBlock]
    assert [type(b) for b in net.enc2] == [ResBlock, NAFBlock]
    assert [type(b) for b in net.dec1] == [ResBlock]
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_the_naf_config_grows_xl_within_the_30_gflop_budget():
    """Issue budget for the default's successors: ≤ 30 GFLOP per 128² face, S-Net included."""
    from umsn_cli.benchmark.speed import model_gflop

    xl, naf = build_model("bnet-fast-xl"), build_model("bnet-fast-xl-naf")
    assert model_gflop(xl, 128) < model_gflop(naf, 128) <= 30
    assert set(xl.state_dict()) < set(naf.state_dict())  # every xl weight has its place


def test_a_deep_level_grows_xl_exactly_and_sees_farther():
    """bnet-fast-xl-deep: xl plus blocks at H/16. Grown from xl's weights it computes
    what xl computed; trained, an output pixel depends on inputs beyond xl's view."""
    from umsn_cli.benchmark.speed import model_gflop

    torch.manual_seed(0)
    xl, deep = build_model("bnet-fast-xl").eval(), build_model("bnet-fast-xl-deep").eval()
    assert set(xl.state_dict()) < set(deep.state_dict())
    deep.load_state_dict(xl.state_dict(), strict=False)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(deep(x)[0], xl(x)[0])
    assert model_gflop(xl, 128) < model_gflop(deep, 128) < model_gflop(xl, 128) + 1
    assert deep.config.size_multiple == 16 and xl.config.size_multiple == 8
    with pytest.raises(ValueError, match="multiple of 16"):
        deep(torch.rand(1, 3, 136, 136))


def test_the_deep_level_reaches_further_than_the_body():
    """With the H/16 level switched on (its way up no longer zero), a pixel far from an
    output pixel moves it: the receptive field grows past the H/8 body's."""
    cfg = FastBNetConfig(widths=(8, 8, 8), blocks=(0, 0, 0), deep=2)
    net = FastBNet(cfg, class_feature_width=0, mask_channels=0).eval()
    shallow = FastBNet(dataclasses.replace(cfg, deep=0), 0, 0).eval()
    for module in (*net.modules(), *shallow.modules()):
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.5)
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    for model, reach in ((shallow, False), (net, True)):
        out, _ = model(x, torch.zeros(1, 0, 128, 128), [])
        (grad,) = torch.autograd.grad(out[0, :, 64, 64].sum(), x)
        far = grad[0, :, :, 110:].abs().sum()  # ≥ 46 px to the right
        assert bool(far > 0) == reach


def test_config_round_trip_through_json_lists():
    import json

    config = CONFIGS["umsn-fast"]
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.bnet.widths, tuple)
    with pytest.raises(ValueError, match="FastBNetConfig"):
        dataclasses.replace(config, bnet=CONFIGS["umsn-lite"].bnet)
    with pytest.raises(ValueError, match="family"):
        dataclasses.replace(config, family="mystery")


def test_umsn_fast_fits_the_cpu_budget():
    """Inference cost docs/method.md reports: a few GFLOP per 128² face, S-Net included."""
    from umsn_cli.benchmark.speed import model_gflop

    model = build_model("umsn-fast")
    gflop = model_gflop(model, 128)
    assert 5 < gflop < 15
    assert count_parameters(model) < 20e6
    wider = dataclasses.replace(
        CONFIGS["umsn-fast"], bnet=FastBNetConfig(widths=(96, 192, 256), blocks=(1, 3, 6))
    )
    assert model_gflop(build_model(wider), 128) > gflop
