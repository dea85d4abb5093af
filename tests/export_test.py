"""Tests of dvdgan_tf.export: the SavedModel TF Serving loads.

A tiny run (runlocal: 16x16, 4 frames, 12 classes, z_dim 8; conftest's `tiny_run`) is
exported with the `python -m dvdgan_tf.export` command. The export is
then loaded the ways a server would: `tf.saved_model.load` in a fresh Python
process (no Keras objects, no dvdgan_tf state), and the C++ loader through
`saved_model_cli run` (the path TF Serving takes; it fails with "Could not find
variable" when only the Keras layers are tracked). Its videos must equal the
in-process EMA generator's for the same z and label.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_run, run_export_client

from dvdgan_tf import checkpoints, export, training

# The whole module on one pytest-xdist worker (--dist=loadgroup, pyproject.toml),
# with the other modules that use conftest's tiny_run: it is then trained once.
pytestmark = pytest.mark.xdist_group("tiny_run")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, T, R, Z_DIM, K = 3, 4, 16, 8, 12  # runlocal sizes
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """(workdir, export path) of a tiny trained run exported by the CLI."""
    root = tmp_path_factory.mktemp("export")
    workdir, export_dir = copy_run(tiny_run, root), str(root / "serving")
    config = checkpoints.load_workdir_config(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "dvdgan_tf.export", f"--workdir={workdir}"]
        + [f"--export_dir={export_dir}"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    step = config.train.num_steps
    path = os.path.join(export_dir, str(step))  # default version = checkpoint step
    assert result.stdout.strip().splitlines()[-1] == path
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    return workdir, path


@pytest.fixture(scope="module")
def ema(run):
    generator, _, _ = checkpoints.load_ema_generator(run[0])
    return generator


def _expected(generator, z, labels) -> np.ndarray:
    """uint8 [B, T, H, W, 3]: the in-process EMA generator's video."""
    return training.video_to_uint8(generator(z, labels, training=False))


def _assert_videos_match(got, want):
    assert got.dtype == np.uint8 and got.shape == want.shape
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    # Graph vs eager float rounding may flip a value sitting on a .5 boundary.
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99, diff.max()


_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    path, inputs, out = sys.argv[1:]
    x = np.load(inputs)
    m = tf.saved_model.load(path)
    label = tf.constant(x["label"])
    seed = tf.constant(x["seed"])
    res = {
        "default": m.signatures["serving_default"](label=label, z=tf.constant(x["z"])),
        "sample": m.signatures["sample"](label=label, seed=seed),
        "sample_truncated": m.signatures["sample_truncated"](
            label=label, seed=seed, truncation=tf.constant(x["truncation"])
        ),
    }
    np.savez(out, **{k: v["video"].numpy() for k, v in res.items()})
    with open(m.class_names_file.asset_path.numpy().decode()) as f:
        names = json.load(f)
    with open(m.config_file.asset_path.numpy().decode()) as f:
        config = json.load(f)
    print(json.dumps({"names": names, "z_dim": config["model"]["z_dim"]}))
    """
)


@pytest.mark.slow  # subprocesses
def test_fresh_process_load_matches_ema_generator(run, ema, tmp_path):
    rng = np.random.default_rng(0)
    x = {
        "label": np.array([0, 5, 11], np.int32),
        "z": rng.normal(size=(B, Z_DIM)).astype(np.float32),
        "seed": np.array([7, 8, 2**40], np.int64),
        "truncation": np.array([0.5, 0.0, 1.0], np.float32),
    }
    np.savez(tmp_path / "in.npz", **x)
    result = run_export_client(_FRESH_PROCESS, run[1], tmp_path)
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    assert meta == {"names": checkpoints.load_class_names(run[0]), "z_dim": Z_DIM}
    got = np.load(tmp_path / "out.npz")

    for name in ("default", "sample", "sample_truncated"):
        assert got[name].shape == (B, T, R, R, 3) and got[name].dtype == np.uint8
    _assert_videos_match(got["default"], _expected(ema, x["z"], x["label"]))
    z = export.latents(x["seed"], Z_DIM)
    _assert_videos_match(got["sample"], _expected(ema, z, x["label"]))
    zt = export.latents(x["seed"], Z_DIM, x["truncation"])
    _assert_videos_match(got["sample_truncated"], _expected(ema, zt, x["label"]))
    # truncation 0 = none, and the same seed gives the same video in any batch.
    np.testing.assert_array_equal(got["sample_truncated"][1], got["sample"][1])


def test_latents_deterministic_and_truncated():
    seeds = tf.constant([3, 4, 3], tf.int64)
    z = export.latents(seeds, 64).numpy()  # [3, 64]
    np.testing.assert_array_equal(z[0], z[2])
    np.testing.assert_array_equal(z[1], export.latents([4], 64).numpy()[0])
    assert not np.allclose(z[0], z[1])
    t = np.array([0.3, 2.0, 50.0], np.float32)
    zt = export.latents(tf.range(3, dtype=tf.int64), 2000, t).numpy()  # [3, 2000]
    assert np.all(np.isfinite(zt))
    assert np.all(np.abs(zt) <= t[:, None])
    assert np.abs(zt[0]).max() > 0.28  # fills [-t, t], not a shrunken normal
    assert 0.8 < zt[2].std() < 1.2  # a loose truncation is ~N(0, 1)


def _saved_model_cli(*args) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m"]
    if not os.path.exists(exe):
        cmd.append("tensorflow.python.tools.saved_model_cli")
    return subprocess.run(
        cmd + list(args), env=ENV, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # subprocesses
def test_saved_model_cli_show_lists_signatures(run):
    result = _saved_model_cli("show", "--dir", run[1], "--all")
    assert result.returncode == 0, result.stderr[-3000:]
    # signature_def['NAME']: ... inputs['KEY'] tensor_info: dtype: D shape: (S) ...
    sigs = {}
    for block in re.split(r"\nsignature_def\['", result.stdout)[1:]:
        name = block.split("'", 1)[0]
        tensors = re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))",
            block,
        )
        method = re.search(r"Method name is: (\S*)", block).group(1)
        sigs[name] = (method, {(io, k, d, s) for io, k, d, s in tensors})
    video = ("outputs", "video", "DT_UINT8", f"(-1, {T}, {R}, {R}, 3)")
    label = ("inputs", "label", "DT_INT32", "(-1)")
    seed = ("inputs", "seed", "DT_INT64", "(-1)")
    predict = "tensorflow/serving/predict"
    z = ("inputs", "z", "DT_FLOAT", "(-1, -1)")  # width checked in the graph
    assert sigs["serving_default"] == (predict, {label, z, video})
    assert sigs["sample"] == (predict, {label, seed, video})
    truncation = ("inputs", "truncation", "DT_FLOAT", "(-1)")
    assert sigs["sample_truncated"] == (predict, {label, seed, truncation, video})


@pytest.mark.slow  # subprocesses
def test_saved_model_cli_run_cpp_loader(run, ema, tmp_path):
    z = [[0.0] * Z_DIM, [0.5] * Z_DIM]
    # This TF's saved_model_cli only takes Python literals in --input_exprs.
    result = _saved_model_cli(
        "run", "--dir", run[1], "--tag_set", "serve",
        "--signature_def", "serving_default",
        "--input_exprs", f"label=[0,1];z={z}",
        "--outdir", str(tmp_path), "--overwrite",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "video.npy")
    want = _expected(ema, np.array(z, np.float32), np.array([0, 1], np.int32))
    _assert_videos_match(got, want)

    np.save(tmp_path / "label.npy", np.array([3, 4], np.int32))
    np.save(tmp_path / "seed.npy", np.array([1, 2], np.int64))
    result = _saved_model_cli(
        "run", "--dir", run[1], "--tag_set", "serve", "--signature_def", "sample",
        "--inputs", f"label={tmp_path / 'label.npy'};seed={tmp_path / 'seed.npy'}",
        "--outdir", str(tmp_path), "--overwrite",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(tmp_path / "video.npy").shape == (2, T, R, R, 3)

    result = _saved_model_cli(
        "run", "--dir", run[1], "--tag_set", "serve", "--signature_def", "sample",
        "--input_exprs", "label=[0,12];seed=[1,2]",
    )  # fmt: skip
    assert result.returncode != 0
    assert f"label must be in [0, {K}); received label =] [0 12]" in result.stderr


@pytest.fixture(scope="module")
def loaded(run):
    return tf.saved_model.load(run[1])


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        (
            "serving_default",
            dict(label=[0, 12], z=np.zeros((2, Z_DIM), np.float32)),
            rf"label must be in \[0, {K}\); received label =\] \[0 12\]",
        ),
        (
            "serving_default",
            dict(label=[-1], z=np.zeros((1, Z_DIM), np.float32)),
            rf"label must be in \[0, {K}\)",
        ),
        (
            "serving_default",
            dict(label=[0, 1], z=np.zeros((2, 5), np.float32)),
            rf"z must have shape \[B, {Z_DIM}\]; received shape\] \[2 5\]",
        ),
        (
            "serving_default",
            dict(label=[0, 1, 2], z=np.zeros((2, Z_DIM), np.float32)),
            r"z and label must have the same batch size",
        ),
        ("sample", dict(label=[0, 99], seed=[1, 2]), r"label must be in \[0, 12\)"),
        (
            "sample_truncated",
            dict(label=[0], seed=[1], truncation=[-0.5]),
            r"truncation must be >= 0 \(0 = none\)",
        ),
    ],
)
def test_invalid_inputs_fail_with_messages(loaded, name, kwargs, message):
    dtypes = {"label": tf.int32, "z": tf.float32, "seed": tf.int64}
    args = {k: tf.constant(v, dtypes.get(k, tf.float32)) for k, v in kwargs.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[name](**args)


def test_static_width_z_checked_by_module(ema):
    # The in-process module (before export) gives the same message.
    module = export.ServingModule(ema, "{}")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"z must have shape \[B, 8\]"
    ):
        module.serving_default(tf.constant([0]), tf.zeros([1, 9]))
    with pytest.raises(
        ValueError, match="class_names must have num_classes=12 entries"
    ):
        export.ServingModule(ema, "{}", class_names=["a"])


def test_rest_bodies_row_and_columnar(loaded, ema):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, Z_DIM)).astype(np.float32)
    bodies = [
        {
            "signature_name": "serving_default",
            "instances": [
                {"label": 0, "z": z[0].tolist()},
                {"label": 7, "z": z[1].tolist()},
            ],
        },
        {"inputs": {"label": [0, 7], "z": z.tolist()}},  # signature_name defaults
    ]
    want = _expected(ema, z, np.array([0, 7], np.int32))
    for body in bodies:
        text = json.dumps(body)  # what curl sends
        name, inputs = export.rest_request_to_inputs(text)
        assert name == "serving_default"
        assert inputs["label"].dtype == tf.int32 and inputs["z"].shape == (2, Z_DIM)
        response = export.rest_response(loaded.signatures[name](**inputs), text)
        (key,) = response
        assert key == ("predictions" if "instances" in body else "outputs")
        videos = np.array(json.loads(json.dumps(response))[key], np.uint8)
        assert videos.shape == (2, T, R, R, 3)
        _assert_videos_match(videos, want)

    name, inputs = export.rest_request_to_inputs(
        {"signature_name": "sample_truncated",
         "instances": [{"label": 3, "seed": 42, "truncation": 0.5}]}
    )  # fmt: skip
    assert inputs["seed"].dtype == tf.int64
    response = export.rest_response(
        loaded.signatures[name](**inputs), {"instances": []}
    )
    assert np.array(response["predictions"]).shape == (1, T, R, R, 3)

    with pytest.raises(ValueError, match="exactly one of 'instances'"):
        export.rest_request_to_inputs({"inputs": {}, "instances": []})
    with pytest.raises(ValueError, match="unknown signature_name 'nope'"):
        export.rest_request_to_inputs({"signature_name": "nope", "inputs": {}})
    with pytest.raises(ValueError, match=r"unknown input names \['labels'\]"):
        export.rest_request_to_inputs({"inputs": {"labels": [1]}})


def test_export_refuses_to_overwrite_and_takes_version(run, tmp_path):
    path = export.export(run[0], str(tmp_path), version=7, checkpoint="ckpt-2")
    assert path == os.path.join(str(tmp_path), "7")
    with pytest.raises(FileExistsError, match="already exists"):
        export.export(run[0], str(tmp_path), version=7)
