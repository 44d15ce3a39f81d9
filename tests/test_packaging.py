"""The package installs as a plain wheel with the user's layout mapped into one namespace."""

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {
    "seqtree": ROOT / "seqtree",
    "seqtree.models": ROOT / "models",
    "seqtree.oracles": ROOT / "oracles",
    "seqtree.bench": ROOT / "bench",
}


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in MAPPED.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder)
            found.add(".".join([name, *relative.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert listed == _packages_on_disk()


def test_wheel_holds_mapped_packages_and_shipped_checkpoints(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("seqtree-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "seqtree/models/tokenizers.py" in names and "seqtree/oracles/__init__.py" in names
    assert "seqtree/bench/__main__.py" in names and "seqtree/testing.py" in names  # benchmarks run without a checkout
    assert not any(n.startswith(("models/", "oracles/", "bench/", "tests/")) for n in names)  # no clashing packages
    for checkpoint in (ROOT / "models" / "checkpoints").glob("*/config.json"):
        for file in checkpoint.parent.iterdir():
            if file.suffix in {".json", ".safetensors", ".md"}:
                assert f"seqtree/models/checkpoints/{checkpoint.parent.name}/{file.name}" in names
