"""Tests of dvdgan_tf.evaluation and the `python -m dvdgan_tf.evaluate` command.

A tiny run (runlocal: 16x16, 4 frames, 4 steps, no XLA; conftest's `tiny_run`,
copied) is evaluated. The built-in classifier for 4 x 16 x 16 is trained once on a
small set into a temporary $DVDGAN_TF_CACHE (its accuracy does not matter here:
these tests check plumbing, `tests/eval_test.py` checks the metric). FVD runs
with a stand-in I3D of the TF-Hub module's call signature.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_run, load_runlocal

from dvdgan_tf import evaluation, schedules
from dvdgan_tf.data import synthetic

# The whole module on one pytest-xdist worker (--dist=loadgroup, pyproject.toml),
# with the other modules that use conftest's tiny_run: it is then trained once.
pytestmark = pytest.mark.xdist_group("tiny_run")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, R = 4, 16  # The runlocal config's frames and resolution.
BUILTIN_KEYS = {
    "builtin/class_accuracy",
    "builtin/real_accuracy",
    "builtin/frechet",
    "builtin/frechet_real_real",
    "builtin/diversity",
    "builtin/diversity_real",
    "builtin/diversity_ratio",
    "builtin/num_compared",
    "builtin/background_iqr",
    "builtin/background_iqr_real",
    "builtin/background_spread_ratio",
    "builtin/classifier_test_accuracy",
    "builtin/shape_accuracy",
    "builtin/motion_accuracy",
    # Samples are class-balanced (>= 12 here), so every class has its accuracy.
    *(f"builtin/class_accuracy/{name}" for name in synthetic.CLASS_NAMES),
}


def _config():
    """The tiny run's config (conftest's tiny_run trains it)."""
    return load_runlocal(jit_compile="false")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    from dvdgan_tf.eval import classifier

    path = str(tmp_path_factory.mktemp("cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVDGAN_TF_CACHE", path)
        classifier.load_or_train_classifier(
            T, R, num_train=240, num_test=48, epochs=2
        )  # Trained and cached at default_classifier_path(T, R).
        yield path


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory):
    return copy_run(tiny_run, tmp_path_factory.mktemp("run"))


def _read_scalars(logdir: str) -> dict:
    tags = {}
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                tags[v.tag] = (event.step, float(tf.make_ndarray(v.tensor)))
    return tags


# ---------------------------------------------------------------- arguments


def test_parse_metrics():
    assert evaluation.parse_metrics("builtin, FVD,builtin") == ["builtin", "fvd"]
    assert evaluation.parse_metrics(["fid", "is"]) == ["fid", "is"]
    with pytest.raises(ValueError, match="unknown metric 'fvf'.*builtin, fvd"):
        evaluation.parse_metrics("fvf")
    with pytest.raises(ValueError, match="no metric"):
        evaluation.parse_metrics("")


@pytest.mark.parametrize(
    "metric,flag", [("fvd", "i3d_path"), ("fid", "inception_path")]
)
def test_missing_model_path_errors(metric, flag, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"needs --{flag}.*no --{flag} given"):
        evaluation.Evaluator(_config(), metric)
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=f"--{flag}=") as e:
        evaluation.Evaluator(_config(), metric, **{flag: missing})
    assert missing in str(e.value)


def test_missing_i3d_error_names_module():
    with pytest.raises(FileNotFoundError, match="--i3d_path.*i3d-kinetics-400"):
        evaluation.Evaluator(_config(), "builtin,fvd", i3d_path="")


def test_is_needs_16_frames():
    with pytest.raises(ValueError, match="num_frames=4"):
        evaluation.Evaluator(_config(), "is", c3d_path="/nope")


def test_builtin_rejects_other_datasets():
    config = _config()
    config.data.name = "ucf101"
    with pytest.raises(ValueError, match="data.name='ucf101'"):
        evaluation.Evaluator(config, "builtin")


def test_bad_truncation_and_num_samples():
    with pytest.raises(ValueError, match="truncation=-1"):
        evaluation.Evaluator(_config(), "builtin", truncation=-1)
    with pytest.raises(ValueError, match="num_samples must be >= 2; received 1"):
        evaluation.Evaluator(_config(), "builtin", num_samples=1)


def test_missing_workdir_and_checkpoint(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no training run"):
        evaluation.evaluate_workdir(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="'ckpt-7' not found"):
        evaluation.evaluate_workdir(run_dir, checkpoint="ckpt-7")


# ---------------------------------------------------------------- running


def test_evaluate_builtin_writes_json_and_scalars(run_dir, cache_dir, monkeypatch):
    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    path, results, step = evaluation.evaluate_workdir(
        run_dir, metrics="builtin", num_samples=24, truncation=0.5
    )
    assert step == 4 and path == os.path.join(run_dir, "eval", "4.json")
    assert set(results) == BUILTIN_KEYS
    with open(path) as f:
        record = json.load(f)
    assert set(record["metrics"]) == BUILTIN_KEYS
    assert record["step"] == 4 and record["truncation"] == 0.5
    assert (
        record["num_samples"] == 24 and record["metrics"]["builtin/num_compared"] == 24
    )
    assert 0.0 <= record["metrics"]["builtin/class_accuracy"] <= 1.0
    assert record["metrics"]["builtin/frechet"] > 0
    scalars = _read_scalars(os.path.join(run_dir, "tb", "eval"))
    assert scalars["builtin/class_accuracy"][0] == 4
    table = evaluation.format_table(results, step)
    assert "builtin/frechet" in table and "step 4" in table
    # Same seed, same samples: a rerun reproduces the numbers.
    _, again, _ = evaluation.evaluate_workdir(
        run_dir, metrics="builtin", num_samples=24, truncation=0.5
    )
    assert again == pytest.approx(results)


class _StandInI3D(tf.Module):
    """The TF-Hub I3D's call signature: [B, T, 224, 224, 3] -> {"default": [B, 400]}."""

    def __init__(self):
        super().__init__()
        w = np.random.default_rng(6).normal(size=(6, 400)).astype(np.float32)
        self.w = tf.Variable(w)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 224, 224, 3], tf.float32)])
    def __call__(self, rgb_input):
        mean = tf.reduce_mean(rgb_input, axis=[1, 2, 3])  # [B, 3]
        std = tf.math.reduce_std(rgb_input, axis=[1, 2, 3])  # [B, 3]
        return {"default": tf.concat([mean, std], axis=1) @ self.w}


def test_fvd_with_stand_in_merges_json(run_dir, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    i3d = str(tmp_path / "i3d")
    module = _StandInI3D()
    tf.saved_model.save(module, i3d, signatures={"default": module.__call__})
    evaluation.evaluate_workdir(run_dir, metrics="builtin", num_samples=12)
    path, results, _ = evaluation.evaluate_workdir(
        run_dir, metrics="fvd", num_samples=12, i3d_path=i3d
    )
    assert set(results) == {"fvd"} and results["fvd"] > 0
    with open(path) as f:
        metrics = json.load(f)["metrics"]
    assert set(metrics) == BUILTIN_KEYS | {"fvd"}  # The builtin values are kept.


def test_real_videos_from_dataset():
    real = evaluation.real_videos(_config(), 20, batch_size=8)
    assert real.shape == (20, T, R, R, 3) and real.dtype == np.float32
    assert real.min() >= -1.0 and real.max() <= 1.0
    assert len({v.tobytes() for v in real}) == 20  # No repeated clips.


class _StubGAN:
    """What the callback reads from the DVDGAN model."""

    def __init__(self, generator, raw=None):
        self.ema_generator = generator
        self.generator = raw
        self.g_optimizer = type("Opt", (), {"iterations": tf.Variable(0, tf.int64)})


def test_evaluation_callback(run_dir, cache_dir, tmp_path, monkeypatch):
    from dvdgan_tf import checkpoints

    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    generator, config, _ = checkpoints.load_ema_generator(run_dir)
    workdir = str(tmp_path / "w")
    callback = evaluation.EvaluationCallback(3, workdir, config, num_samples=12)
    gan = _StubGAN(generator)
    callback.set_model(gan)
    callback.on_train_begin()
    for step in range(1, 8):
        gan.g_optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1)
    assert sorted(os.listdir(os.path.join(workdir, "eval"))) == ["3.json", "6.json"]
    with open(os.path.join(workdir, "eval", "6.json")) as f:
        record = json.load(f)
    assert set(record["metrics"]) == BUILTIN_KEYS and record["step"] == 6
    assert _read_scalars(os.path.join(workdir, "tb", "eval"))["builtin/frechet"][0] == 6
    with pytest.raises(ValueError, match="every_steps must be >= 1; received 0"):
        evaluation.EvaluationCallback(0, workdir, config)

    # raw_generator=True scores model.generator too, on the same z and labels:
    # with the EMA generator standing in as "raw", both sets of numbers agree.
    workdir = str(tmp_path / "w_raw")
    callback = evaluation.EvaluationCallback(
        1, workdir, config, raw_generator=True, num_samples=12, clock=lambda: 90.5
    )
    callback.set_model(_StubGAN(generator, raw=generator))
    results = callback.evaluate(1)
    with open(os.path.join(workdir, "eval", "1.json")) as f:
        assert json.load(f)["run_seconds"] == 90.5  # the training clock, if given
    assert "run_seconds" not in record  # no clock given above
    assert set(results) == BUILTIN_KEYS | {f"raw/{k}" for k in BUILTIN_KEYS}
    for k in BUILTIN_KEYS:
        assert results[f"raw/{k}"] == pytest.approx(results[k], nan_ok=True)

    # standing_stats=N: the EMA generator is scored with recomputed BN statistics,
    # and the running model's statistics are put back afterwards.
    workdir = str(tmp_path / "w_standing")
    callback = evaluation.EvaluationCallback(
        1, workdir, config, num_samples=12, standing_stats=2
    )
    callback.set_model(_StubGAN(generator))
    before = [v.numpy() for v in generator.non_trainable_variables]
    standing = callback.evaluate(1)
    for a, v in zip(before, generator.non_trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
    assert standing["builtin/frechet"] != pytest.approx(results["builtin/frechet"])
    with open(os.path.join(workdir, "eval", "1.json")) as f:
        assert json.load(f)["standing_stats"] == 2
    with pytest.raises(
        ValueError, match=r"standing_stats must be an int >= 0 \(0 = off\); received -1"
    ):
        evaluation.EvaluationCallback(1, workdir, config, standing_stats=-1)


def test_ema_sweep_callback(run_dir, cache_dir, tmp_path, monkeypatch):
    """benchmarks/ema_sweep.py: each extra average follows the model's EMA rule
    (a copy up to ema_start, then d * ema + (1 - d) * w), is scored at evaluations
    from score_from on, and the EMA generator is left exactly as it was."""
    import importlib.util
    import shutil

    from dvdgan_tf import checkpoints

    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    path = os.path.join(REPO, "benchmarks", "ema_sweep.py")
    spec = importlib.util.spec_from_file_location("ema_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    ema, config, _ = checkpoints.load_ema_generator(run_dir)
    raw, _, _ = checkpoints.load_ema_generator(run_dir)  # stands in for G
    gan = _StubGAN(ema, raw=raw)
    gan.ema_schedule = schedules.EMADecay(0.9, start=1, rampup=0.5)
    workdir = str(tmp_path / "w")
    os.makedirs(workdir)
    shutil.copy(checkpoints.config_path(run_dir), workdir)
    callback = sweep.SweepCallback(
        2,
        workdir,
        config,
        num_samples=12,
        clock=lambda: 100.0,
        decays=(0.0, 0.5),
        score_from=4,
    )
    callback.set_model(gan)
    callback.on_train_begin()
    trainable = [w for w in raw.weights if w.trainable]
    kept = [v.numpy() for v in ema.weights]

    def step(n, shift):  # G's weights move by `shift`, then G step n ends
        for w in trainable:
            w.assign(w.numpy() + shift)
        gan.g_optimizer.iterations.assign(n)
        callback.on_train_batch_end(n - 1)

    w0 = [w.numpy() for w in trainable]
    step(1, 0.025)  # step 1 <= ema_start: both averages copy G
    step(2, -0.05)  # averaged from here on; evaluation at 2 (the model's EMA only)
    step(3, 0.1)
    for d, track in callback.tracks.items():
        for w, e in zip(w0, track):
            expected = w + 0.025  # the copy at step 1
            expected = d * expected + (1 - d) * (w - 0.025)
            expected = d * expected + (1 - d) * (w + 0.075)
            np.testing.assert_allclose(e.numpy(), expected, rtol=1e-5, atol=1e-6)
    step(4, 0.0)  # evaluation at 4: the model's EMA and both extra averages
    for a, v in zip(kept, ema.weights):
        np.testing.assert_array_equal(a, v.numpy())  # weights, BN and SN state
    records = {}
    for name in ("d0.9_r0.5", "d0", "d0.5"):  # the model's own: ramped (rampup 0.5)
        steps = sorted(os.listdir(os.path.join(workdir, "eval_ema", name, "eval")))
        assert steps == (["2.json", "4.json"] if "_r" in name else ["4.json"])
        with open(os.path.join(workdir, "eval_ema", name, "eval", "4.json")) as f:
            records[name] = json.load(f)
        assert set(records[name]["metrics"]) == BUILTIN_KEYS
        assert records[name]["run_seconds"] == 100.0  # no extra scoring before 4
    frechet = {k: r["metrics"]["builtin/frechet"] for k, r in records.items()}
    assert len({round(v, 6) for v in frechet.values()}) == 3  # three generators
    with pytest.raises(ValueError, match=r"decays must be .* received \(1.0,\)"):
        sweep.SweepCallback(2, workdir, config, decays=(1.0,), clock=time.time)
    with pytest.raises(ValueError, match="needs clock=.*received clock=None"):
        sweep.SweepCallback(2, workdir, config, decays=(0.5,))
    gan.ema_schedule = schedules.EMADecay(0.9, start=1)  # an extra 0.9 repeats it
    callback = sweep.SweepCallback(2, workdir, config, decays=(0.9,), clock=time.time)
    callback.set_model(gan)
    with pytest.raises(ValueError, match=r"decays=\(0.9,\) repeats .* \(d0.9,"):
        callback.on_train_begin()


def test_loader_and_evaluate_take_standing_stats(run_dir, cache_dir, monkeypatch):
    from dvdgan_tf import checkpoints, standing_stats

    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    plain, config, _ = checkpoints.load_ema_generator(run_dir, standing_stats=0)
    assert config.eval.standing_stats > 0  # the built-in config's default
    default, _, _ = checkpoints.load_ema_generator(run_dir)
    two, _, _ = checkpoints.load_ema_generator(run_dir, standing_stats=2)
    means = [
        [bn.moving_mean.numpy() for bn in standing_stats._batch_norms(g)]
        for g in (plain, default, two)
    ]
    assert not np.allclose(means[0][0], means[1][0])  # recomputed by default
    assert not np.allclose(means[1][0], means[2][0])  # 2 batches != the default's
    with pytest.raises(ValueError, match="standing_stats must be an int >= 0"):
        checkpoints.load_ema_generator(run_dir, standing_stats=-2)
    path, _, _ = evaluation.evaluate_workdir(run_dir, num_samples=12, standing_stats=0)
    with open(path) as f:
        assert json.load(f)["standing_stats"] == 0


# ---------------------------------------------------------------- the command


def _run(cache_dir, *args):
    cmd = [sys.executable, "-m", "dvdgan_tf.evaluate", *args]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "DVDGAN_TF_CACHE": cache_dir}  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env
    )


def test_evaluate_command(run_dir, cache_dir):
    result = _run(cache_dir, f"--workdir={run_dir}", "--num_samples=12")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "builtin/class_accuracy" in result.stdout
    assert f"wrote {os.path.join(run_dir, 'eval', '4.json')}" in result.stdout


def test_evaluate_command_missing_i3d(run_dir, cache_dir):
    result = _run(cache_dir, f"--workdir={run_dir}", "--metrics=fvd")
    assert result.returncode == 1
    assert "needs --i3d_path" in result.stderr and "Traceback" not in result.stderr
