"""DVD-GAN-FP end to end: the train command, in-training samples, the sample command
with conditioning clips, evaluation against real continuations, the `predict` export,
the benchmark.

A tiny FP run (runlocal: 16x16, 2 frames in, 4 predicted, 12 classes, 4 steps, no
XLA, samples every 2 steps) is trained once per module by the train command (a
subprocess) and exported once.
Evaluation is checked with an oracle generator that returns each conditioning clip's
real continuation: its scores must be the real clips' own (this pins the pairing of
predictions, labels and continuations). The built-in classifier for 4 x 16 x 16 is
trained once on a small set into a temporary $DVDGAN_TF_CACHE; FVD uses a stand-in
I3D with the TF-Hub module's call signature (evaluate_test.py's).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_export_client
from evaluate_test import BUILTIN_KEYS, _StandInI3D, _StubGAN
from export_test import _assert_videos_match, _saved_model_cli
from fp_test import _inputs
from training_test import _run

from dvdgan_tf import (
    benchmark,
    checkpoints,
    config_lib,
    evaluation,
    export,
    prediction,
    sampling,
    training,
)
from dvdgan_tf.data.synthetic import CLASS_NAMES
from dvdgan_tf.encoder import FrameEncoder

# The whole module on one pytest-xdist worker (--dist=loadgroup, pyproject.toml):
# its module fixtures then train their tiny run once, not once per worker.
pytestmark = pytest.mark.xdist_group("fp_run")

FP_TINY = os.path.join(REPO, "configs/synthetic_actions_fp_cpu.py:runlocal")
C, T, R, K = 2, 4, 16, 12  # runlocal sizes
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}


def _config(**data):
    config = config_lib.load_config(FP_TINY)
    with config.unlocked():
        config.runtime.jit_compile = "false"
        for key, value in data.items():
            setattr(config.data, key, value)
    return config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The tiny FP run, trained by the train command (a subprocess), as a user would."""
    workdir = str(tmp_path_factory.mktemp("fp_run"))
    proc = _run(  # training_test's pattern: the train CLI in a subprocess
        [
            "-m",
            "dvdgan_tf.train",
            f"--config={FP_TINY}",
            f"--workdir={workdir}",
            "--verbose=0",
            "--config.runtime.jit_compile=false",
            "--config.train.sample_every=2",
        ],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def ema(run_dir):
    return checkpoints.load_ema_generator(run_dir)[0]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    from dvdgan_tf.eval import classifier

    path = str(tmp_path_factory.mktemp("cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVDGAN_TF_CACHE", path)
        classifier.load_or_train_classifier(T, R, num_train=240, num_test=48, epochs=2)
        yield path


def _uint8(x) -> np.ndarray:
    return training.video_to_uint8(x)


def test_fp_configs_sample_and_evaluate():
    full = config_lib.load_config(FP_TINY.split(":")[0])
    assert full.train.sample_every == 500 and full.eval.every == 500
    assert full.eval.raw_generator and full.eval.metrics == "builtin"
    for name in ("bair_fp_64x16", "kinetics600_fp_64x16"):
        c = config_lib.load_config(os.path.join(REPO, f"configs/{name}.py"))
        assert c.train.sample_every > 0


# ---------------------------------------------------------------- samples


def test_dataset_clips_are_deterministic_balanced_and_filterable():
    config = _config()
    clips = prediction.dataset_clips(config, 12)
    assert clips.videos.shape == (12, C + T, R, R, 3) and clips.split == "test"
    assert clips.labels.tolist() == list(range(12))  # balanced: label i mod 12
    again = prediction.dataset_clips(config, 12, batch_size=5)
    np.testing.assert_array_equal(again.videos, clips.videos)
    picked = prediction.dataset_clips(config, 4, classes=[3, 7])
    assert picked.labels.tolist() == [3, 7, 3, 7]
    assert picked.split == "train"  # the 12-clip test split has one clip per class
    with pytest.raises(ValueError, match=r"missing \{3: 77\}"):
        prediction.dataset_clips(config, 80, classes=[3])


def test_train_command_then_load_ema_generator(run_dir):
    g, config, step = checkpoints.load_ema_generator(run_dir)
    assert step == 4 and config.model.conditioning_frames == C  # runlocal: 4 steps
    assert isinstance(g.frame_encoder, FrameEncoder)
    z, y, frames = _inputs(config.model)
    video = g(z, y, frames=frames)
    assert video.shape == (2, T, R, R, 3)
    assert np.isfinite(video.numpy()).all()


def test_in_training_samples_put_real_beside_prediction(run_dir):
    names = sorted(os.listdir(os.path.join(run_dir, "samples")))
    assert names == ["step_0000002.gif", "step_0000004.gif"]
    grid = iio.imread(os.path.join(run_dir, "samples", names[-1]), index=None)
    # 12 clips as (real, predicted) pairs, 4 columns: [C+T, 6*R, 4*R, 3].
    assert grid.shape == (C + T, 6 * R, 4 * R, 3)
    for left in (0, 2 * R):
        real = grid[:, :, left : left + R].astype(int)
        pred = grid[:, :, left + R : left + 2 * R].astype(int)
        np.testing.assert_array_equal(real[:C], pred[:C])  # same conditioning frames
        assert np.abs(real[C:] - pred[C:]).mean() > 1  # then the prediction


def _sample_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "dvdgan_tf.sample", *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # subprocess
def test_sample_command_from_dataset_clips(run_dir, tmp_path):
    out = str(tmp_path / "fp.gif")
    result = _sample_cli(
        f"--workdir={run_dir}", f"--out={out}", "--num_conditioning=3", "--seed=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "row 2: class 2 square_grow (test split, clip 2)" in result.stdout
    grid = iio.imread(out, index=None)
    assert grid.shape == (C + T, 3 * R, 2 * R, 3)  # one row per clip: real | predicted
    np.testing.assert_array_equal(grid[:C, :, :R], grid[:C, :, R:])
    with open(tmp_path / "fp.json") as f:
        meta = json.load(f)
    assert meta["layout"] == "prediction" and meta["conditioning"] == "dataset"
    assert (meta["conditioning_frames"], meta["predicted_frames"]) == (C, T)
    assert [r["label"] for r in meta["rows"]] == [0, 1, 2]
    assert meta["video_shape"] == [C + T, R, R, 3] and meta["step"] == 4


def test_sample_from_npy_file_equals_dataset_clips(run_dir, tmp_path):
    clips = prediction.dataset_clips(_config(), 3)
    path = str(tmp_path / "clips.npy")
    np.save(path, _uint8(clips.videos))  # uint8 [3, C+T, R, R, 3]
    np.save(sampling.labels_path(path), clips.labels)
    out = str(tmp_path / "pred.npy")
    meta = sampling.sample_workdir(
        run_dir, out, conditioning=path, seed=5, truncation=0.5
    )
    predicted = np.load(out)
    assert predicted.dtype == np.uint8 and predicted.shape == (3, T, R, R, 3)
    assert np.load(tmp_path / "pred.labels.npy").tolist() == clips.labels.tolist()
    np.testing.assert_array_equal(
        np.load(tmp_path / "pred.conditioning.npy"), _uint8(clips.videos[:, :C])
    )
    assert meta["conditioning"] == "file" and meta["truncation"] == 0.5
    assert [r["clip"] for r in meta["rows"]] == [f"{path}[{i}]" for i in range(3)]
    assert meta["video_shape"] == [T, R, R, 3]
    with open(tmp_path / "pred.json") as f:
        assert json.load(f)["conditioning_file"].endswith("pred.conditioning.npy")
    # The same clips from the dataset, same seed: the same predictions.
    sampling.sample_workdir(
        run_dir, str(tmp_path / "ds.npy"), num_conditioning=3, seed=5, truncation=0.5
    )
    np.testing.assert_array_equal(np.load(tmp_path / "ds.npy"), predicted)


def test_sample_from_short_float_clip_and_video_file(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "one.npy")
    np.save(path, rng.uniform(-1, 1, (C, R, R, 3)).astype(np.float32))  # one clip
    out = str(tmp_path / "one.gif")
    meta = sampling.sample_workdir(run_dir, out, conditioning=path, classes="circle_up")
    assert meta["rows"][0]["label"] == 6 and meta["rows"][0]["real_frames"] == C
    grid = iio.imread(out, index=None)
    assert grid.shape == (C + T, R, 2 * R, 3)
    assert grid[C:, :, :R].max() == 0  # no real continuation in the file: black

    gif = str(tmp_path / "clip.gif")
    iio.imwrite(gif, rng.integers(0, 256, (C + T + 3, R, R, 3), np.uint8), loop=0)
    meta = sampling.sample_workdir(
        run_dir, str(tmp_path / "v.npy"), conditioning=gif, classes="0"
    )
    assert meta["rows"][0]["real_frames"] == C + T  # frames past C + T dropped
    assert np.load(tmp_path / "v.npy").shape == (1, T, R, R, 3)


@pytest.mark.parametrize(
    "shape,dtype,kwargs,match",
    [
        ((2, C - 1, R, R, 3), np.uint8, {"classes": "0"},
         rf"at least C={C} frames .*received 1 frames .*\[N, >= {C}, {R}, {R}, 3\]"),
        ((2, C + T, 8, 8, 3), np.uint8, {"classes": "0"},
         rf"must be {R}x{R} .*received 8x8 frames .*\(2, {C + T}, 8, 8, 3\)"),
        ((2, C, R, R), np.uint8, {"classes": "0"},
         rf"shape \[N, >= {C}, {R}, {R}, 3\] .*received shape \(2, {C}, {R}, {R}\)"),
        ((2, C, R, R, 3), np.float32, {"classes": "0", "scale255": True},
         r"must be in \[-1, 1\] .*received values in \[0, 2"),
        ((2, C, R, R, 3), np.uint8, {},
         rf"need labels \(this run has {K} classes\): pass --classes"),
        ((3, C, R, R, 3), np.uint8, {"classes": "0,1"},
         r"one class for all clips or one per clip \(3 clips\); received 2"),
    ],
)  # fmt: skip
def test_bad_conditioning_file_errors(run_dir, tmp_path, shape, dtype, kwargs, match):
    x = np.zeros(shape, dtype)
    if kwargs.pop("scale255", False):
        x[..., 0] = 255.0
    path = str(tmp_path / "bad.npy")
    np.save(path, x)
    out = str(tmp_path / "out.gif")
    with pytest.raises(ValueError, match=match):
        sampling.sample_workdir(run_dir, out, conditioning=path, **kwargs)
    assert not os.path.exists(out)


def test_conditioning_flags_errors(run_dir, tmp_path):
    out = str(tmp_path / "x.gif")
    with pytest.raises(FileNotFoundError, match="conditioning file not found"):
        sampling.sample_workdir(run_dir, out, conditioning=str(tmp_path / "no.npy"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unsupported conditioning file .*\.txt"):
        sampling.sample_workdir(run_dir, out, conditioning=str(tmp_path / "a.txt"))
    with pytest.raises(ValueError, match="not both"):
        sampling.sample_workdir(
            run_dir, out, conditioning=str(tmp_path / "a.txt"), num_conditioning=2
        )
    with pytest.raises(ValueError, match="--interpolate is for generation runs"):
        sampling.sample_workdir(run_dir, out, interpolate=True)
    # A plain generation run (the same files, config turned into C = 0).
    plain = tmp_path / "plain"
    plain.mkdir()
    os.symlink(os.path.join(run_dir, "checkpoints"), plain / "checkpoints")
    with open(checkpoints.config_path(run_dir)) as f:
        config = json.load(f)
    config["model"]["conditioning_frames"] = 0
    config["model"]["output_skip"] = "none"  # a plain generation run's
    (plain / "config.json").write_text(json.dumps(config))
    for kwargs, flag in (
        ({"conditioning": "clips.npy"}, "--conditioning"),
        ({"num_conditioning": 2}, "--num_conditioning"),
    ):
        with pytest.raises(
            ValueError,
            match=f"{flag} is only for DVD-GAN-FP runs.*conditioning_frames=0",
        ):
            sampling.sample_workdir(str(plain), out, **kwargs)


@pytest.mark.slow  # subprocess
def test_sample_command_bad_file_error(run_dir, tmp_path):
    path = str(tmp_path / "short.npy")
    np.save(path, np.zeros((1, 1, R, R, 3), np.uint8))
    result = _sample_cli(
        f"--workdir={run_dir}", f"--out={tmp_path / 'x.gif'}", f"--conditioning={path}"
    )
    assert result.returncode == 1
    assert f"need at least C={C} frames" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- evaluation


class _Oracle:
    """A stand-in generator that returns each conditioning clip's real continuation
    (looked up by its frames) and checks that it was given that clip's label."""

    def __init__(self, clips: prediction.Clips, static: bool = False):
        self.table = {
            v[:C].tobytes(): (v[C:], int(y)) for v, y in zip(clips.videos, clips.labels)
        }
        self.static = static  # Instead: the last conditioning frame, frozen.
        self.seen = []

    def __call__(self, z, labels, training=False, frames=None):
        out = []
        for f, y in zip(np.asarray(frames, np.float32), np.asarray(labels)):
            continuation, label = self.table[f.tobytes()]
            assert int(y) == label, "prediction paired with another clip's label"
            self.seen.append(label)
            out.append(np.repeat(f[-1:], T, axis=0) if self.static else continuation)
        return np.stack(out)  # [B, T, H, W, 3]


def test_evaluator_scores_predictions_against_real_continuations(
    cache_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    config = _config(num_train_examples=480)  # test split: 48 clips
    n = 24
    i3d = str(tmp_path / "i3d")
    module = _StandInI3D()
    tf.saved_model.save(module, i3d, signatures={"default": module.__call__})
    evaluator = evaluation.Evaluator(
        config, "builtin,fvd", num_samples=n, batch_size=7, i3d_path=i3d
    )
    clips = prediction.dataset_clips(config, 2 * n)
    assert clips.split == "test"
    oracle = _Oracle(clips)
    results = evaluator(oracle)
    assert set(results) == BUILTIN_KEYS | {"fvd"}
    assert oracle.seen == clips.labels[:n].tolist()  # the first N clips, in order
    # The true continuations score exactly as the real continuations do.
    assert results["builtin/class_accuracy"] == results["builtin/real_accuracy"]
    assert results["builtin/frechet"] == pytest.approx(
        results["builtin/frechet_real_real"], rel=1e-6
    )
    assert results["builtin/frechet_real_real"] > 0  # vs the next N clips
    assert results["builtin/diversity_ratio"] == pytest.approx(1.0)
    assert results["builtin/background_spread_ratio"] == pytest.approx(1.0)
    assert results["builtin/num_compared"] == n
    assert results["fvd"] == pytest.approx(0.0, abs=1e-3)  # same clips' continuations

    frozen = evaluator(_Oracle(clips, static=True))
    assert frozen["fvd"] > 0.1  # vs ~0 for the true continuations
    assert frozen["builtin/frechet"] > results["builtin/frechet"]

    with pytest.raises(ValueError, match="needs 96 real clips"):
        evaluation.Evaluator(_config(), "builtin", num_samples=48)(oracle)


def test_evaluation_callback_and_workdir_on_fp_run(run_dir, ema, cache_dir, tmp_path,
                                                   monkeypatch):  # fmt: skip
    monkeypatch.setenv("DVDGAN_TF_CACHE", cache_dir)
    config = checkpoints.load_workdir_config(run_dir)
    callback = evaluation.EvaluationCallback(
        1, str(tmp_path), config, raw_generator=True, num_samples=6
    )
    callback.set_model(_StubGAN(ema, raw=ema))
    results = callback.evaluate(1)
    # 6 clips: classes 0-5 (test clip i has label i mod 12), one accuracy each.
    keys = {
        k
        for k in BUILTIN_KEYS
        if "/class_accuracy/" not in k or k.split("/")[-1] in CLASS_NAMES[:6]
    }
    assert set(results) == keys | {f"raw/{k}" for k in keys}
    assert results["builtin/num_compared"] == 6
    assert results["raw/builtin/frechet"] == pytest.approx(results["builtin/frechet"])
    path, again, step = evaluation.evaluate_workdir(run_dir, num_samples=6)
    assert step == 4 and path.endswith(os.path.join("eval", "4.json"))
    assert again["builtin/frechet"] == pytest.approx(results["builtin/frechet"])


# ---------------------------------------------------------------- export


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export.export(run_dir, str(tmp_path_factory.mktemp("serving")))


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


def _frames(b=2, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, C, R, R, 3), np.uint8)


def _expected(generator, frames, label, seed, truncation=None) -> np.ndarray:
    """uint8 [B, T, H, W, 3]: the in-process EMA generator's prediction."""
    z = export.latents(np.asarray(seed, np.int64), generator.z_dim, truncation)
    x = frames.astype(np.float32) / 127.5 - 1.0
    return _uint8(generator(z, tf.constant(label), training=False, frames=x))


_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    path, inputs, out = sys.argv[1:]
    x = np.load(inputs)
    m = tf.saved_model.load(path)
    frames, label = tf.constant(x["frames"]), tf.constant(x["label"])
    seed = tf.constant(x["seed"])
    res = {
        "predict": m.signatures["predict"](frames=frames, label=label, seed=seed),
        "predict_truncated": m.signatures["predict_truncated"](
            frames=frames, label=label, seed=seed,
            truncation=tf.constant(x["truncation"]),
        ),
        "default": m.signatures["serving_default"](
            label=label, z=tf.constant(x["z"]), frames=frames
        ),
    }
    np.savez(out, **{k: v["video"].numpy() for k, v in res.items()})
    print(sorted(m.signatures))
    """
)


@pytest.mark.slow  # subprocess
def test_fresh_process_predict_matches_ema_generator(exported, ema, tmp_path):
    x = {
        "frames": _frames(3),
        "label": np.array([0, 5, 11], np.int32),
        "seed": np.array([7, 8, 2**40], np.int64),
        "truncation": np.array([0.5, 0.0, 1.0], np.float32),
        "z": np.random.default_rng(1).normal(size=(3, ema.z_dim)).astype(np.float32),
    }
    np.savez(tmp_path / "in.npz", **x)
    result = run_export_client(_FRESH_PROCESS, exported, tmp_path)
    assert result.stdout.strip().splitlines()[-1] == str(sorted(export.FP_SIGNATURES))
    got = np.load(tmp_path / "out.npz")
    want = _expected(ema, x["frames"], x["label"], x["seed"])
    _assert_videos_match(got["predict"], want)
    want = _expected(ema, x["frames"], x["label"], x["seed"], x["truncation"])
    _assert_videos_match(got["predict_truncated"], want)
    np.testing.assert_array_equal(got["predict_truncated"][1], got["predict"][1])
    x_float = x["frames"].astype(np.float32) / 127.5 - 1.0
    want = _uint8(ema(x["z"], tf.constant(x["label"]), frames=x_float))
    _assert_videos_match(got["default"], want)


@pytest.mark.slow  # subprocesses
def test_saved_model_cli_show_and_run_predict(exported, ema, tmp_path):
    result = _saved_model_cli("show", "--dir", exported, "--all")
    assert result.returncode == 0, result.stderr[-3000:]
    sigs = {}
    for block in re.split(r"\nsignature_def\['", result.stdout)[1:]:
        name = block.split("'", 1)[0]
        sigs[name] = set(
            re.findall(
                r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))",
                block,
            )
        )
    frames = ("inputs", "frames", "DT_UINT8", "(-1, -1, -1, -1, -1)")
    label = ("inputs", "label", "DT_INT32", "(-1)")
    seed = ("inputs", "seed", "DT_INT64", "(-1)")
    video = ("outputs", "video", "DT_UINT8", f"(-1, {T}, {R}, {R}, 3)")
    assert sigs["predict"] == {frames, label, seed, video}
    truncation = ("inputs", "truncation", "DT_FLOAT", "(-1)")
    assert sigs["predict_truncated"] == {frames, label, seed, truncation, video}
    z = ("inputs", "z", "DT_FLOAT", "(-1, -1)")
    assert sigs["serving_default"] == {label, z, frames, video}
    assert "sample" not in sigs  # FP exports: every signature takes frames

    x = _frames(2, seed=3)
    for name, value in (("frames", x), ("label", np.array([4, 9], np.int32)),
                        ("seed", np.array([1, 2], np.int64))):  # fmt: skip
        np.save(tmp_path / f"{name}.npy", value)
    inputs = ";".join(f"{k}={tmp_path / k}.npy" for k in ("frames", "label", "seed"))
    result = _saved_model_cli(
        "run", "--dir", exported, "--tag_set", "serve", "--signature_def", "predict",
        "--inputs", inputs, "--outdir", str(tmp_path), "--overwrite",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "video.npy")
    _assert_videos_match(got, _expected(ema, x, [4, 9], [1, 2]))


@pytest.mark.parametrize(
    "frames,label,message",
    [
        (np.zeros((2, C + 1, R, R, 3), np.uint8), [0, 1],
         rf"frames must have shape \[B, {C}, {R}, {R}, 3\]; received shape\] "
         rf"\[2 {C + 1} {R} {R} 3\]"),
        (np.zeros((2, C, 8, 8, 3), np.uint8), [0, 1],
         rf"frames must have shape \[B, {C}, {R}, {R}, 3\]; received shape\] "
         rf"\[2 {C} 8 8 3\]"),
        (np.zeros((2, C, R, R, 3), np.uint8), [0, 1, 2],
         r"frames and label must have the same batch size"),
        (np.zeros((2, C, R, R, 3), np.uint8), [0, K],
         rf"label must be in \[0, {K}\)"),
    ],
)  # fmt: skip
def test_predict_rejects_bad_inputs(loaded, frames, label, message):
    seed = tf.constant(np.arange(len(label)), tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["predict"](
            frames=tf.constant(frames), label=tf.constant(label), seed=seed
        )


def test_rest_request_with_frames():
    body = {
        "signature_name": "predict",
        "instances": [{"frames": _frames(1)[0].tolist(), "label": 3, "seed": 42}],
    }
    name, inputs = export.rest_request_to_inputs(json.dumps(body))
    assert name == "predict" and inputs["frames"].dtype == tf.uint8
    assert inputs["frames"].shape == (1, C, R, R, 3)


# ---------------------------------------------------------------- benchmark


def test_benchmark_sampling_and_pipeline_on_fp_config():
    spec = "configs/synthetic_actions_fp_cpu.py:runlocal"
    assert spec in benchmark.default_specs(quick=False)
    out = benchmark.task_sample({"config": spec, "warmup": 0, "steps": 1})
    for path in ("generator", "ema_export_uint8"):
        assert out[path]["videos_per_s"] > 0
    out = benchmark.task_pipeline(
        {"config": spec, "warmup": 1, "batches": 1, "folder": True}
    )
    assert out["builtin"]["clips_per_s"] > 0 and out["folder"]["clips_per_s"] > 0
