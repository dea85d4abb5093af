"""Shared test set-up: quiet TF logs, tiny configs, XLA compiles at LLVM -O0.

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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.join(REPO, "configs", f)
    for f in os.listdir(os.path.join(REPO, "configs"))
    if f.endswith(".py") and not f.startswith("_")
)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same Python, numpy and TF/Keras seeds: weight
    initialisation is then reproducible, so a test cannot pass or fail by chance
    (e.g. a freshly initialised D whose hinge terms all start saturated)."""
    import keras

    keras.utils.set_random_seed(0)
    yield
    # Keras models hold reference cycles, so a test's models (up to ~2 GiB of weights
    # for a paper-size config) outlive it until the cyclic collector happens to run:
    # without this, test_parameter_counts alone left a pytest worker at ~15.7 GiB.
    gc.collect()


@pytest.fixture
def tiny_config():
    """The default CPU config's runlocal variant (16x16, 4 frames), unlocked copy."""
    from dvdgan_tf import config_lib

    return config_lib.load_config(
        os.path.join(REPO, "configs/synthetic_actions_cpu.py:runlocal")
    )


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
