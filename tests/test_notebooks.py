"""The notebooks in ``notebooks/`` run top to bottom, and are committed without outputs.

Each notebook is executed in a fresh Jupyter kernel running *this* interpreter
(a throw-away kernelspec pointing at ``sys.executable``, so whatever kernels
the machine has installed cannot pick another Python), with the repository on
``PYTHONPATH`` (fcnn need not be installed) and matplotlib's Agg backend (no
display). The notebooks' own ``assert``s check the key numbers; a failing cell
fails the test with the cell's traceback.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
KERNEL_NAME = "fcnn-test-python"
TIMEOUT_PER_CELL = 300
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def test_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_layers.ipynb", "02_train_digits.ipynb", "03_functional_superpowers.ipynb",
                     "04_from_pytorch.ipynb", "05_convert_torchvision.ipynb", "06_image_folder.ipynb"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    """The rule for notebooks in git: no outputs, no execution counts (clear them before committing).

    ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`` does it.
    """
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment under which a kernel named KERNEL_NAME is this interpreter with fcnn importable."""
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "fcnn tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    env = {
        "JUPYTER_PATH": os.pathsep.join([str(jupyter_dir), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "MPLBACKEND": "Agg",
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
        # the ipykernel's own start-up must not wait on anything interactive
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_env, monkeypatch):
    for name, value in kernel_env.items():
        monkeypatch.setenv(name, value)
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=TIMEOUT_PER_CELL,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        # the kernel colours its tracebacks; the ANSI codes only clutter a CI log
        message = ANSI_CODES.sub("", str(e))
        pytest.fail(f"{path.name} failed:\n{message}", pytrace=False)
