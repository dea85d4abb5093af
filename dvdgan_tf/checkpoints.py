"""Workdir layout, checkpoints and resume.

  WORKDIR/config.json        the full config of the run (checked on resume)
  WORKDIR/class_names.json   the dataset's class names (sampling legends, export)
  WORKDIR/checkpoints/       tf.train checkpoints: G, EMA G, D_S, D_T, both optimizers
  WORKDIR/samples/           GIFs from the EMA generator during training
  WORKDIR/tb/                TensorBoard event files
  WORKDIR/eval/<step>.json   evaluation results

tf.train.CheckpointManager writes the checkpoint files first and then atomically
replaces the `checkpoint` index file, so a process killed mid-save leaves the index
pointing at the previous complete checkpoint: the latest checkpoint is never corrupt.
"""

from __future__ import annotations

import json
import os

import ml_collections
import tensorflow as tf

from dvdgan_tf import layers
from dvdgan_tf import standing_stats as standing
from dvdgan_tf.generator import Generator


def config_path(workdir: str) -> str:
    return os.path.join(workdir, "config.json")


def run_time_path(workdir: str) -> str:
    return os.path.join(workdir, "run_time.json")


def load_run_seconds(workdir: str) -> float:
    """Seconds spent training this run up to its last checkpoint (0 for a new run).

    Written at every checkpoint, so a resumed run's clock continues from where its
    checkpoint left it: stops and pauses between runs are not counted.
    """
    path = run_time_path(workdir)
    if not tf.io.gfile.exists(path):
        return 0.0
    with tf.io.gfile.GFile(path) as f:
        return float(json.load(f)["run_seconds"])


def save_run_seconds(workdir: str, seconds: float, step: int) -> None:
    """Records the run's training time at checkpoint `step` (write, then rename)."""
    path = run_time_path(workdir)
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump({"run_seconds": float(seconds), "step": int(step)}, f)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


# Model fields renamed since a run could have saved its config: old -> new name.
_RENAMED_MODEL_FIELDS = {"conditional_frames": "conditioning_frames"}
# Fields added after runs were saved, with the value that reproduces those runs.
_ADDED_FIELDS = {
    "model": {
        "encoder_states": "first",
        "encoder_padding": "zeros",
        "output_skip": "none",
    },
    "eval": {"standing_stats": 0},
    "runtime": {"graph_optimizations": True},
    "train": {
        "ema_statistics": "forward",
        "g_dt_weight": 1.0,
        "g_dt_weight_schedule": (),
    },
}


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was started with (renamed fields updated)."""
    path = config_path(workdir)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"no training run in workdir={workdir!r}: {path} does not exist "
            "(train first with `python -m dvdgan_tf.train --workdir=...`)"
        )
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    model = saved.get("model", {})
    for old, new in _RENAMED_MODEL_FIELDS.items():
        if old in model:
            model.setdefault(new, model.pop(old))
    for section, added in _ADDED_FIELDS.items():
        if saved.get(section):
            for field, value in added.items():
                saved[section].setdefault(field, value)
    return ml_collections.ConfigDict(saved)


def _as_plain(value):
    if isinstance(value, (list, tuple)):
        return [_as_plain(v) for v in value]
    return value


def _section_differences(section: str, saved, config) -> list[str]:
    """Fields of `section` whose value differs between two configs, each as
    "section.field: saved X vs now Y", sorted by field name."""
    old, new = saved.get(section, {}), config.get(section, {})
    if not hasattr(old, "items") or not hasattr(new, "items"):
        return []
    old = {k: _as_plain(v) for k, v in old.items()}
    new = {k: _as_plain(v) for k, v in new.items()}
    return [
        f"{section}.{k}: saved {old.get(k)!r} vs now {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def check_resume_compatible(saved, config) -> None:
    """Refuses to resume a run whose model section differs from the saved one."""
    diff = _section_differences("model", saved, config)
    if diff:
        raise ValueError(
            "the workdir holds a run with a different architecture; refusing to resume "
            f"({', '.join(diff)}). Use a new --workdir, or the original config."
        )


def resume_differences(saved, config) -> list[str]:
    """Non-model fields whose value differs from the saved run's, as "sec.field:
    saved X vs now Y" (resuming may change them; training logs the list, since a
    forgotten command-line override changes the run silently otherwise)."""
    sections = sorted((set(saved.keys()) | set(config.keys())) - {"model"})
    return [d for s in sections for d in _section_differences(s, saved, config)]


def check_keep_checkpoints(workdir: str, keep: int, saved_keep: int | None) -> None:
    """Refuses a resume whose train.keep_checkpoints would delete saved checkpoints.

    tf.train.CheckpointManager deletes the oldest checkpoints beyond `keep` at its
    first save, so resuming a run saved with a larger keep_checkpoints (an override
    left off the command line) would silently delete the earlier ones.

    `saved_keep` is the keep_checkpoints of the run that wrote the checkpoints (None:
    unknown). A run killed inside a save can list `saved_keep + 1`: the manager
    records the new checkpoint before deleting the oldest and recording again. That
    oldest one was already on its way out, so only the newest `saved_keep` count.
    """
    state = tf.train.get_checkpoint_state(checkpoint_dir(workdir))
    saved = list(state.all_model_checkpoint_paths) if state else []
    if saved_keep is not None:
        saved = saved[-saved_keep:]  # the ones the interrupted run meant to keep
    if len(saved) > keep:
        names = ", ".join(os.path.basename(p) for p in saved[: len(saved) - keep])
        raise ValueError(
            f"resuming with train.keep_checkpoints={keep} would delete "
            f"{len(saved) - keep} of the run's {len(saved)} checkpoints ({names}); "
            f"pass --config.train.keep_checkpoints={len(saved)} (or more), or "
            f"delete the ones you do not need from {checkpoint_dir(workdir)}"
        )


def write_workdir_config(workdir: str, config, class_names=None) -> None:
    tf.io.gfile.makedirs(workdir)
    with tf.io.gfile.GFile(config_path(workdir), "w") as f:
        f.write(config.to_json(indent=2))
    if class_names is not None:
        with tf.io.gfile.GFile(os.path.join(workdir, "class_names.json"), "w") as f:
            json.dump(list(class_names), f)


def load_class_names(workdir: str) -> list[str] | None:
    path = os.path.join(workdir, "class_names.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def make_checkpoint(gan) -> tf.train.Checkpoint:
    """Everything a resumed run needs (the step counter is g_optimizer.iterations)."""
    return tf.train.Checkpoint(
        generator=gan.generator,
        ema_generator=gan.ema_generator,
        spatial_discriminator=gan.spatial_discriminator,
        temporal_discriminator=gan.temporal_discriminator,
        g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer,
    )


def resolve_checkpoint(workdir: str, checkpoint: str | None = None) -> str:
    """Path of the latest checkpoint in `workdir`, or of the named one."""
    if checkpoint:
        name = checkpoint
        if not os.path.isabs(name) and not tf.io.gfile.exists(name + ".index"):
            name = os.path.join(checkpoint_dir(workdir), checkpoint)
        if not tf.io.gfile.exists(name + ".index"):
            raise FileNotFoundError(
                f"checkpoint {checkpoint!r} not found (looked for {name}.index)"
            )
        return name
    latest = tf.train.latest_checkpoint(checkpoint_dir(workdir))
    if latest is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir(workdir)!r}; train first or pass --workdir "
            "of a run that saved one"
        )
    return latest


def checkpoint_step(path: str) -> int:
    """The step number of a checkpoint path `.../ckpt-<step>`."""
    try:
        return int(path.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def load_ema_generator(
    workdir: str, checkpoint: str | None = None, standing_stats: int | None = None
):
    """(EMA generator, config, step) from a run's workdir, for sampling and export.

    standing_stats: batches for the BatchNorm standing statistics
    (`dvdgan_tf.standing_stats`; None: config.eval.standing_stats, 0: the
    checkpoint's own statistics).
    """
    config = load_workdir_config(workdir)
    standing_stats = standing.num_batches(config, standing_stats)
    path = resolve_checkpoint(workdir, checkpoint)
    with layers.kernel_initializer("zeros"):  # weights come from the checkpoint
        g = Generator.from_model_config(config.model, name="ema_generator")
    status = tf.train.Checkpoint(ema_generator=g).read(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    if standing_stats:
        standing.recompute(g, standing.batches_for(config, standing_stats))
    return g, config, checkpoint_step(path)
