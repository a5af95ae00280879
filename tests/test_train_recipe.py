"""``umsn train --recipe``: a chain of runs and its export, replayed and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train import log_lines, make_dataset, ok, train

from umsn_cli.errors import UsageError
from umsn_cli.train.recipe import ExportStep, TrainStep, command_line, load_recipe


@pytest.fixture(autouse=True)
def _tiny_models(monkeypatch: pytest.MonkeyPatch, tiny_fast_config) -> None:
    from umsn_cli.nn.config import CONFIGS, plain

    monkeypatch.setitem(CONFIGS, "test-tiny-fast", tiny_fast_config)
    monkeypatch.setitem(CONFIGS, "bnet-test-tiny-fast", plain(tiny_fast_config))
    torch.set_num_threads(1)


CHAIN = """
weights = "bnet-test-tiny-fast.recipe-v1"
about = "S-Net, a B-Net run stopped at step 2 of a 4-step schedule, resumed to 3, exported"

[vars]
DATA = "{data}"
RUNS = "{runs}"

[settings.tiny]
model = "test-tiny-fast"
data = "{{DATA}}/faces"
masks = "{{DATA}}/masks"
batch_size = 2
precision = "fp32"
perceptual = false
kernel_bank = 20
holdout = 2
log_every = 1
val_every = 2
ckpt_every = 1

[[step]]
umsn = ["synth-blur", "{{DATA}}/val", "-o", "{{RUNS}}/pairs", "--seed", "0"]
makes = "{{RUNS}}/pairs/pairs.jsonl"

[[step]]
train = "snet"
out = "{{RUNS}}/snet"
use = ["tiny"]
settings = {{ steps = 2 }}

[[step]]
train = "bnet"
out = "{{RUNS}}/bnet"
use = ["tiny"]
settings = {{ steps = 4, snet = "{{RUNS}}/snet", val_data = "{{DATA}}/val" }}
stop_at = 2

[[step]]
train = "bnet"
out = "{{RUNS}}/bnet"
resume = true
settings = {{ steps = 3 }}

[[step]]
export = "{{RUNS}}/bnet"
to = "{{RUNS}}/weights.pt"
tag = "recipe-v1"
storage = "int8"
"""


def _recipe(tmp_path: Path, text: str = CHAIN) -> Path:
    data = make_dataset(tmp_path / "data")["data"].parent
    path = tmp_path / "chain.toml"
    path.write_text(text.format(data=data, runs=tmp_path / "runs"))
    return path


def test_a_recipe_is_read_into_its_steps_with_vars_and_shared_settings(tmp_path):
    recipe = load_recipe(_recipe(tmp_path))
    assert recipe.weights == "bnet-test-tiny-fast.recipe-v1"
    pairs, snet, bnet, more, export = recipe.steps
    assert isinstance(snet, TrainStep) and isinstance(export, ExportStep)
    assert command_line(pairs) == f"umsn synth-blur {tmp_path / 'data'}/val -o " + (
        f"{tmp_path / 'runs'}/pairs --seed 0"
    )
    assert snet.settings["data"] == f"{tmp_path / 'data'}/faces" and snet.end == 2
    assert bnet.end == 2 and bnet.settings["steps"] == 4 and not bnet.resume
    assert more.resume and more.end == 3 and more.settings == {"steps": 3, "stop_at": 0}
    line = command_line(bnet)
    assert line.startswith(f"umsn train bnet -o {tmp_path / 'runs'}/bnet --arch test-tiny-fast")
    assert "--stop-at 2" in line and "--no-perceptual" in line and "--steps 4" in line
    assert command_line(export) == (
        f"umsn train -o {tmp_path / 'runs'}/bnet --resume --export {tmp_path / 'runs'}/weights.pt"
        " --tag recipe-v1 --storage int8"
    )


def test_a_recipe_replays_its_chain_skips_what_is_done_and_resumes_the_rest(tmp_path):
    path = _recipe(tmp_path)
    runs = tmp_path / "runs"
    dry = train("--recipe", path, "--dry-run")
    ok(dry)
    assert dry.stdout.count("[to run]") == 5 and not runs.exists()

    ok(train("--recipe", path))
    assert (runs / "weights.pt").is_file() and (runs / "pairs" / "pairs.jsonl").is_file()
    assert torch.load(runs / "bnet" / "last.pt", weights_only=True)["step"] == 3
    notes = [line.get("note", "") for line in log_lines(runs / "bnet")]
    assert any("--stop-at reached" in note for note in notes)

    # The export step's command line works by hand too (the run knows its stage).
    by_hand = command_line(load_recipe(path).steps[-1]).replace("weights.pt", "by-hand.pt")
    ok(train(*by_hand.split()[2:]))
    assert (runs / "by-hand.pt").is_file()
    again = train("--recipe", path, "--dry-run")
    assert again.stdout.count("[done]") == 5
    # One more step appended: only it runs, from where the chain stopped.
    longer = path.read_text().replace('[[step]]\nexport', '[[step]]\ntrain = "bnet"\nout = '
                                      f'"{runs}/bnet"\nresume = true\nsettings = {{ steps = 4 }}'
                                      '\n\n[[step]]\nexport')  # fmt: skip
    path.write_text(longer.replace("weights.pt", "weights2.pt"))
    assert "[resume at step 3]" in train("--recipe", path, "--dry-run").stdout
    ok(train("--recipe", path))
    assert torch.load(runs / "bnet" / "last.pt", weights_only=True)["step"] == 4
    assert torch.load(runs / "snet" / "last.pt", weights_only=True)["step"] == 2  # not rerun


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("steps = 2 }", "steps = 2, lrr = 1 }"), "unknown training settings ['lrr']"),
        (
            ('use = ["tiny"]\nsettings = {{ steps = 2', 'use = ["tin"]\nsettings = {{ steps = 2'),
            "no [settings.tin]",
        ),
        (("tag = ", "tagg = "), "unknown keys ['tagg']"),
        (('"{{RUNS}}/snet"\nuse', '"{{RUNZ}}/snet"\nuse'), "{RUNZ} is not in [vars]"),
    ],
)
def test_a_broken_recipe_is_refused_before_anything_runs(tmp_path, change, words):
    path = _recipe(tmp_path, CHAIN.replace(*change, 1))
    result = train("--recipe", path)
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert not (tmp_path / "runs").exists()


def test_a_recipe_takes_no_other_settings_and_dry_run_needs_one(tmp_path):
    path = _recipe(tmp_path)
    assert "give it alone" in train("--recipe", path, "--lr", "1").stderr
    assert "--dry-run goes with --recipe" in train("bnet", "-o", tmp_path, "--dry-run").stderr
    assert "name the stage" in train("-o", tmp_path).stderr
    with pytest.raises(UsageError, match="cannot read the recipe"):
        load_recipe(tmp_path / "missing.toml")


def test_every_published_weights_names_the_recipe_that_replays_it():
    """The manifest's training_config points to recipes/<id>.toml, which loads (every
    setting checked) and ends in the export of that id."""
    from umsn_cli.weights.manifest import load_manifest

    root = Path(__file__).resolve().parent.parent
    for entry in load_manifest():
        name = f"recipes/{entry.id}.toml"
        assert entry.training_config.startswith(name + " (weights made at git revision ")
        recipe = load_recipe(root / name)
        assert recipe.weights == entry.id
        export = recipe.steps[-1]
        assert isinstance(export, ExportStep) and export.to.endswith(f"/{entry.id}.pt")
        assert export.tag == entry.id.split(".", 1)[1]
