"""Shared test set-up: quiet TF logs, tiny configs, XLA compiles at LLVM -O0, long
tests first.

XLA_FLAGS gets --xla_backend_optimization_level=0 (unless the variable already
sets the level), also for the processes that tests start: the same HLO and
semantics, compiled in about half the time (24 s against 48 s for the tiny train
step on a 2-core CPU), run slower, which the tiny configs' millisecond steps do
not notice.
"""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import pytest  # noqa: E402

# Before any test module imports TensorFlow: the package's oneDNN default
# (dvdgan_tf/__init__.py) applies only if it comes first, as it does for its CLIs.
import dvdgan_tf  # noqa: E402, F401


def _collect_and_freeze():
    """A full collection, then the survivors frozen (gc.freeze): later collections
    walk only the objects made since."""
    gc.collect()
    gc.freeze()


# After dvdgan_tf (above); the ~340k objects that importing them makes live as long
# as the worker, so they are frozen once here.
import keras  # noqa: E402
import tensorflow  # noqa: E402, F401

_collect_and_freeze()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.join(REPO, "configs", f)
    for f in os.listdir(os.path.join(REPO, "configs"))
    if f.endswith(".py") and not f.startswith("_")
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Long work first, then a check that --dist=loadgroup took effect.

    The tests marked slow (subprocess training, XLA compiles) and those sharing a
    costly module fixture (marked xdist_group: a tiny trained run, the built-in
    classifier) lead the queue, in file order within each part (a stable sort):
    under -n 2 the last minutes are then short tests on both workers, not one long
    test on one.

    --dist=loadgroup (pyproject.toml) sends each xdist_group to one worker, so
    that its module fixture is built once; pytest-xdist 3.8 groups by rewriting
    node ids, which pytest 9.2 ignores (pytest-xdist#1386; setup.py pins 9.1.1).
    Should that recur, a warning says so rather than the suite silently slowing.
    """
    long_work = {"slow", "xdist_group"}
    items.sort(key=lambda item: not long_work & {m.name for m in item.iter_markers()})
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
        return
    lost = [
        item.nodeid
        for item in items
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid
    ]
    if lost:
        import warnings

        warnings.warn(
            pytest.PytestWarning(
                f"--dist=loadgroup did not group {len(lost)} tests marked "
                f"xdist_group (e.g. {lost[0]}): their module fixtures are built "
                "once per worker"
            ),
            stacklevel=1,
        )


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same Python, numpy and TF/Keras seeds: weight
    initialisation is then reproducible, so a test cannot pass or fail by chance
    (e.g. a freshly initialised D whose hinge terms all start saturated)."""
    keras.utils.set_random_seed(0)
    yield
    # Keras models hold reference cycles, so a test's models (up to ~2 GiB of weights
    # for a paper-size config) outlive it until the cyclic collector happens to run:
    # without this, test_parameter_counts alone left a pytest worker at ~15.7 GiB.
    # Collecting only what is not frozen takes ~0.05 s, against ~1-2 s for the whole
    # heap of a worker that has run a few tests (seen: ~6 of the suite's ~40
    # worker-minutes went to those collections).
    _collect_and_freeze()


@pytest.fixture(scope="module", autouse=True)
def _module_gc():
    """At the end of each test module, one full collection of everything, frozen
    objects too: a module fixture (a tiny trained run) frozen while alive is freed
    with its module rather than kept to the end of the worker."""
    yield
    gc.unfreeze()
    _collect_and_freeze()


# The default CPU config's runlocal variant, as a --config spec (subprocess tests).
TINY = os.path.join(REPO, "configs/synthetic_actions_cpu.py:runlocal")


def load_runlocal(jit_compile: str | None = None):
    """The default CPU config's runlocal variant (16x16, 4 frames), an unlocked copy;
    `jit_compile`, when given, replaces its runtime.jit_compile."""
    from dvdgan_tf import config_lib

    config = config_lib.load_config(TINY)
    if jit_compile is not None:
        config.runtime.jit_compile = jit_compile
    return config


@pytest.fixture
def tiny_config():
    """The default CPU config's runlocal variant (16x16, 4 frames), unlocked copy."""
    return load_runlocal()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The workdir of a tiny run trained once per worker: the runlocal config (4
    steps; checkpoints 2 and 4; XLA off), shared by export_test, sample_test and
    evaluate_test (one xdist_group, "tiny_run", so one worker builds it). Read-only:
    each module works on its own copy (`copy_run`)."""
    from dvdgan_tf import training

    config = load_runlocal(jit_compile="false")
    workdir = str(tmp_path_factory.mktemp("tiny_run") / "workdir")
    keras.utils.set_random_seed(0)  # the same run whichever test asks first
    training.train(config, workdir, verbose=0)
    return workdir


def copy_run(workdir: str, root) -> str:
    """A private copy of the run in `workdir`, under the directory `root`."""
    import shutil

    copy = os.path.join(str(root), "workdir")
    shutil.copytree(workdir, copy)
    return copy


def run_export_client(script: str, export_dir: str, tmp_path):
    """Runs `script` in a fresh Python process (not in the repo: an export must not
    need dvdgan_tf) with argv export_dir, tmp_path/in.npz, tmp_path/out.npz; fails
    the test on a non-zero exit and returns the finished process."""
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    result = subprocess.run(
        [sys.executable, "-c", script, export_dir, str(tmp_path / "in.npz")]
        + [str(tmp_path / "out.npz")],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result
