"""Tests for dvdgan_tf.data (issue 4): built-in clips, TFDS builder, folder, pipeline."""

from __future__ import annotations

import itertools
import logging
import os
import time
from unittest import mock

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from dvdgan_tf import config_lib
from dvdgan_tf.data import folder, pipeline, synthetic, tfds_builder

T, R = 8, 32  # The default CPU config's clip size.


def make_config(name="synthetic_actions", **data):
    c = config_lib.base_config()
    c.data.name = name
    c.model.num_frames, c.model.resolution, c.model.num_classes = 4, 16, 12
    c.data.num_train_examples = 24
    c.data.shuffle_buffer = 8
    for k, v in data.items():
        setattr(c.data, k, v)
    return c


# --- Built-in clips ---------------------------------------------------------------


def test_class_design_needs_motion_and_shape():
    assert synthetic.NUM_CLASSES == len(synthetic.CLASS_NAMES) >= 10
    pairs = list(itertools.combinations(range(synthetic.NUM_CLASSES), 2))
    shape, motion = synthetic.shape_of, synthetic.motion_of
    same_shape = [p for p in pairs if shape(p[0]) == shape(p[1])]
    same_motion = [p for p in pairs if motion(p[0]) == motion(p[1])]
    assert len(same_shape) >= 3 and len(same_motion) >= 3
    assert len(set(synthetic.CLASS_NAMES)) == synthetic.NUM_CLASSES
    assert "circle_rotate" not in synthetic.CLASS_NAMES  # Would be invisible.


def test_make_clips_shape_dtype_range_labels():
    clips, labels = synthetic.make_clips(36, num_frames=T, resolution=R, seed=3)
    assert clips.shape == (36, T, R, R, 3) and clips.dtype == np.uint8
    assert labels.shape == (36,) and labels.dtype == np.int32
    assert set(labels.tolist()) == set(range(synthetic.NUM_CLASSES))
    assert np.bincount(labels).tolist() == [3] * synthetic.NUM_CLASSES
    assert clips.max() > 150 and clips.min() < 105  # Bright shape, darker background.
    clip = synthetic.render_clip(np.random.default_rng(0), 5, 16, 64)
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    big, _ = synthetic.make_clips(2, 16, 64, labels=[4, 11])
    assert big.shape == (2, 16, 64, 64, 3)


def test_same_seed_same_clips():
    a, la = synthetic.make_clips(13, T, R, seed=7)
    b, lb = synthetic.make_clips(13, T, R, seed=7)
    c, _ = synthetic.make_clips(13, T, R, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    # Clip i does not depend on how many clips are rendered, or their order.
    d, _ = synthetic.render_indexed([12, 3], T, R, seed=7)
    np.testing.assert_array_equal(d, a[[12, 3]])


def test_bad_render_args_quote_value():
    with pytest.raises(ValueError, match="label=12"):
        synthetic.make_clips(1, labels=[12])
    with pytest.raises(ValueError, match="num_frames=0"):
        synthetic.make_clips(1, num_frames=0)


def _motion_signature(clips: np.ndarray) -> np.ndarray:
    """Mean (dx, dy, log area ratio, 1 - aligned IoU) of first vs last frame masks."""
    bg = clips[:, :, :1, :1, :].astype(np.int32)  # Corner pixel is background.
    mask = np.abs(clips.astype(np.int32) - bg).max(-1) > 40  # [N, T, H, W]
    ys, xs = np.mgrid[: clips.shape[2], : clips.shape[3]]
    area = mask.sum((2, 3))  # [N, T]
    cx = (mask * xs).sum((2, 3)) / area
    cy = (mask * ys).sum((2, 3)) / area
    sig = []
    for i in range(len(clips)):
        shift = (round(cy[i, 0] - cy[i, -1]), round(cx[i, 0] - cx[i, -1]))
        last = np.roll(mask[i, -1], shift, axis=(0, 1))
        iou = (mask[i, 0] & last).sum() / (mask[i, 0] | last).sum()
        sig.append(
            [
                (cx[i, -1] - cx[i, 0]) / clips.shape[3],
                (cy[i, -1] - cy[i, 0]) / clips.shape[2],
                np.log(area[i, -1] / area[i, 0]),
                1 - iou,
            ]
        )
    return np.mean(sig, axis=0)


@pytest.mark.parametrize("num_frames,resolution", [(T, R), (16, 64)])
def test_classes_sharing_a_shape_differ_in_motion(num_frames, resolution):
    k = synthetic.NUM_CLASSES
    labels = np.arange(20 * k) % k
    clips, _ = synthetic.make_clips(len(labels), num_frames, resolution, labels=labels)
    sig = {c: _motion_signature(clips[labels == c]) for c in range(k)}
    for a, b in itertools.combinations(range(k), 2):
        if synthetic.shape_of(a) == synthetic.shape_of(b):
            gap = np.abs(sig[a] - sig[b]).max()
            assert gap > 0.15, (synthetic.CLASS_NAMES[a], synthetic.CLASS_NAMES[b], gap)
    name = dict(zip(synthetic.CLASS_NAMES, sig.values(), strict=True))
    assert name["square_left"][0] < -0.2 and name["square_right"][0] > 0.2
    assert name["circle_up"][1] < -0.2 and name["triangle_up"][1] < -0.2
    assert name["square_grow"][2] > 0.5 and name["circle_shrink"][2] < -0.5
    assert name["triangle_rotate"][3] > 0.2 and name["square_rotate"][3] > 0.2


# --- TFDS builder -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    """A prepared 16x16, 8-frame SyntheticActions with 24 train / 12 test clips."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    config = tfds_builder.SyntheticActionsConfig(
        name="tiny",
        resolution=16,
        num_frames=8,
        num_train_examples=24,
        num_test_examples=12,
    )
    builder = tfds_builder.SyntheticActions(data_dir=data_dir, config=config)
    builder.download_and_prepare()
    return builder


def test_tfds_builder_prepares_offline(tiny_tfds):
    assert tiny_tfds.name == "synthetic_actions"
    assert tiny_tfds.info.splits["train"].num_examples == 24
    assert tiny_tfds.info.splits["test"].num_examples == 12
    assert tuple(tiny_tfds.info.features["label"].names) == synthetic.CLASS_NAMES
    clips, _ = synthetic.make_clips(24, 8, 16)
    for ex in tfds.as_numpy(tiny_tfds.as_dataset(split="train").take(3)):
        assert ex["video"].shape == (8, 16, 16, 3) and ex["video"].dtype == np.uint8
        # PNG frames are lossless: the stored clip is one of make_clips's clips.
        assert (clips == ex["video"]).all(axis=(1, 2, 3, 4)).any()
    default = tfds_builder.SyntheticActions.BUILDER_CONFIGS[0]
    assert (default.resolution, default.num_frames) == (64, 16)
    assert default.num_train_examples >= 10_000


def test_tfds_pipeline_window_stride_and_sharding(tiny_tfds):
    c = make_config("tfds:synthetic_actions")
    c.data.frame_stride = 2
    with mock.patch.object(
        pipeline.tfds, "builder", return_value=tiny_tfds
    ):  # The default config would be 64x64x16 x 12k clips.
        batches = list(
            pipeline.build_dataset(c, "train", 4, repeat=False, shuffle=False)
        )
        assert len(batches) == 6
        clips, _ = synthetic.make_clips(24, 8, 16)
        want = clips[:, 0:8:2].astype(np.float32) / 127.5 - 1  # Middle window, L=8.
        for video, label in batches:
            assert video.shape == (4, 4, 16, 16, 3) and label.dtype == tf.int32
            for v, y in zip(video.numpy(), label.numpy(), strict=True):
                match = np.abs(want - v).max(axis=(1, 2, 3, 4)) < 1e-6
                assert match.any() and set(np.flatnonzero(match) % 12) == {y}
        seen = []
        for i in range(2):
            ctx = tf.distribute.InputContext(2, i, 1)
            ds = pipeline.build_dataset(c, "train", 2, ctx, repeat=False, shuffle=False)
            seen.append({v.tobytes() for b, _ in ds for v in b.numpy()})
        assert len(seen[0]) == len(seen[1]) == 12 and not seen[0] & seen[1]


# --- Folder of clips ------------------------------------------------------------


@pytest.fixture
def clip_folder(tmp_path):
    """3 classes x 2 clips (mp4 and gif, 10 frames, 40x48), 1 corrupt, 1 too short."""
    root = tmp_path / "clips"
    clips, labels = synthetic.make_clips(6, 10, 48, labels=[0, 0, 4, 4, 8, 8])
    clips = clips[:, :, 4:44]  # [N, T, 40, 48, 3]: not square.
    for i, (clip, y) in enumerate(zip(clips, labels, strict=True)):
        d = root / synthetic.CLASS_NAMES[y]
        d.mkdir(parents=True, exist_ok=True)
        if i % 2:
            iio.imwrite(d / f"c{i}.gif", clip, duration=100, loop=0)
        else:
            iio.imwrite(d / f"c{i}.mp4", clip, fps=10, macro_block_size=1)
    (root / "circle_left" / "corrupt.mp4").write_bytes(os.urandom(300))
    iio.imwrite(root / "triangle_left" / "short.gif", clips[0, :3], duration=100)
    (root / "triangle_left" / "notes.txt").write_text("not a clip")
    return str(root)


def test_folder_builds_once_and_reports_bad_clips(clip_folder, tmp_path, caplog):
    data_dir = str(tmp_path / "tfds")
    with caplog.at_level(logging.WARNING, logger="dvdgan_tf.data.folder"):
        builder, rep = folder.prepare_folder(clip_folder, data_dir, 16, min_frames=8)
    assert rep.class_names == ("circle_left", "square_left", "triangle_left")
    assert rep.num_clips == 6 and rep.num_skipped == 2
    assert [os.path.basename(p) for p, _ in rep.corrupt] == ["corrupt.mp4"]
    assert [(os.path.basename(p), n) for p, n in rep.too_short] == [("short.gif", 3)]
    assert "corrupt.mp4" in caplog.text and "short.gif" in caplog.text
    names = builder.info.features["label"].names
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        assert ex["video"].shape == (10, 16, 19, 3)  # Short side resized to 16.
        assert names[ex["label"]] == ex["path"].decode().split("/")[0]
    # Cached: a second build reads the cache, decodes nothing, same report.
    with mock.patch.object(folder, "read_clip", side_effect=AssertionError):
        _, rep2 = folder.prepare_folder(clip_folder, data_dir, 16, min_frames=8)
    assert rep2 == rep


def test_folder_pipeline_batches(clip_folder, tmp_path):
    c = make_config(f"folder:{clip_folder}", data_dir=str(tmp_path / "tfds"))
    assert pipeline.class_names(c) == ["circle_left", "square_left", "triangle_left"]
    ds = pipeline.build_dataset(c, "train", batch_size=4)
    video, label = next(iter(ds))
    assert ds.element_spec[0].shape == (4, 4, 16, 16, 3)
    assert video.dtype == tf.float32 and label.dtype == tf.int32
    assert -1.0 <= video.numpy().min() and video.numpy().max() <= 1.0
    assert set(label.numpy().tolist()) <= {0, 1, 2}
    c.data.frame_stride = 4  # Needs 13 frames: every clip is too short.
    with pytest.raises(ValueError, match="no usable clips"):
        pipeline.build_dataset(c, "train", batch_size=4)


def test_empty_folders_error_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        folder.prepare_folder(str(tmp_path / "nope"), str(tmp_path))
    (tmp_path / "root").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        folder.prepare_folder(str(tmp_path / "root"), str(tmp_path))
    (tmp_path / "root" / "waving").mkdir()
    with pytest.raises(ValueError, match=str(tmp_path / "root" / "waving")):
        folder.prepare_folder(str(tmp_path / "root"), str(tmp_path))


# --- Dataset names and TFDS sets ------------------------------------------------


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names") as e:
        pipeline.build_dataset(make_config("no_such_video_set"), batch_size=2)
    for name in ("synthetic_actions", "ucf101", "kinetics600", "folder:"):
        assert name in str(e.value)


@pytest.mark.parametrize("name", ["ucf101", "bair_robot_pushing_small"])
def test_missing_tfds_data_errors_at_once(name, tmp_path):
    c = make_config(name, data_dir=str(tmp_path))
    c.model.num_classes = 101
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as e:
        pipeline.build_dataset(c, batch_size=2)
    assert time.monotonic() - start < 20  # No download attempt, no hang.
    assert str(tmp_path) in str(e.value) and "--manual_dir" in str(e.value)


def test_kinetics_is_a_folder_and_says_so(tmp_path):
    c = make_config("kinetics600", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no Kinetics builder") as e:
        pipeline.build_dataset(c, batch_size=2)
    assert str(tmp_path / "kinetics600" / "train") in str(e.value)


@pytest.mark.parametrize(
    "name,num_classes", [("ucf101", 101), ("bair_robot_pushing_small", 1)]
)
def test_tfds_video_sets_with_mock_data(name, num_classes, tmp_path):
    c = make_config(name, data_dir=str(tmp_path))
    c.model.num_classes = num_classes
    assert len(pipeline.class_names(c)) == num_classes
    with (
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
        tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE),
    ):
        ds = pipeline.build_dataset(c, batch_size=2)
        video, label = next(iter(ds))
        c.model.num_classes = num_classes - 1
        with pytest.raises(ValueError, match="model.num_classes"):
            pipeline.build_dataset(c, batch_size=2)
    assert ds.element_spec[0].shape == (2, 4, 16, 16, 3)
    assert video.dtype == tf.float32 and label.dtype == tf.int32
    assert np.all(np.abs(video.numpy()) <= 1.0)
    assert np.all((label.numpy() >= 0) & (label.numpy() < num_classes))


# --- In-memory pipeline -----------------------------------------------------------


def test_synthetic_pipeline_batches_default_cpu_config():
    c = config_lib.load_config("configs/synthetic_actions_cpu.py")
    assert pipeline.class_names(c) == list(synthetic.CLASS_NAMES)
    ds = pipeline.build_dataset(c, "train", batch_size=16)
    assert ds.element_spec[0].shape == (16, T, R, R, 3)
    assert ds.element_spec[1].shape == (16,)
    for video, label in ds.take(2):
        assert video.dtype == tf.float32 and label.dtype == tf.int32
        v = video.numpy()
        assert v.min() >= -1.0 and v.max() <= 1.0 and v.max() > 0.0
        assert np.all((label.numpy() >= 0) & (label.numpy() < 12))
    test = pipeline.build_dataset(c, "test", 16, repeat=False, shuffle=False)
    assert sum(1 for _ in test) == pipeline.num_examples(c, "test") // 16


def _clip_ids(video, want):
    """Which of the clips `want` [N, T, H, W, 3] each row of `video` is: [B]."""
    diff = np.abs(want[None] - video.numpy()[:, None]).max(axis=(2, 3, 4, 5))  # [B, N]
    assert np.all((diff < 1e-6).sum(axis=1) == 1)  # each row is exactly one clip
    return diff.argmin(axis=1)


def test_synthetic_pipeline_sharding_is_disjoint_and_complete():
    c = make_config()
    clips, labels = synthetic.make_clips(24, 4, 16)
    want = clips.astype(np.float32) / 127.5 - 1
    found = []
    for i in range(2):
        ctx = tf.distribute.InputContext(2, i, 1)
        ds = pipeline.build_dataset(c, "train", 4, ctx, repeat=False, shuffle=True)
        for video, label in ds:
            for j, y in zip(_clip_ids(video, want), label.numpy(), strict=True):
                assert labels[j] == y and j % 2 == i
                found.append(j)
    assert sorted(found) == list(range(24))


def test_class_balanced_batches_hold_every_class_once():
    c = make_config(class_balanced=True)  # 24 clips: 2 per class
    clips, labels = synthetic.make_clips(24, 4, 16)
    want = clips.astype(np.float32) / 127.5 - 1
    ds = pipeline.build_dataset(c, "train", 24, repeat=True, shuffle=True)
    epochs = []
    for video, label in ds.take(3):
        ids = _clip_ids(video, want)
        np.testing.assert_array_equal(labels[ids], label.numpy())
        # Every run of 12 (a D step's chunk at batch 12) holds each class once.
        np.testing.assert_array_equal(label.numpy(), np.tile(np.arange(12), 2))
        assert sorted(ids) == list(range(24))  # 2 runs = one pass over each class
        epochs.append(list(ids))
    assert len({tuple(e) for e in epochs}) > 1  # reshuffled each pass

    # One pass without repeat; two input pipelines split every class's clips.
    found = []
    for i in range(2):
        ctx = tf.distribute.InputContext(2, i, 1)
        ds = pipeline.build_dataset(c, "train", 12, ctx, repeat=False, shuffle=True)
        for video, label in ds:
            np.testing.assert_array_equal(label.numpy(), np.arange(12))
            found += list(_clip_ids(video, want))
    assert sorted(found) == list(range(24))


def test_class_balanced_errors_quote_value():
    with pytest.raises(ValueError, match="batch_size=8"):
        pipeline.build_dataset(make_config(class_balanced=True), "train", 8)
    ctx = tf.distribute.InputContext(3, 0, 1)
    with pytest.raises(ValueError, match="num_train_examples=24"):
        pipeline.build_dataset(make_config(class_balanced=True), "train", 12, ctx)
    c = config_lib.load_config("configs/synthetic_actions_cpu.py")
    c.data.class_balanced = True
    with pytest.raises(ValueError, match="train.batch_size=8"):
        config_lib.validate(c)  # 8 is not a multiple of the 12 classes
    c.train.batch_size = 12
    config_lib.validate(c)
    config_lib.check_replica_batch(c, 1)
    with pytest.raises(ValueError, match="2 x 12; received train.batch_size=12"):
        config_lib.check_replica_batch(c, 2)  # a replica's chunk would be 6 clips
    c.data.name = "ucf101"
    with pytest.raises(ValueError, match="data.name='ucf101'"):
        config_lib.validate(c)


def test_distribute_dataset_per_replica_batch():
    c = make_config()
    strategy = tf.distribute.get_strategy()
    dist = pipeline.distribute_dataset(strategy, c, global_batch_size=6)
    video, label = next(iter(dist))
    assert video.shape == (6, 4, 16, 16, 3) and label.shape == (6,)


def test_bad_split_and_stride_quote_value():
    with pytest.raises(ValueError, match="'valid'"):
        pipeline.build_dataset(make_config(), "valid", batch_size=2)
    c = make_config("folder:/nowhere", frame_stride=0)
    with pytest.raises(ValueError, match="frame_stride"):
        pipeline.build_dataset(c, batch_size=2)
