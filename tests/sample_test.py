"""Tests of dvdgan_tf.sampling and the `python -m dvdgan_tf.sample` command.

A tiny run (runlocal config: 16x16, 4 frames, 12 classes, 4 steps, no XLA;
conftest's `tiny_run`) is sampled; outputs are read back with imageio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.stats
from conftest import copy_run

from dvdgan_tf import sampling
from dvdgan_tf.data import synthetic

# The whole module on one pytest-xdist worker (--dist=loadgroup, pyproject.toml),
# with the other modules that use conftest's tiny_run: it is then trained once.
pytestmark = pytest.mark.xdist_group("tiny_run")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, R = 4, 16  # The runlocal config's frames and resolution.


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory):
    return copy_run(tiny_run, tmp_path_factory.mktemp("run"))


# ---------------------------------------------------------------- latents


def test_truncation_bounds_and_distribution():
    rng = np.random.default_rng(0)
    z = sampling.truncated_normal((4000, 30), 0.5, rng)
    assert z.dtype == np.float32 and z.shape == (4000, 30)
    assert np.all(np.abs(z) <= 0.5)
    # Not degenerate: N(0, 1) truncated to [-0.5, 0.5] (std 0.284), many values.
    ref = scipy.stats.truncnorm(-0.5, 0.5)
    assert abs(z.mean()) < 0.01
    assert z.std() == pytest.approx(ref.std(), rel=0.02)
    assert len(np.unique(z)) > 0.99 * z.size
    assert scipy.stats.kstest(z.ravel()[:20000], ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("threshold", [None, 0, 0.0])
def test_no_truncation_is_standard_normal(threshold):
    z = sampling.truncated_normal((2000, 10), threshold, np.random.default_rng(1))
    assert z.std() == pytest.approx(1.0, rel=0.05)
    assert np.abs(z).max() > 2.5


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "abc"])
def test_bad_truncation_error(bad):
    with pytest.raises(ValueError, match="truncation") as e:
        sampling.check_truncation(bad)
    assert repr(bad) in str(e.value)


def test_grid_latents_share_z_per_column():
    z, labels = sampling.grid_latents([3, 0, 7], 5, 8, truncation=0.5, seed=2)
    assert z.shape == (15, 8) and labels.tolist() == [3] * 5 + [0] * 5 + [7] * 5
    z = z.reshape(3, 5, 8)  # [rows, cols, z_dim]
    np.testing.assert_array_equal(z[0], z[1])
    assert not np.allclose(z[0, 0], z[0, 1])
    assert np.all(np.abs(z) <= 0.5)


@pytest.mark.parametrize("method", ["slerp", "linear"])
def test_interpolation_latents(method):
    z, labels = sampling.interpolation_latents([1, 2], 6, 32, seed=3, method=method)
    assert z.shape == (12, 32) and labels.tolist() == [1] * 6 + [2] * 6
    z = z.reshape(2, 6, 32)  # [rows, steps, z_dim]
    np.testing.assert_array_equal(z[0], z[1])
    z_a, z_b = sampling.truncated_normal((2, 32), None, np.random.default_rng(3))
    np.testing.assert_allclose(z[0, 0], z_a, atol=1e-6)
    np.testing.assert_allclose(z[0, -1], z_b, atol=1e-6)
    if method == "linear":  # Evenly spaced along the segment.
        norms = np.linalg.norm(np.diff(z[0], axis=0), axis=1)
        np.testing.assert_allclose(norms, norms[0], rtol=1e-4)
    else:  # No norm dip in the middle, unlike linear interpolation.
        r = np.linalg.norm(z[0], axis=1)
        assert np.all(r >= min(r[0], r[-1]) - 1e-4)
        assert r[2] > np.linalg.norm(0.5 * (z_a + z_b)) + 1.0


def test_slerp_unit_vectors_constant_speed():
    a, b = np.eye(3)[0], np.array([0.0, 0.6, 0.8])  # 90 degrees apart
    path = sampling.slerp(a, b, np.linspace(0, 1, 5))  # [5, 3]
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        path @ a, np.cos(np.linspace(0, np.pi / 2, 5)), atol=1e-12
    )
    # (Anti)parallel endpoints fall back to linear interpolation.
    np.testing.assert_allclose(sampling.slerp(a, 2 * a, [0.5]), [1.5 * a])


def test_codec_scale():
    assert sampling.codec_scale(32, 48) == 1
    assert sampling.codec_scale(24, 40) == 2
    assert sampling.codec_scale(8, 12) == 4
    assert sampling.codec_scale(7, 16) == 16


def test_parse_classes():
    names = list(synthetic.CLASS_NAMES)
    assert sampling.parse_classes(None, 12, names) == list(range(12))
    assert sampling.parse_classes("", 600, None) == list(range(12))
    assert sampling.parse_classes("0, 3,circle_left", 12, names) == [0, 3, 4]
    assert sampling.parse_classes(["11", "square_left"], 12, names) == [11, 0]


@pytest.mark.parametrize(
    "spec,match",
    [("12", "unknown class id '12'"), ("-1", "unknown class id '-1'"),
     ("blob_left", "unknown class name 'blob_left'")],
)  # fmt: skip
def test_unknown_class_error(spec, match):
    with pytest.raises(ValueError, match=match) as e:
        sampling.parse_classes(spec, 12, synthetic.CLASS_NAMES)
    assert "0..11" in str(e.value) and "triangle_rotate" in str(e.value)


def test_bad_extension_error(run_dir, tmp_path):
    out = str(tmp_path / "s.avi")
    with pytest.raises(ValueError, match=r"'\.avi'.*\.gif, \.mp4, \.npy"):
        sampling.sample_workdir(run_dir, out)
    with pytest.raises(ValueError, match="none"):
        sampling.sample_workdir(run_dir, str(tmp_path / "noext"))
    assert not os.listdir(tmp_path)


def test_missing_workdir_and_checkpoint_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no training run"):
        sampling.sample_workdir(str(tmp_path / "nope"), str(tmp_path / "s.gif"))
    with pytest.raises(FileNotFoundError, match="'ckpt-999' not found"):
        sampling.sample_workdir(run_dir, str(tmp_path / "s.gif"), "ckpt-999")
    os.makedirs(tmp_path / "empty")
    with open(tmp_path / "empty" / "config.json", "w") as f:
        json.dump({}, f)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        sampling.sample_workdir(str(tmp_path / "empty"), str(tmp_path / "s.gif"))


def test_interpolate_needs_two_columns(run_dir, tmp_path):
    with pytest.raises(ValueError, match="num_per_class=1"):
        sampling.sample_workdir(
            run_dir, str(tmp_path / "s.gif"), num_per_class=1, interpolate=True
        )


# ---------------------------------------------------------------- outputs


def test_gif_readback(run_dir, tmp_path):
    out = str(tmp_path / "grid.gif")
    meta = sampling.sample_workdir(
        run_dir, out, classes="0,circle_left", num_per_class=3, scale=2, fps=10
    )
    frames = iio.imread(out, index=None)
    assert frames.shape == (T, 2 * R * 2, 3 * R * 2, 3)  # [T, rows*H*s, cols*W*s, 3]
    assert meta["frame_size"] == [64, 96]
    assert [r["name"] for r in meta["rows"]] == ["square_left", "circle_left"]


def test_mp4_readback(run_dir, tmp_path):
    out = str(tmp_path / "grid.mp4")
    meta = sampling.sample_workdir(run_dir, out, classes=[2, 5, 7], num_per_class=2)
    reader = imageio.get_reader(out)
    assert reader.count_frames() == T
    frames = np.stack(list(reader.iter_data()))
    reader.close()
    assert frames.shape == (T, 3 * R, 2 * R, 3)  # Already multiples of 16.
    assert meta["frame_size"] == [48, 32]
    # Content survives encoding: the decoded frames are much nearer the .npy of the
    # same samples than that of other samples of the same classes (mean abs error
    # 16-24 against 52-56 over three trained runs: a tiny run's videos are noisy,
    # which H.264 with 4:2:0 chroma does not keep well, so no absolute bound).
    from dvdgan_tf.training import tile_videos

    grids = []
    for name, seed in (("grid.npy", 0), ("other.npy", 5)):
        ref = str(tmp_path / name)
        sampling.sample_workdir(
            run_dir, ref, classes=[2, 5, 7], num_per_class=2, seed=seed
        )
        grids.append(tile_videos(np.load(ref), cols=2).astype(np.float32))
    same, other = (np.abs(frames.astype(np.float32) - g).mean() for g in grids)
    assert same < 0.6 * other, (same, other)


def test_mp4_upscales_to_macro_blocks(tmp_path):
    out = str(tmp_path / "odd.mp4")
    videos = np.random.default_rng(0).uniform(-1, 1, (3, 5, 8, 8, 3))
    size = sampling.write_output(out, videos, np.zeros(3), cols=3)
    assert size == (16, 48)  # 8 x 24 grid, nearest-neighbour x2.
    frames = iio.imread(out, index=None)
    assert frames.shape == (5, 16, 48, 3)
    size = sampling.write_output(out, videos, np.zeros(3), cols=3, scale=3)
    assert size == (48, 144)  # 24 x 72 after --scale=3, then x2.


def test_filmstrip_sheet_layout():
    # 5 videos on 2 columns: 3 rows, the last cell empty. Every pixel's place is
    # computed here from the documented layout, independently of the function.
    rng = np.random.default_rng(0)
    n, t, h, w, b = 5, 3, 2, 4, sampling.PNG_BORDER
    videos = rng.integers(1, 255, (n, t, h, w, 3), dtype=np.uint8)
    sheet = sampling.filmstrip_sheet(videos, cols=2)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (3 * h + 4 * b, 2 * t * w + 3 * b, 3)
    covered = np.zeros(sheet.shape[:2], bool)
    for k in range(6):
        i, j = divmod(k, 2)
        for f in range(t):
            y, x = b + i * (h + b), b + j * (t * w + b) + f * w
            want = videos[k, f] if k < n else np.zeros((h, w, 3), np.uint8)
            np.testing.assert_array_equal(sheet[y : y + h, x : x + w], want)
            covered[y : y + h, x : x + w] = True
    assert covered.sum() == 6 * t * h * w
    assert np.all(sheet[~covered] == 255)  # White borders, nothing else.
    with pytest.raises(ValueError, match=r"cols >= 1.*received cols=0, border=2"):
        sampling.filmstrip_sheet(videos, cols=0)


def test_png_readback(run_dir, tmp_path):
    out = str(tmp_path / "sheet.png")
    meta = sampling.sample_workdir(
        run_dir, out, classes="1,triangle_up", num_per_class=3, scale=2
    )
    sheet = iio.imread(out)
    b = sampling.PNG_BORDER
    height, width = 2 * (2 * R + 3 * b), 2 * (3 * T * R + 4 * b)
    assert sheet.shape == (height, width, 3) and meta["frame_size"] == [height, width]
    assert meta["format"] == "png" and os.path.exists(tmp_path / "sheet.json")
    # Lossless: the same samples as .npy, laid out and upscaled, match exactly.
    ref = str(tmp_path / "same.npy")
    sampling.sample_workdir(run_dir, ref, classes="1,triangle_up", num_per_class=3)
    want = sampling.filmstrip_sheet(np.load(ref), cols=3)
    np.testing.assert_array_equal(sheet, want.repeat(2, axis=0).repeat(2, axis=1))


def test_npy_and_sidecar(run_dir, tmp_path):
    out = str(tmp_path / "s.npy")
    sampling.sample_workdir(
        run_dir, out, classes="3,triangle_up", num_per_class=2, truncation=0.5, seed=7
    )
    videos = np.load(out)
    labels = np.load(str(tmp_path / "s.labels.npy"))
    assert videos.dtype == np.uint8 and videos.shape == (4, T, R, R, 3)
    assert labels.dtype == np.int32 and labels.tolist() == [3, 3, 9, 9]
    with open(tmp_path / "s.json") as f:
        meta = json.load(f)
    assert meta["rows"] == [
        {"row": 0, "label": 3, "name": "square_rotate"},
        {"row": 1, "label": 9, "name": "triangle_up"},
    ]
    assert meta["seed"] == 7 and meta["truncation"] == 0.5 and meta["step"] == 4
    assert meta["checkpoint"].endswith("ckpt-4") and meta["layout"] == "grid"
    # Deterministic for a seed; named checkpoints work.
    again = str(tmp_path / "again.npy")
    sampling.sample_workdir(
        run_dir, again, "ckpt-4", "3,triangle_up", 2, truncation=0.5, seed=7
    )
    np.testing.assert_array_equal(np.load(again), videos)


def test_interpolate_mode(run_dir, tmp_path):
    out = str(tmp_path / "interp.npy")
    meta = sampling.sample_workdir(
        run_dir, out, classes="0,1", num_per_class=5, interpolate=True
    )
    videos = np.load(out).reshape(2, 5, T, R, R, 3).astype(np.float32)
    assert meta["layout"] == "interpolate" and meta["interpolation"] == "slerp"
    # Neighbouring columns are closer than the two endpoints.
    step = np.abs(videos[:, 1:] - videos[:, :-1]).mean()
    ends = np.abs(videos[:, -1] - videos[:, 0]).mean()
    assert ends > 0 and step < ends
    gif = str(tmp_path / "interp.gif")
    sampling.sample_workdir(run_dir, gif, classes="0,1", num_per_class=5,
                            interpolate=True, interpolation="linear")  # fmt: skip
    assert iio.imread(gif, index=None).shape == (T, 2 * R, 5 * R, 3)


# ---------------------------------------------------------------- the command


def _run(*args):
    cmd = [sys.executable, "-m", "dvdgan_tf.sample", *args]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env
    )


def test_sample_command(run_dir, tmp_path):
    out = str(tmp_path / "cli.gif")
    result = _run(f"--workdir={run_dir}", f"--out={out}", "--classes=1,circle_up",
                  "--num_per_class=2", "--truncation=0.5", "--seed=3")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "row 1: class 6 circle_up" in result.stdout
    assert iio.imread(out, index=None).shape == (T, 2 * R, 2 * R, 3)
    assert os.path.isfile(str(tmp_path / "cli.json"))


def test_sample_command_error(run_dir, tmp_path):
    result = _run(f"--workdir={run_dir}", f"--out={tmp_path / 'x.gif'}",
                  "--classes=0,not_a_class")  # fmt: skip
    assert result.returncode == 1
    assert "unknown class name 'not_a_class'" in result.stderr
    assert "Traceback" not in result.stderr
