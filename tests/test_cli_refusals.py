"""Command-line refusals a new user meets (issue 16): each is one line naming the file, field or extra, exit 2 for bad
input (130 for Ctrl-C), no traceback, and no run folder left behind."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from inprocess import seqtree_inprocess

ROOT = Path(__file__).resolve().parents[1]
PROTEIN = str(ROOT / "recipes" / "protein.yaml")
EHRLICH = str(ROOT / "recipes" / "ehrlich.yaml")
DNA = str(ROOT / "recipes" / "dna.yaml")


def _one_line(result, code: int = 2) -> str:
    """The single stderr line of a refused command (exit ``code``, nothing on stdout, no traceback)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and not result.stdout.strip()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------- optional extras
@pytest.fixture
def without_holo(monkeypatch):
    """``import holo`` fails, as where the holo extra is not installed."""
    names = {"holo", "holo.test_functions", "holo.test_functions.closed_form", "holo.test_functions.elemental"}
    for name in names | {n for n in sys.modules if n.startswith("holo.")}:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("command", ["validate", "design"])
def test_a_missing_extra_is_one_line_naming_it(without_holo, tmp_path, command):
    out = ["--out", str(tmp_path / "run")] if command == "design" else []
    line = _one_line(seqtree_inprocess(command, EHRLICH, *out))
    assert line.startswith("error: the ehrlich oracle needs the 'holo' extra")
    assert 'pip install "seqtree[holo]"' in line
    assert not (tmp_path / "run").exists()


def test_every_extra_of_pyproject_has_its_install_line():
    from seqtree.extras import INSTALL

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(INSTALL) == set(extras) - {"dev"}
    assert all(f'"seqtree[{extra}]"' in command for extra, command in INSTALL.items())


# ------------------------------------------------------------------------------------------ unreadable recipes
RECIPE_COMMANDS = [["validate"], ["design", "--out", "{out}"], ["finetune", "--out", "{out}"], ["train"]]


@pytest.mark.parametrize("command", RECIPE_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", ["binary", "directory"])
def test_a_recipe_that_is_not_a_text_file_is_named(tmp_path, command, kind):
    if kind == "binary":
        recipe = tmp_path / "garbage.yaml"
        recipe.write_bytes(bytes([0x91, 0xFF, 0x00, 0xC3, 0x28]) * 40)
        expected = f"error: {recipe}: not a text recipe (YAML in UTF-8): byte 0x91 at offset 0"
    else:
        recipe = tmp_path / "recipes"
        recipe.mkdir()
        expected = f"error: {recipe}: is a directory, not a recipe file (give the recipe's .yaml file)"
    out = tmp_path / "run"
    line = _one_line(seqtree_inprocess(command[0], str(recipe), *[a.format(out=out) for a in command[1:]]))
    assert line == expected
    assert not out.exists()


# ------------------------------------------------------------------- validate refuses what design refuses
# (recipe, --set overrides, what the one line names); each refused by design before any compute or file
DESIGN_REFUSALS = {
    "prompt letters": (PROTEIN, ["design.prompt=MKT12*z"], "design.prompt: protein tokenizer: character '1'"),
    "scaffold letters": (PROTEIN, ["design.length=null", "design.scaffold=MK__1_"], "design.scaffold:"),
    "too long": (PROTEIN, ["design.length=5000"], "design.length: the design needs"),
    "no model": (PROTEIN, ["model.name=./no/such/model"], "model.name: no model folder at './no/such/model'"),
    "no device": (PROTEIN, ["model.device=cuda:99"], "model.device: 'cuda:99'"),
    "unknown oracle": (PROTEIN, ["oracle={name: no_such_oracle}"], "oracle: unknown oracle 'no_such_oracle'"),
    "oracle alphabet": (DNA, ["oracle={name: amp_classifier}"], "letters that model.name 'dna-tiny' cannot write"),
    "replay buffer": (PROTEIN, ["output.replay_buffer=BUFFER"], "holds trajectories of model dna-tiny"),
}


@pytest.mark.parametrize("case", DESIGN_REFUSALS, ids=list(DESIGN_REFUSALS))
def test_validate_refuses_what_design_refuses_with_the_same_line(tmp_path, case):
    from seqtree.buffer import ReplayBuffer

    recipe, overrides, needle = DESIGN_REFUSALS[case]
    buffer = tmp_path / "buffer.safetensors"  # another model's trajectories
    ReplayBuffer.empty(model="dna-tiny", length=128, num_steps=32).save(buffer)
    sets = [a for o in overrides for a in ("--set", o.replace("BUFFER", str(buffer)))]
    out = tmp_path / "run"
    designed = _one_line(seqtree_inprocess("design", recipe, "--out", str(out), *sets))
    validated = _one_line(seqtree_inprocess("validate", recipe, *sets))
    assert needle in designed and validated == designed
    assert not out.exists()


def test_an_oracle_alphabet_the_model_cannot_write_is_named(tmp_path):
    line = _one_line(seqtree_inprocess("validate", DNA, "--set", "oracle={name: amp_classifier}"))
    assert line.startswith("error: oracle: the amp_classifier oracle's alphabet has 16 letters")
    assert "cannot write: DEFHIKLMNPQRSVWY" in line


def test_a_32_state_ehrlich_oracle_against_the_20_letter_prior_is_refused(tmp_path):
    from seqtree.oracles.ehrlich import holo_available

    if not holo_available():
        pytest.skip("the holo extra is not installed")
    sets = ["--set", "oracle.params.num_states=32"]
    designed = _one_line(seqtree_inprocess("design", EHRLICH, "--out", str(tmp_path / "run"), *sets))
    assert designed == _one_line(seqtree_inprocess("validate", EHRLICH, *sets))
    assert "model.name 'ehrlich-l32-tiny' cannot write: BJOUXZabcdef" in designed
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- another algorithm's params
@pytest.mark.parametrize("command", ["validate", "design"])
def test_switching_algorithm_names_the_owner_of_a_left_over_parameter(tmp_path, command):
    out = ["--out", str(tmp_path / "run")] if command == "design" else []
    line = _one_line(seqtree_inprocess(command, PROTEIN, *out, "--set", "search.algorithm=best_of_n"))
    assert line == (
        f"error: {PROTEIN}: search.initial_samples belongs to remask, not best_of_n; to switch "
        "algorithms replace the whole section: --set search='{algorithm: best_of_n}' (with best_of_n's own "
        "parameters inside the braces)"
    )
    assert not (tmp_path / "run").exists()
    assert seqtree_inprocess("validate", PROTEIN, "--set", "search={algorithm: best_of_n}").returncode == 0


# ----------------------------------------------------------------------------------------------------- Ctrl-C
class _InterruptImport:
    """A meta-path finder that raises KeyboardInterrupt when ``name`` is imported: a Ctrl-C during imports."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_imports_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "seqtree.fleet")  # the design command imports it first thing
    monkeypatch.setattr(sys, "meta_path", [_InterruptImport("seqtree.fleet"), *sys.meta_path])
    out = tmp_path / "run"
    line = _one_line(seqtree_inprocess("design", PROTEIN, "--out", str(out)), code=130)
    assert line == (
        "interrupted before the run started: nothing was written, so there is nothing to resume; run seqtree "
        "design again without --resume"
    )
    assert not out.exists()


def test_ctrl_c_while_the_command_line_loads_is_one_line():
    code = (
        "import sys\n"
        "class F:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, F())\n"
        "from seqtree.cli import main\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 130 and result.stderr == "interrupted\n"


def test_ctrl_c_before_the_run_starts_leaves_nothing_and_resume_says_why(monkeypatch, tmp_path):
    import seqtree.models.loading as loading

    load_model = loading.load_model

    def interrupted_load(*args, **kwargs):  # Ctrl-C while the model loads: the stop flag is set
        signal.raise_signal(signal.SIGINT)
        return load_model(*args, **kwargs)

    monkeypatch.setattr(loading, "load_model", interrupted_load)
    out = tmp_path / "run"
    line = _one_line(seqtree_inprocess("design", PROTEIN, "--out", str(out)), code=130)
    assert line == (
        f"interrupted before the run started: nothing was written to {out}, so there is nothing to resume; run "
        "seqtree design again without --resume"
    )
    assert not out.exists()
    resumed = _one_line(seqtree_inprocess("design", "--resume", str(out)))
    assert resumed == (
        f"error: --resume {out}: no such run directory (a run interrupted before it started leaves none; start it "
        "again without --resume)"
    )
