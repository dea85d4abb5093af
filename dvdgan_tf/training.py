"""The training job behind `python -m dvdgan_tf.train` (paper v2, section 4 set-up).

`train(config, workdir, strategy)` builds the GAN under the strategy, restores the
latest checkpoint in `workdir` if there is one (so rerunning the same command
resumes), and runs Keras `fit` with callbacks for: checkpoints every
`train.checkpoint_every` steps (last `train.keep_checkpoints` kept), TensorBoard
scalars every `train.log_every` steps, EMA sample GIFs every `train.sample_every`
steps (DVD-GAN-FP: 12 fixed real clips of the test split, each beside its
conditioning frames followed by G's prediction), a stop on a non-finite loss
(naming the step and the loss, keeping the last good checkpoint), and a
checkpoint-and-stop on SIGTERM (preemption). On resume the settings are the
command's: a different architecture is refused, other changed fields are logged,
and a keep_checkpoints that would delete saved checkpoints is refused
(`checkpoints.check_keep_checkpoints`).

The step counter is the generator optimizer's iteration count (G steps). The input
pipeline yields d_steps x (per-replica batch) clips per step: one fresh chunk per D
update. After a resume the data order is reseeded with the start step, so a
resumed run does not replay the clips it already saw (for the in-memory built-in
set this draws a fresh set of clips from the same distribution).
"""

from __future__ import annotations

import math
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dvdgan_tf import checkpoints, config_lib, data, layers, runtime
from dvdgan_tf.model import DVDGAN

FP_SAMPLE_CLIPS = 12  # DVD-GAN-FP: real clips continued in the sample GIFs.


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def video_to_uint8(video) -> np.ndarray:
    """float [..] in [-1, 1] -> uint8 [..] in [0, 255]."""
    v = np.asarray(video, dtype=np.float32)
    return np.clip(np.round((v + 1.0) * 127.5), 0, 255).astype(np.uint8)


def tile_videos(videos: np.ndarray, cols: int) -> np.ndarray:
    """uint8 [N, T, H, W, 3] -> a grid video uint8 [T, rows*H, cols*W, 3]."""
    n, t, h, w, c = videos.shape
    rows = math.ceil(n / cols)
    pad = np.zeros([rows * cols - n, t, h, w, c], videos.dtype)
    v = np.concatenate([videos, pad]).reshape(rows, cols, t, h, w, c)
    v = v.transpose(2, 0, 3, 1, 4, 5)  # [T, rows, H, cols, W, C]
    return v.reshape(t, rows * h, cols * w, c)  # [T, rows*H, cols*W, C]


class StopAwareProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, except that a run stopped early (SIGTERM) ends its bar
    at the step it reached: Keras's own fills the bar to the target at the end of
    the epoch, so a run stopped at step 32 of 30,000 printed `30000/30000`."""

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training and self.progbar is not None:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)
        else:
            super().on_epoch_end(epoch, logs)


class TrainingCallback(keras.callbacks.Callback):
    """Checkpoints, logging, samples, the NaN guard and SIGTERM handling."""

    def __init__(self, gan, config, workdir, manager, chief=True):
        super().__init__()
        self.gan, self.config, self.workdir = gan, config, workdir
        self.manager, self.chief = manager, chief
        t = config.train
        self.every = {
            "checkpoint": t.checkpoint_every,
            "log": t.log_every,
            "sample": t.sample_every,
        }
        self.last = dict.fromkeys(self.every, self.step)
        self.writer = (
            tf.summary.create_file_writer(os.path.join(workdir, "tb"))
            if chief
            else None
        )
        self.sigterm = False
        self.nonfinite = False
        self._reset_metrics = False
        self._t0, self._s0 = time.time(), self.step
        # Training time of the run across resumes (checkpoints.load_run_seconds).
        self._run_offset = checkpoints.load_run_seconds(workdir)
        self._run_start = time.time()
        num = min(config.model.num_classes, 16)
        self.sample_labels = np.arange(num, dtype=np.int32)
        # DVD-GAN-FP: fixed real clips [N, C+T, H, W, 3] to continue (else None).
        self.sample_clips = None
        c = config.model.conditioning_frames
        if c and chief and t.sample_every > 0:
            from dvdgan_tf import prediction

            clips = prediction.dataset_clips(config, FP_SAMPLE_CLIPS)
            self.sample_clips, self.sample_labels = clips.videos, clips.labels
            num = len(clips.labels)
            logging.info(
                "samples continue clips %s of the %r split",
                clips.indices.tolist(),
                clips.split,
            )
        self.sample_z = (
            np.random.default_rng(0)
            .standard_normal((num, config.model.z_dim))
            .astype(np.float32)
        )

    @property
    def step(self) -> int:
        return int(self.gan.g_optimizer.iterations.numpy())

    def _due(self, kind: str, step: int) -> bool:
        every = self.every[kind]
        return every > 0 and step - self.last[kind] >= every

    def run_seconds(self) -> float:
        """Seconds this run has trained: earlier segments' plus this process's."""
        return self._run_offset + time.time() - self._run_start

    def on_train_begin(self, logs=None):
        self._run_start = time.time()

        def handler(signum, frame):
            logging.warning("SIGTERM: saving a checkpoint and stopping.")
            self.sigterm = True

        try:
            self._old_handler = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread
            self._old_handler = None

    def on_train_end(self, logs=None):
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)

    def on_train_batch_begin(self, batch, logs=None):
        if self._reset_metrics:  # logged values average the last log_every steps
            for metric in self.gan.metrics:
                metric.reset_state()
            self._reset_metrics = False

    def on_train_batch_end(self, batch, logs=None):
        step = self.step
        logs = logs or {}
        logs = {k: float(np.mean(v)) for k, v in logs.items()}  # [1] under multi-worker
        bad = {k: v for k, v in logs.items() if not np.isfinite(v)}
        if bad:
            latest = self.manager.latest_checkpoint
            self.model.stop_training = True
            self.nonfinite = True
            raise FloatingPointError(
                f"non-finite loss at step {step}: {bad}. Training stopped; the last good "
                f"checkpoint is kept at {latest!r}."
            )
        if self._due("log", step):
            self._log(step, logs)
        if self._due("sample", step):
            self.last["sample"] = step
            self.write_samples(step)
        if self._due("checkpoint", step) or self.sigterm:
            self.save(step)
        if self.sigterm:
            self.model.stop_training = True

    def save(self, step: int):
        if step == self.last.get("saved"):
            return
        path = self.manager.save(checkpoint_number=step)
        if self.chief:
            checkpoints.save_run_seconds(self.workdir, self.run_seconds(), step)
        self.last["checkpoint"] = self.last["saved"] = step
        logging.info("step %d: saved %s", step, path)

    def _log(self, step, logs):
        self.last["log"] = step
        now = time.time()
        rate = (step - self._s0) / max(now - self._t0, 1e-9)
        self._t0, self._s0 = now, step
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for k, v in logs.items():
                    tf.summary.scalar(k, float(v))
                tf.summary.scalar("steps_per_sec", rate)
            self.writer.flush()
        self._reset_metrics = True

    def _sample_videos(self) -> np.ndarray:
        """EMA samples [N, T, H, W, 3]; DVD-GAN-FP: [2N, C+T, H, W, 3] real/predicted."""
        g = self.gan.ema_generator
        if self.sample_clips is None:
            return np.asarray(g(self.sample_z, self.sample_labels, training=False))
        from dvdgan_tf import prediction

        frames = self.sample_clips[:, : self.config.model.conditioning_frames]
        future = g(self.sample_z, self.sample_labels, training=False, frames=frames)
        full = np.concatenate([frames, future], axis=1)  # [N, C+T, H, W, 3]
        return prediction.side_by_side(self.sample_clips, full)  # [2N, C+T, ...]

    def write_samples(self, step: int):
        """EMA samples (one per class, fixed z) as a GIF and a TensorBoard image.

        DVD-GAN-FP: FP_SAMPLE_CLIPS fixed real clips (`prediction.dataset_clips`),
        each shown beside its C conditioning frames followed by G's T frames.
        """
        if not self.chief:
            return
        import imageio.v2 as imageio

        video = self._sample_videos()
        grid = tile_videos(video_to_uint8(video), cols=4)  # [T, rows*H, 4*W, 3]
        out = os.path.join(self.workdir, "samples")
        tf.io.gfile.makedirs(out)
        imageio.mimsave(
            os.path.join(out, f"step_{step:07d}.gif"), list(grid), duration=0.1, loop=0
        )
        if self.writer is not None:
            with self.writer.as_default(step=step):
                # Frames side by side: [1, rows*H, T*4*W, 3].
                strip = np.concatenate(list(grid), axis=1)[None]
                tf.summary.image("ema_samples", strip, step=step)


def _checkpoint_manager(gan, workdir, config, strategy):
    ckpt = checkpoints.make_checkpoint(gan)
    directory = checkpoints.checkpoint_dir(workdir)
    if not is_chief(strategy):  # non-chief workers write to a scratch dir (MWMS rule)
        directory = os.path.join(
            workdir, "tmp", f"worker_{strategy.cluster_resolver.task_id}"
        )
    return ckpt, tf.train.CheckpointManager(
        ckpt, directory, max_to_keep=config.train.keep_checkpoints
    )


def build_gan(config, strategy):
    """DVDGAN built and compiled under `strategy` with the resolved XLA setting."""
    precision = runtime.set_precision(config.runtime.mixed_precision)
    layers.set_conv_input_grad(config.runtime.get("conv_input_grad", "forward"))
    grappler = runtime.set_graph_optimizations(
        config.runtime.get("graph_optimizations", True)
    )
    jit = runtime.resolve_jit_compile(config.runtime.jit_compile, strategy)
    with strategy.scope():
        gan = DVDGAN.from_config_dict(config, jit_compile=jit)
    logging.info(
        "XLA jit_compile=%s, precision %s (runtime.mixed_precision=%r), graph "
        "optimizations %s for strategy %s",
        jit,
        precision,
        config.runtime.mixed_precision,
        "on" if grappler else "off",
        runtime.strategy_kind(strategy),
    )
    return gan


def train(
    config, workdir: str, strategy: tf.distribute.Strategy | None = None, verbose="auto"
):
    """Trains (or resumes) the run in `workdir`; returns the DVDGAN model."""
    strategy = strategy or tf.distribute.get_strategy()
    config_lib.check_replica_batch(config, strategy.num_replicas_in_sync)
    chief = is_chief(strategy)
    names = data.class_names(config)
    if tf.io.gfile.exists(checkpoints.config_path(workdir)):
        saved = checkpoints.load_workdir_config(workdir)
        checkpoints.check_resume_compatible(saved, config)
        if chief:  # non-chief workers keep no checkpoints of their own
            checkpoints.check_keep_checkpoints(
                workdir,
                config.train.keep_checkpoints,
                saved.get("train", {}).get("keep_checkpoints"),
            )
        for diff in checkpoints.resume_differences(saved, config):
            logging.warning("resuming with a changed setting: %s", diff)
    if chief:
        checkpoints.write_workdir_config(workdir, config, names)

    gan = build_gan(config, strategy)
    ckpt, manager = _checkpoint_manager(gan, workdir, config, strategy)
    latest = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(workdir))
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s", latest)
    start = int(gan.g_optimizer.iterations.numpy())
    remaining = config.train.num_steps - start
    if remaining <= 0:
        logging.info(
            "nothing to do: step %d >= train.num_steps=%d",
            start,
            config.train.num_steps,
        )
        return gan

    # Reseed the data order with the start step so a resumed run sees new clips.
    data_config = config.copy_and_resolve_references()
    with data_config.unlocked():
        data_config.data.seed = config.data.seed + start
    global_batch = config.train.batch_size * config.train.d_steps
    dataset = data.distribute_dataset(strategy, data_config, global_batch)

    callback = TrainingCallback(gan, config, workdir, manager, chief)
    callbacks = [callback, StopAwareProgbar()]
    if config.eval.every > 0:
        from dvdgan_tf.evaluation import EvaluationCallback

        callbacks.append(
            EvaluationCallback(
                config.eval.every,
                workdir,
                config,
                chief,
                raw_generator=config.eval.get("raw_generator", False),
                clock=callback.run_seconds,
                standing_stats=config.eval.get("standing_stats", 0),
            )
        )
    spe = config.train.steps_per_execution
    try:
        gan.fit(
            dataset,
            epochs=1,
            steps_per_epoch=(remaining // spe) * spe or remaining,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the input pipeline shuffles
        )
    finally:
        # Save where the run stopped (end, Ctrl-C, error) unless the weights are bad.
        if not callback.nonfinite and callback.step > start:
            callback.save(callback.step)
        if not chief:
            tf.io.gfile.rmtree(manager.directory)  # this worker's scratch copy
    if chief and config.train.sample_every > 0:
        callback.write_samples(callback.step)
    return gan
