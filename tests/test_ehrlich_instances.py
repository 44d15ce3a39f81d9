"""Any Ehrlich instance: parsing and naming it, its letters, its prior's data, training recipe and design recipe,
a prior trained with an explicit alphabet, and the benchmark on an instance given by its parameters."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from seqtree.config import load_recipe
from seqtree.oracles.ehrlich import EXTENDED_ALPHABET, default_alphabet
from seqtree.oracles.ehrlich_instances import EhrlichInstance, parse_instance
from seqtree.training.recipe import TrainRecipe

ROOT = Path(__file__).resolve().parents[1]
holo = pytest.mark.skipif(importlib.util.find_spec("holo") is None, reason="needs the holo extra")


def test_benchmark_generated_and_key_value_specs_name_the_same_instances():
    assert parse_instance("ehrlich-l32") == EhrlichInstance(20, 32, 2, 4, None, 0)
    assert parse_instance("ehrlich-l128").params == {"num_states": 20, "dim": 128, "num_motifs": 4,
                                                     "motif_length": 4, "seed": 0}  # fmt: skip
    # key=value in any spelling, with the benchmark instance recognised by its parameters
    assert parse_instance("v=20, L=32, c=2, k=4, seed=0").name == "ehrlich-l32"
    custom = parse_instance("num_states=32,dim=64,motifs=2,k=4,q=2,s=1")
    assert custom == EhrlichInstance(32, 64, 2, 4, 2, 1)
    assert custom.name == "ehrlich-v32-l64-c2-k4-q2-s1" and parse_instance(custom.name) == custom
    plain = parse_instance("v=32,L=64")
    assert plain.name == "ehrlich-v32-l64-c2-k4-s0" and parse_instance(plain.name) == plain
    assert "quantization" not in plain.params


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ehrlich-l64", "unknown Ehrlich instance"),
        ("v=32,width=3", "unknown key 'width'"),
        ("v=32,v=20", "given twice"),
        ("v=thirty", "is not an integer"),
        ("L=10,c=3,k=4", "12 motif positions do not fit in length L = 10"),
        ("k=4,q=5", "q must lie in"),
        ("v=63", "give an explicit alphabet"),
        ("v=1", "need v >= 2"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_instance(spec)


def test_default_alphabet_keeps_the_benchmark_letters_and_extends_past_twenty():
    assert default_alphabet(20) == "ACDEFGHIKLMNPQRSTVWY"  # the shipped instances' letters are unchanged
    assert default_alphabet(4) == "ACDE"
    letters = default_alphabet(62)
    assert letters == EXTENDED_ALPHABET and len(set(letters)) == 62 and letters.isalnum()


def test_training_recipe_alphabet_is_checked():
    base = {"domain": "ehrlich", "name": "x", "data": {"train": "a.txt", "val": "b.txt"}}
    assert TrainRecipe.model_validate({**base, "alphabet": "ABC"}).alphabet == "ABC"
    with pytest.raises(ValueError, match="distinct letters; repeated: 'A'"):
        TrainRecipe.model_validate({**base, "alphabet": "ABCA"})
    with pytest.raises(ValueError, match="not a character alphabet"):
        TrainRecipe.model_validate({**base, "domain": "text", "alphabet": "ABC"})


@holo
def test_the_benchmark_data_are_rebuilt_byte_for_byte(tmp_path):
    """data/ehrlich/prepare.py and ``seqtree ehrlich prepare`` share one draw; it must still give the shipped files."""
    from seqtree.oracles.ehrlich_prior import default_data_seed, default_sizes, draw_prior_data

    instance = parse_instance("ehrlich-l32")
    assert default_sizes(instance) == (20000, 1000) and default_data_seed(instance) == 1000
    assert default_data_seed(parse_instance("ehrlich-l128")) == 1001
    draw_prior_data(instance, tmp_path, n_train=20000, n_val=1000, data_seed=1000)
    shipped = ROOT / "data" / "ehrlich" / "ehrlich-l32"
    for split in ("train.txt", "val.txt"):
        assert (tmp_path / split).read_bytes() == (shipped / split).read_bytes()


@holo
def test_prepare_train_and_design_a_32_state_instance(tmp_path):
    """The user's path on a new instance: prepare (data, train.yaml, design.yaml), train a prior whose character
    tokenizer has the instance's 32 letters, and search with it; samples only ever hold the instance's letters."""
    from seqtree.cli import app
    from seqtree.models.loading import load_model
    from seqtree.oracles.ehrlich_prior import draw_prior_data
    from seqtree.training.run import train

    runner = CliRunner()
    folder = tmp_path / "v32"
    spec = "v=32,L=12,c=2,k=3,seed=1"
    result = runner.invoke(app, ["ehrlich", "prepare", spec, "--out", str(folder), "--train", "400", "--val", "40",
                                 "--steps", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "seqtree train" in result.output and "ehrlich-v32-l12-c2-k3-s1" in result.output
    info = json.loads((folder / "instance.json").read_text())
    instance = parse_instance(spec)
    assert info["alphabet"] == default_alphabet(32) and info["feasible_fraction"] == 1.0
    train_lines = (folder / "train.txt").read_text().splitlines()
    assert len(train_lines) == 400 and all(len(s) == 12 and set(s) <= set(info["alphabet"]) for s in train_lines)
    assert instance.oracle()([info["optimal_solution"]]).tolist() == [1.0]
    # the same draw again gives the same bytes; another data seed gives other sequences
    again = draw_prior_data(instance, tmp_path / "again", n_train=400, n_val=40, data_seed=info["data_seed"])
    assert (tmp_path / "again" / "train.txt").read_bytes() == (folder / "train.txt").read_bytes()
    assert again["mean_reward"] == info["mean_reward"]
    draw_prior_data(instance, tmp_path / "other", n_train=400, n_val=40, data_seed=7)
    assert (tmp_path / "other" / "train.txt").read_bytes() != (folder / "train.txt").read_bytes()

    recipe = load_recipe(TrainRecipe, folder / "train.yaml", ["data.batch_size=16", "model.hidden_size=16",
                                                                "model.num_layers=2"])  # fmt: skip
    assert recipe.alphabet == info["alphabet"] and recipe.training.max_steps == 4
    train(recipe, progress=False)
    model = load_model(folder / "model")
    assert model.tokenizer.alphabet == info["alphabet"] and model.tokenizer.name == "ehrlich"
    assert model.tokenizer.vocab_size == 34  # pad, mask and 32 states

    design = yaml.safe_load((folder / "design.yaml").read_text())
    assert design["oracle"]["params"]["num_states"] == 32 and design["design"]["length"] == 12
    assert design["finetune"]["target_reward"] == 1.0
    result = runner.invoke(app, ["design", str(folder / "design.yaml"), "--out", str(tmp_path / "run"),
                                 "--set", "budget.nfe=200", "--set", "design.num_designs=4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    designs = (tmp_path / "run" / "designs.csv").read_text().splitlines()[1:]
    sequences = [line.split(",")[1] for line in designs]
    assert sequences and all(len(s) == 12 and set(s) <= set(info["alphabet"]) for s in sequences)


@holo
def test_a_letter_outside_the_alphabet_names_the_file_and_record(tmp_path):
    from seqtree.cli import app

    (tmp_path / "train.txt").write_text("ACDE\nACDX\n")
    (tmp_path / "val.txt").write_text("ACDE\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"domain: ehrlich\nname: t\nalphabet: ACDEF\n"
        f"data: {{train: {tmp_path / 'train.txt'}, val: {tmp_path / 'val.txt'}, max_length: 4, batch_size: 2}}\n"
        f"training: {{max_steps: 1, threads: 1}}\noutput_dir: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 2
    assert "train.txt, record 2" in result.output and "'X' at position 3" in result.output


def test_prepare_refuses_a_bad_spec_with_exit_2():
    from seqtree.cli import app

    result = CliRunner().invoke(app, ["ehrlich", "prepare", "v=32,L=6,c=2,k=4"])
    assert result.exit_code == 2 and "do not fit in length L = 6" in result.output
