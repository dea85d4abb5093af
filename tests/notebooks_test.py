"""The Colab notebooks in notebooks/: structure, imports, and headless execution.

The two CPU notebooks run top to bottom with nbclient at the tiny size
(DVDGAN_TINY=1: the runlocal config, 4 training steps) in a kernel that is this
interpreter (`sys.executable`), declared in a temporary kernel spec found through
JUPYTER_PATH, so the test does not depend on which `python3` kernel the machine
has installed. The TPU notebook cannot run here: it is validated, every code cell
must parse, and every module it imports must resolve.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import sys

import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
ALL = ("quickstart.ipynb", "sample_and_export.ipynb", "tpu_training.ipynb")
CELL_TIMEOUT_S = 300


def _read(name):
    return nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)


def _code(nb):
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", ALL)
def test_notebook_is_valid_clean_and_parameterised(name):
    nb = _read(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name}: commit notebooks with empty outputs"
            )
            ast.parse(cell.source)  # no IPython magics: plain Python cells
    assert 'os.environ.get("DVDGAN_TINY"' in _code(nb)[0], (
        f"{name}: the first code cell must read DVDGAN_TINY"
    )
    # The notebooks call the package; no model code is pasted into cells.
    source = "\n".join(_code(nb))
    assert "class " not in source and "keras.layers" not in source


def _imports(sources):
    """(module, names) of every import in `sources`: names [] for `import module`."""
    found = []
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                found += [(a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.append((node.module, [a.name for a in node.names]))
    return found


def _resolves(module: str, names) -> bool:
    """Whether `import module` / `from module import names` would succeed."""
    try:
        if importlib.util.find_spec(module) is None:
            return False
    except ModuleNotFoundError:  # a parent package is missing
        return False
    if not names:
        return True
    loaded = importlib.import_module(module)
    is_package = hasattr(loaded, "__path__")
    return all(
        hasattr(loaded, n)
        or (is_package and importlib.util.find_spec(f"{module}.{n}") is not None)
        for n in names
    )


@pytest.mark.parametrize("name", ALL)
def test_notebook_imports_resolve(name):
    imports = _imports(_code(_read(name)))
    assert "dvdgan_tf" in {m.split(".")[0] for m, _ in imports}
    missing = [(m, n) for m, n in imports if not _resolves(m, n)]
    assert not missing, f"{name}: unresolved imports {missing}"


def test_tpu_notebook_uses_tpu_strategy_and_gcs():
    source = "\n".join(_code(_read("tpu_training.ipynb")))
    assert 'STRATEGY = "default" if TINY else "tpu"' in source
    assert "runtime.get_strategy(STRATEGY)" in source
    assert "config.data.data_dir = DATA_DIR" in source and "gs://" in source
    assert "training.train(config, WORKDIR, strategy)" in source


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """JUPYTER_PATH with a `python3` kernel spec that runs this interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (dvdgan_tf tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return str(root)


def _execute(name, kernel_env, workdir, cache, monkeypatch):
    """Runs notebook `name` top to bottom at the tiny size; returns (text, gifs):
    its code cells' printed text and GIF outputs."""
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("DVDGAN_TINY", "1")
    monkeypatch.setenv("DVDGAN_WORKDIR", workdir)
    monkeypatch.setenv("DVDGAN_TF_CACHE", cache)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    nb = _read(name)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": NOTEBOOKS}},  # Jupyter's cwd for the file
    )
    client.execute()
    outputs = [out for c in nb.cells if c.cell_type == "code" for out in c.outputs]
    text = "\n".join(out.get("text", "") for out in outputs)
    gifs = [out for out in outputs if "image/gif" in out.get("data", {})]
    return text, gifs


# The two CPU notebooks in a user's order, on one pytest-xdist worker
# (--dist=loadgroup): quickstart trains a tiny run, then sample_and_export samples
# and exports that run, as its text asks (~40 s each on 2 CPU cores: not marked
# slow). Its own tiny training, for a workdir without a checkpoint, runs in the
# slow test at the end of this file.
NOTEBOOK_GROUP = pytest.mark.xdist_group("notebooks")


@pytest.fixture(scope="module")
def quickstart_run(kernel_env, tmp_path_factory):
    """quickstart.ipynb executed at the tiny size: (workdir, text, gifs)."""
    root = tmp_path_factory.mktemp("quickstart")
    workdir = str(root / "workdir")
    with pytest.MonkeyPatch.context() as monkeypatch:
        text, gifs = _execute(
            "quickstart.ipynb", kernel_env, workdir, str(root / "cache"), monkeypatch
        )
    return workdir, text, gifs


@NOTEBOOK_GROUP
def test_quickstart_notebook_executes_tiny(quickstart_run):
    _, text, gifs = quickstart_run
    assert "TINY=True" in text
    assert gifs, "quickstart.ipynb: no GIF displayed"
    assert "trained to step 4" in text
    assert "builtin/class_accuracy" in text


@NOTEBOOK_GROUP
def test_sample_and_export_notebook_executes_on_the_quickstart_run(
    quickstart_run, kernel_env, tmp_path, monkeypatch
):
    workdir = quickstart_run[0]
    cache = str(tmp_path / "cache")
    text, gifs = _execute(
        "sample_and_export.ipynb", kernel_env, workdir, cache, monkeypatch
    )
    assert "TINY=True" in text
    assert gifs, "sample_and_export.ipynb: no GIF displayed"
    assert "EMA generator at step 4" in text  # the quickstart's run, not its own
    assert re.search(r"max \|export - in-process\| = [01]\n", text), text
    assert "predictions: (2, 4, 16, 16, 3)" in text
    assert "label must be in [0, 12)" in text


@pytest.mark.slow
def test_sample_and_export_notebook_trains_its_own_tiny_run(
    kernel_env, tmp_path, monkeypatch
):
    """Given a workdir with no checkpoint, the tiny notebook trains the runlocal config
    there itself (the branch a Colab user without quickstart's run takes), then
    samples and exports it."""
    workdir = str(tmp_path / "fresh")  # does not exist yet
    text, gifs = _execute(
        "sample_and_export.ipynb",
        kernel_env,
        workdir,
        str(tmp_path / "cache"),
        monkeypatch,
    )
    saved = os.listdir(os.path.join(workdir, "checkpoints"))
    assert "ckpt-4.index" in saved, saved  # runlocal: 4 steps
    assert "EMA generator at step 4" in text
    assert gifs, "sample_and_export.ipynb: no GIF displayed"
    assert re.search(r"max \|export - in-process\| = [01]\n", text), text
    assert os.path.isdir(os.path.join(workdir, "serving"))
