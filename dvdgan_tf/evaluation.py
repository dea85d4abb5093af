"""Evaluation of a run: samples from the EMA generator scored by FVD / FID / IS / builtin.

The library behind `python -m dvdgan_tf.evaluate` and `EvaluationCallback`. The
metric math lives in `dvdgan_tf.eval` (see its modules for the protocols).

Samples: `num_samples` videos float32 [N, T, H, W, 3] in [-1, 1] from the EMA
generator, labels balanced over the classes (label of sample i = i mod K), z from
`sampling.truncated_normal` (config.eval.truncation unless given; 0 = none) with a
fixed seed, so that evaluations at different steps see the same latents.

Metrics (`--metrics`, comma-separated), keys of the result dict:
  builtin  only for runs on the built-in dataset (data.name "synthetic_actions" or
           "tfds:synthetic_actions"): the 3-D-conv classifier of
           `eval.classifier` at the run's T and resolution (loaded from its cache,
           trained and cached on first use) and `BuiltinMetrics` against 2N
           class-balanced held-out real clips (`classifier.real_clips`). Keys
           "builtin/<name>" for class_accuracy, real_accuracy, frechet,
           frechet_real_real, diversity, diversity_real, diversity_ratio,
           num_compared, background_iqr, background_iqr_real,
           background_spread_ratio (the spread of the clips' background shades
           against the real set's, `classifier.background_shades`),
           shape_accuracy, motion_accuracy, class_accuracy/<class
           name> (`classifier.class_breakdown`), and classifier_test_accuracy
           (from the cache's report).
  fvd      Fréchet Video Distance with the Kinetics-400 I3D at --i3d_path: "fvd".
  fid      per-frame FID with InceptionV3 weights at --inception_path: "fid".
  is       UCF-101 Inception Score with the classifier at --c3d_path (needs
           T >= 16): "is" and "is_std" over min(10, N) splits.
Real videos for fvd/fid: N clips of the run's dataset via `data.build_dataset`, the
"test" split when it has N clips, else "train" (no shuffling, no random crops).
Their embeddings are computed once per `Evaluator`.

Future prediction (DVD-GAN-FP runs, model.conditioning_frames = C > 0; paper v2,
section 4.2): instead of sampling labels, the Evaluator takes real clips of C + T
frames (`prediction.dataset_clips`: the test split in order, else train; on the
built-in set clip i has label i mod K, so the set is class-balanced), conditions G
on the first C frames of the first N clips (z as above, label = the clip's) and
scores the T predicted frames against the clips' REAL continuations (last T frames):
  builtin  `eval.classifier.PredictionMetrics`, same keys and the same classifier
           (trained for T frames at the run's resolution, as for generation):
           class_accuracy = predictions classified as their conditioning clip's
           class; real_accuracy = the same on the real continuations (the ceiling);
           frechet = predictions vs the continuations of the next N clips (2N clips
           are read), frechet_real_real = the true continuations vs those, i.e.
           what a perfect predictor scores; diversity as above.
  fvd      I3D features of the N predictions vs of the N real continuations of
           the same clips (the paper's protocol; conditioning frames, identical on
           both sides, are left out); likewise `fid` per frame. `is` scores the
           predictions.
The same z, clips and labels at every evaluation of a run, so steps compare.

Outputs (`write_results`): `WORKDIR/eval/<step>.json` ({"step", "checkpoint",
"num_samples", "truncation", "seed", "metrics": {key: value}}; metrics of an
earlier evaluation of the same step are kept unless recomputed; NaN -> null) and
TensorBoard scalars under `WORKDIR/tb/eval`, tagged by the keys above.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dvdgan_tf import sampling

METRICS = ("builtin", "fvd", "fid", "is")
BUILTIN_DATASETS = ("synthetic_actions", "tfds:synthetic_actions")
_PATH_FLAGS = {"fvd": "i3d_path", "fid": "inception_path", "is": "c3d_path"}


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """["builtin", "fvd", ...] from "builtin,fvd"; ValueError quoting unknown names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = []
    for item in (s.strip().lower() for s in items):
        if not item:
            continue
        if item not in METRICS:
            raise ValueError(
                f"unknown metric {item!r}; valid metrics: {', '.join(METRICS)}"
            )
        if item not in names:
            names.append(item)
    if not names:
        raise ValueError(
            f"no metric requested (received {spec!r}); valid metrics: "
            f"{', '.join(METRICS)}"
        )
    return names


def balanced_labels(num: int, num_classes: int) -> np.ndarray:
    """int32 [num]: label of sample i = i mod num_classes."""
    return (np.arange(num) % num_classes).astype(np.int32)


def sample_videos(
    generator,
    num_samples: int,
    num_classes: int,
    z_dim: int,
    truncation: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """(videos float32 [N, T, H, W, 3] in [-1, 1], labels int32 [N]), balanced."""
    labels = balanced_labels(num_samples, num_classes)
    z = sampling.truncated_normal(
        (num_samples, z_dim), truncation, np.random.default_rng(seed)
    )  # [N, z_dim]
    return sampling.generate(generator, z, labels, batch_size), labels


def real_videos(config, num: int, batch_size: int = 16) -> np.ndarray:
    """`num` real clips float32 [num, T, H, W, 3] in [-1, 1] of the run's dataset.

    T is the pipeline's clip length, `config_lib.clip_frames(config)`: for
    DVD-GAN-FP the conditioning frames followed by the frames to predict.

    The "test" split if it has `num` clips, else "train"; fewer only when the
    dataset is smaller (logged).
    """
    from dvdgan_tf import prediction

    real = prediction.dataset_clips(config, num, batch_size).videos  # [M, T, H, W, 3]
    if real.shape[0] < num:
        logging.warning(
            "only %d real clips (asked for %d): Fréchet estimates are biased upwards",
            real.shape[0],
            num,
        )
    return real


def _load_embedder(metric: str, path: str | None):
    """The embedder of `metric` from `path`; errors name the command-line flag."""
    from dvdgan_tf.eval import embedders

    flag = _PATH_FLAGS[metric]
    loader = {
        "fvd": embedders.load_i3d,
        "fid": embedders.load_inception_v3,
        "is": embedders.load_video_classifier,
    }[metric]
    try:
        return loader(path or "")
    except FileNotFoundError as e:
        given = f"--{flag}={path!r}" if path else f"no --{flag} given"
        raise FileNotFoundError(
            f"metric {metric!r} needs --{flag} ({given}): {e}"
        ) from None


class Evaluator:
    """Scores a generator with the requested metrics; real-data parts are cached.

      evaluator = Evaluator(config, "builtin,fvd", i3d_path="/data/i3d")
      results = evaluator(ema_generator)  # {"builtin/class_accuracy": ..., "fvd": ...}

    The constructor validates the metrics, the dataset (builtin) and loads the
    embedders (fvd/fid/is), so that a bad setting fails before any sampling.
    """

    def __init__(
        self,
        config,
        metrics: str | Sequence[str] = "builtin",
        num_samples: int | None = None,
        batch_size: int | None = None,
        truncation: float | None = None,
        seed: int = 0,
        i3d_path: str | None = None,
        inception_path: str | None = None,
        c3d_path: str | None = None,
        c3d_value_range: tuple[float, float] = (-1.0, 1.0),
        classifier_path: str | None = None,
        classifier_train_kwargs: dict | None = None,
    ):
        self.config = config
        self.metrics = parse_metrics(metrics)
        self.num_samples = int(num_samples or config.eval.num_samples)
        self.batch_size = int(batch_size or config.eval.batch_size)
        if truncation is None:
            truncation = config.eval.truncation
        self.truncation = sampling.check_truncation(truncation)
        self.seed = seed
        self.c3d_value_range = tuple(c3d_value_range)
        self.classifier_path = classifier_path
        self.classifier_train_kwargs = dict(classifier_train_kwargs or {})
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2; received {self.num_samples}")
        m = config.model
        self.num_classes = m.num_classes
        self.conditioning_frames = m.get("conditioning_frames", 0)  # C; 0 = plain
        self._clips = None  # FP: (real clips [M, C+T, H, W, 3], labels [M]).
        if "builtin" in self.metrics:
            if config.data.name not in BUILTIN_DATASETS:
                raise ValueError(
                    "metric 'builtin' is only for runs on the built-in dataset "
                    f"(data.name in {BUILTIN_DATASETS}); this run has data.name="
                    f"{config.data.name!r}. Use --metrics=fvd,fid,is with local "
                    "model paths instead."
                )
            from dvdgan_tf.data import synthetic

            self.num_classes = min(m.num_classes, synthetic.NUM_CLASSES)
        if "is" in self.metrics and m.num_frames < 16:
            raise ValueError(
                "metric 'is' (UCF-101 C3D protocol) needs >= 16 frames; this run "
                f"has model.num_frames={m.num_frames}"
            )
        paths = {"fvd": i3d_path, "fid": inception_path, "is": c3d_path}
        self.embedders = {
            k: _load_embedder(k, paths[k]) for k in self.metrics if k in _PATH_FLAGS
        }
        self._builtin = None  # (BuiltinMetrics, classifier report), built lazily.
        self._real_feats = {}  # metric -> embeddings of the real videos.

    # ------------------------------------------------------------ real side

    def _fp_clips(self) -> tuple[np.ndarray, np.ndarray]:
        """DVD-GAN-FP: N (2N with builtin) real clips [M, C+T, H, W, 3] and labels."""
        if self._clips is None:
            from dvdgan_tf import prediction

            num = self.num_samples * (2 if "builtin" in self.metrics else 1)
            clips = prediction.dataset_clips(self.config, num, self.batch_size)
            if len(clips.labels) < num:
                why = (
                    " (N = num_samples to condition on, N more as the builtin "
                    "Fréchet reference)"
                    if num > self.num_samples
                    else ""
                )
                raise ValueError(
                    f"DVD-GAN-FP evaluation needs {num} real clips{why}; data.name="
                    f"{self.config.data.name!r} has {len(clips.labels)}: lower "
                    "--num_samples"
                )
            self._clips = (clips.videos, clips.labels)
        return self._clips

    def _builtin_metrics(self):
        if self._builtin is None:
            from dvdgan_tf.eval import classifier

            t, r = self.config.model.num_frames, self.config.model.resolution
            model, report = classifier.load_or_train_classifier(
                t, r, path=self.classifier_path, **self.classifier_train_kwargs
            )
            acc = report.get("test_accuracy")
            if acc is not None and acc < 0.95:
                logging.warning(
                    "the built-in classifier's held-out accuracy is %.3f < 0.95: "
                    "builtin metrics are unreliable (retrain it with "
                    "`python -m dvdgan_tf.train_classifier --num_frames=%d "
                    "--resolution=%d`)",
                    acc,
                    t,
                    r,
                )
            if self.conditioning_frames:  # DVD-GAN-FP (module docstring).
                clips, labels = self._fp_clips()
                n, c = self.num_samples, self.conditioning_frames
                metrics = classifier.PredictionMetrics(
                    model,
                    clips[:n, c:],  # [N, T, H, W, 3]: the real continuations
                    labels[:n],
                    clips[n : 2 * n, c:],  # [N, T, H, W, 3]: of N other clips
                    self.batch_size,
                )
            else:
                real, real_labels = classifier.real_clips(2 * self.num_samples, t, r)
                metrics = classifier.BuiltinMetrics(
                    model, real, real_labels, self.batch_size
                )
            self._builtin = (metrics, report)
        return self._builtin

    def _real_embeddings(self, metric: str) -> np.ndarray:
        if metric not in self._real_feats:
            from dvdgan_tf.eval import embedders

            if self.conditioning_frames:  # The real continuations [N, T, H, W, 3].
                clips, _ = self._fp_clips()
                real = clips[: self.num_samples, self.conditioning_frames :]
            else:
                real = real_videos(self.config, self.num_samples, self.batch_size)
            if metric == "fvd":
                feats = embedders.fvd_embed(real, self.embedders["fvd"])
            else:
                feats = embedders.fid_frame_embed(real, self.embedders["fid"])
            self._real_feats[metric] = feats
        return self._real_feats[metric]

    # ------------------------------------------------------------ scoring

    def _samples(self, generator) -> tuple[np.ndarray, np.ndarray]:
        """(videos [N, T, H, W, 3], labels [N]): samples, or FP's predictions."""
        if not self.conditioning_frames:
            return sample_videos(
                generator,
                self.num_samples,
                self.num_classes,
                self.config.model.z_dim,
                self.truncation,
                self.seed,
                self.batch_size,
            )
        from dvdgan_tf import prediction

        clips, labels = self._fp_clips()
        n, c = self.num_samples, self.conditioning_frames
        z = sampling.truncated_normal(
            (n, self.config.model.z_dim),
            self.truncation,
            np.random.default_rng(self.seed),
        )  # [N, z_dim]
        frames = clips[:n, :c]  # [N, C, H, W, 3]: the conditioning frames
        predicted = prediction.predict(
            generator, frames, labels[:n], z, self.batch_size
        )
        return predicted, labels[:n]  # [N, T, H, W, 3], [N]

    def __call__(self, generator) -> dict[str, float]:
        """Metrics of `generator`'s samples (FP: predictions): a {key: float} dict."""
        from dvdgan_tf.eval import embedders, frechet

        fake, labels = self._samples(generator)  # [N, T, H, W, 3], [N]
        results = {}
        for metric in self.metrics:
            start = time.time()
            if metric == "builtin":
                builtin, report = self._builtin_metrics()
                for k, v in builtin(fake, labels).items():
                    results[f"builtin/{k}"] = v if isinstance(v, int) else float(v)
                if "test_accuracy" in report:
                    results["builtin/classifier_test_accuracy"] = float(
                        report["test_accuracy"]
                    )
            elif metric == "fvd":
                feats = embedders.fvd_embed(fake, self.embedders["fvd"])
                results["fvd"] = frechet.frechet_distance(
                    feats, self._real_embeddings("fvd")
                )
            elif metric == "fid":
                feats = embedders.fid_frame_embed(fake, self.embedders["fid"])
                results["fid"] = frechet.frechet_distance(
                    feats, self._real_embeddings("fid")
                )
            else:  # "is"
                mean, std = embedders.ucf101_inception_score(
                    fake,
                    self.embedders["is"],
                    num_splits=min(10, self.num_samples),
                    value_range=self.c3d_value_range,
                )
                results["is"], results["is_std"] = mean, std
            logging.info("%s computed in %.1f s", metric, time.time() - start)
        return results


# ---------------------------------------------------------------- outputs


def eval_path(workdir: str, step: int) -> str:
    return os.path.join(workdir, "eval", f"{step}.json")


def _jsonable(value):
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


def write_results(
    workdir: str,
    step: int,
    results: dict,
    info: dict | None = None,
    writer: tf.summary.SummaryWriter | None = None,
) -> str:
    """Writes WORKDIR/eval/<step>.json (merged with an earlier one) and TB scalars."""
    path = eval_path(workdir, step)
    tf.io.gfile.makedirs(os.path.dirname(path))
    old = {}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            old = json.load(f)
    record = {k: v for k, v in old.items() if k != "metrics"}
    record.update({"step": step, "wall_time": time.time(), **(info or {})})
    # Metrics of an earlier evaluation of this step stay unless recomputed.
    record["metrics"] = {
        **old.get("metrics", {}),
        **{k: _jsonable(v) for k, v in results.items()},
    }
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=False)
    own_writer = writer is None
    if own_writer:
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tb", "eval"))
    with writer.as_default(step=step):
        for k, v in results.items():
            if math.isfinite(float(v)):
                tf.summary.scalar(k, float(v))
    writer.flush()
    if own_writer:
        writer.close()
    return path


def format_table(results: dict, step: int | None = None) -> str:
    """The results as an aligned two-column text table."""
    width = max([len(k) for k in results] + [6])
    head = f"{'metric':<{width}}  value" + (
        f"  (step {step})" if step is not None else ""
    )
    lines = [head, "-" * len(head)]
    for k, v in results.items():
        lines.append(f"{k:<{width}}  {float(v):.6g}")
    return "\n".join(lines)


def evaluate_workdir(
    workdir: str,
    checkpoint: str | None = None,
    metrics: str | Sequence[str] | None = None,
    standing_stats: int | None = None,
    **evaluator_kwargs,
) -> tuple[str, dict, int]:
    """Evaluates a run's EMA generator; writes eval/<step>.json and TB scalars.

    metrics None: config.eval.metrics. standing_stats: batches for BatchNorm
    standing statistics (None: config.eval.standing_stats; 0: off). Other
    arguments go to `Evaluator`. Returns (json path, results, step).
    """
    from dvdgan_tf import checkpoints
    from dvdgan_tf import standing_stats as standing

    config = checkpoints.load_workdir_config(workdir)
    path = checkpoints.resolve_checkpoint(workdir, checkpoint)
    evaluator = Evaluator(config, metrics or config.eval.metrics, **evaluator_kwargs)
    standing_stats = standing.num_batches(config, standing_stats)
    generator, _, step = checkpoints.load_ema_generator(workdir, path, standing_stats)
    results = evaluator(generator)
    info = {
        "checkpoint": path,
        "num_samples": evaluator.num_samples,
        "truncation": evaluator.truncation,
        "seed": evaluator.seed,
        "standing_stats": standing_stats,
    }
    return write_results(workdir, step, results, info), results, step


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates the EMA generator every `every_steps` G steps during `fit`.

    The step is `model.g_optimizer.iterations` (as in training); samples come
    from `model.ema_generator`. Writes WORKDIR/eval/<step>.json and scalars under
    WORKDIR/tb/eval. `evaluator_kwargs` go to `Evaluator` (default metrics:
    builtin). Non-chief workers (chief=False) do nothing. With
    `raw_generator=True` the raw generator `model.generator` is scored too, under
    "raw/<metric>" (same z and labels as the EMA generator). DVD-GAN-FP runs:
    the generators predict from the Evaluator's fixed real clips (module docstring).
    """

    def __init__(
        self,
        every_steps: int,
        workdir: str,
        config,
        chief: bool = True,
        raw_generator: bool = False,
        clock=None,
        standing_stats: int | None = 0,
        **kwargs,
    ):
        super().__init__()
        from dvdgan_tf import standing_stats as standing

        self.standing_stats = standing.num_batches(config, standing_stats)
        self._standing_batches = None  # Built once: the same inputs at every eval.
        self.clock = clock  # () -> the run's training seconds, recorded if given
        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1; received {every_steps}")
        self.every_steps = every_steps
        self.workdir = workdir
        self.chief = chief
        self.raw_generator = raw_generator
        self.evaluator = Evaluator(config, **kwargs) if chief else None
        self.last_step = None
        self.writer = None

    def _step(self) -> int:
        return int(self.model.g_optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self.last_step = self._step()

    def on_train_batch_end(self, batch, logs=None):
        if not self.chief:
            return
        step = self._step()
        last = self.last_step if self.last_step is not None else 0
        if step // self.every_steps > last // self.every_steps:
            self.last_step = step
            self.evaluate(step)

    def _score_ema(self) -> dict:
        """Scores the EMA generator; its statistics are put back afterwards."""
        g = self.model.ema_generator
        if not self.standing_stats:
            return self.evaluator(g)
        from dvdgan_tf import standing_stats as standing

        if self._standing_batches is None:
            self._standing_batches = standing.batches_for(
                self.evaluator.config, self.standing_stats
            )
        with standing.standing_statistics(g, self._standing_batches):
            return self.evaluator(g)

    def evaluate(self, step: int) -> dict:
        """Runs the evaluation now and writes its outputs; returns the results."""
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(
                os.path.join(self.workdir, "tb", "eval")
            )
        start = time.time()
        results = self._score_ema()
        if self.raw_generator:
            raw = self.evaluator(self.model.generator)
            results.update({f"raw/{k}": v for k, v in raw.items()})
        info = {
            "checkpoint": None,  # In-training EMA weights.
            "num_samples": self.evaluator.num_samples,
            "truncation": self.evaluator.truncation,
            "seed": self.evaluator.seed,
            "standing_stats": self.standing_stats,
        }
        if self.clock is not None:
            info["run_seconds"] = self.clock()  # pauses between resumes excluded
        path = write_results(self.workdir, step, results, info, self.writer)
        logging.info(
            "step %d: evaluation in %.1f s -> %s\n%s",
            step,
            time.time() - start,
            path,
            format_table(results),
        )
        return results
