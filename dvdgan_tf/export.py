"""SavedModel export of the EMA generator for TF Serving: `python -m dvdgan_tf.export`.

  python -m dvdgan_tf.export --workdir=DIR --export_dir=OUT [--version=N]
      [--checkpoint=ckpt-3000] [--overwrite]

writes TF Serving's versioned layout, `OUT/<version>/saved_model.pb` + `variables/` +
`assets/`, from the EMA generator of the latest (or the named) checkpoint in DIR.
The version defaults to the checkpoint's step (1 if the step is unknown or 0), so
exporting successive checkpoints into the same OUT makes TF Serving load the newest.

Signatures (method name `tensorflow/serving/predict`; B = batch, any size):

  serving_default  label int32 [B], z float32 [B, z_dim]          -> video uint8 [B, T, H, W, 3]
  sample           label int32 [B], seed int64 [B]                -> video uint8 [B, T, H, W, 3]
  sample_truncated label int32 [B], seed int64 [B],
                   truncation float32 [B]                         -> video uint8 [B, T, H, W, 3]

`video` is (G(z, label) + 1) * 127.5 rounded to uint8 0..255, exactly
`training.video_to_uint8` of the float video. In `sample*`, video i is drawn from
z_i = `latents(seed_i, truncation_i)`: N(0, I) from the stateless Philox stream
seeded (seed_i, 0), or with truncation t > 0 the normal truncated to [-t, t]
(the BigGAN truncation trick, by inverse CDF of stateless uniforms, so the same
seed always gives the same video and no resampling loop is needed); t = 0 means no
truncation. A SignatureDef has no optional inputs (TF Serving requires every input
of the chosen signature), hence the two sampling signatures. Every input is
batch-major so that both of TF Serving's REST formats (`instances` rows and
`inputs` columns) work with every signature; see `rest_request_to_inputs`.

DVD-GAN-FP exports (model.conditioning_frames = C > 0: G continues C real frames)
have `FP_SIGNATURES` instead; each takes `frames` uint8 [B, C, H, W, 3] (0..255, H =
W = model.resolution), and `video` holds the T predicted frames only:

  serving_default   label int32 [B], z float32 [B, z_dim],
                    frames uint8 [B, C, H, W, 3]                  -> video uint8 [B, T, H, W, 3]
  predict           frames uint8 [B, C, H, W, 3], label int32 [B],
                    seed int64 [B]                                -> video uint8 [B, T, H, W, 3]
  predict_truncated frames, label, seed, truncation float32 [B]   -> video uint8 [B, T, H, W, 3]

`predict*` draw z exactly as `sample*` do (same seed, same z). There is no
`sample`/`sample_truncated` in an FP export: without frames there is nothing to
continue, and with them they would be `predict*`. The frames are mapped to [-1, 1]
as the input pipeline does (x / 127.5 - 1).

Inputs are validated inside the graph, so TF Serving callers get an
InvalidArgumentError that says what was expected instead of a garbage video:
"label must be in [0, K)", "z must have shape [B, z_dim]", "z and label must have
the same batch size", "seed and label must have the same batch size",
"truncation must be >= 0 (0 = none)", and for FP exports "frames must have shape
[B, C, H, W, 3]" (with the numbers) and "frames and label must have the same batch
size". `z` is declared [B, None] in the signature so that a wrong width reaches
the in-graph check (a static [B, z_dim] would be rejected by Python's signature
matching with a generic message, and TF Serving's C++ path does not check shapes
at all); `frames` likewise [None] * 5.

Assets: `assets/config.json` (the training config) and `assets/class_names.json`
(the dataset's class names, index = label; written when the run recorded them).

Keras 3 trap: Keras 3 layers hold `keras.Variable`s that wrap the `tf.Variable`s. A
`tf.Module` that tracks only the Keras model exports, and Python's
`tf.saved_model.load` works, but the C++ loader (TF Serving, `saved_model_cli run`)
fails with "Could not find variable ...". `ServingModule` therefore also tracks the
underlying `tf.Variable`s (`generator_variables`); tests run `saved_model_cli run`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from dvdgan_tf import checkpoints

SIGNATURES = ("serving_default", "sample", "sample_truncated")
# DVD-GAN-FP exports (model.conditioning_frames > 0): every signature takes frames.
FP_SIGNATURES = ("serving_default", "predict", "predict_truncated")


def latents(seeds, z_dim: int, truncation=None) -> tf.Tensor:
    """Deterministic latents: seeds int [B] (+ truncation float [B]) -> z float32 [B, z_dim].

    Row i depends only on (seeds[i], truncation[i]): N(0, I) drawn with
    `tf.random.stateless_normal(seed=(seeds[i], 0))`, or for truncation[i] = t > 0 the
    standard normal truncated to [-t, t] via its inverse CDF applied to
    `tf.random.stateless_uniform(seed=(seeds[i], 1))`. Works eagerly and in graphs.
    """
    seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)  # [B]
    if truncation is None:
        truncation = tf.zeros(tf.shape(seeds), tf.float32)
    truncation = tf.cast(tf.convert_to_tensor(truncation), tf.float32)  # [B]

    def one(args):
        seed, t = args
        normal = tf.random.stateless_normal([z_dim], seed=tf.stack([seed, 0]))
        # Truncated normal on [-t, t]: Phi^-1(U(Phi(-t), Phi(t))), in float64 so that
        # Phi(t) is not 1 for moderate t; clip catches ndtri(0 or 1) = -inf / inf.
        t64 = tf.cast(t, tf.float64)
        hi = 0.5 * (1.0 + tf.math.erf(t64 / np.sqrt(2.0)))
        u = tf.random.stateless_uniform(
            [z_dim], seed=tf.stack([seed, 1]), dtype=tf.float64
        )
        trunc = tf.clip_by_value(
            tf.math.ndtri((1.0 - hi) + u * (2.0 * hi - 1.0)), -t64, t64
        )
        return tf.where(t > 0.0, tf.cast(trunc, tf.float32), normal)  # [z_dim]

    return tf.map_fn(
        one,
        (seeds, truncation),
        fn_output_signature=tf.TensorSpec([z_dim], tf.float32),
    )  # [B, z_dim]


def video_to_uint8(video: tf.Tensor) -> tf.Tensor:
    """float32 [...] in [-1, 1] -> uint8 [...] in 0..255, as `training.video_to_uint8`.

    tf.round rounds half to even, like np.round.
    """
    return tf.cast(
        tf.clip_by_value(tf.round((video + 1.0) * 127.5), 0.0, 255.0), tf.uint8
    )


class _ServingBase(tf.Module):
    """The EMA generator, its variables, assets and the in-graph input checks."""

    def __init__(self, generator, config_json: str, class_names=None, name=None):
        super().__init__(name=name)
        self.generator = generator
        # The C++ loader needs the tf.Variables tracked directly (module docstring).
        self.generator_variables = [w.value for w in generator.weights]
        for w, v in zip(generator.weights, self.generator_variables, strict=True):
            if not isinstance(v, tf.Variable):
                raise TypeError(
                    f"expected {w.path}.value to be a tf.Variable (TensorFlow backend); "
                    f"received {type(v).__name__}"
                )
        self.z_dim = int(generator.z_dim)
        self.num_classes = int(generator.num_classes)
        self._assets_dir = tempfile.mkdtemp(prefix="dvdgan_export_assets_")
        self.config_file = tf.saved_model.Asset(
            self._write_asset("config.json", config_json)
        )
        self.class_names_file = None
        if class_names is not None:
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"class_names must have num_classes={self.num_classes} entries; "
                    f"received {len(class_names)}: {list(class_names)[:8]}"
                )
            self.class_names_file = tf.saved_model.Asset(
                self._write_asset("class_names.json", json.dumps(list(class_names)))
            )

    def _write_asset(self, filename: str, text: str) -> str:
        path = os.path.join(self._assets_dir, filename)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _check_label(self, label):
        k = self.num_classes
        return tf.debugging.Assert(
            tf.reduce_all((label >= 0) & (label < k)),
            [f"label must be in [0, {k}); received label =", label],
            summarize=16,
        )

    def _check_batch(self, name, x, label):
        return tf.debugging.Assert(
            tf.equal(tf.shape(x)[0], tf.shape(label)[0]),
            [
                f"{name} and label must have the same batch size; received "
                f"{name} shape =",
                tf.shape(x),
                "label shape =",
                tf.shape(label),
            ],
            summarize=5,  # whole shapes (frames have 5 dimensions)
        )

    def _check_z(self, z, label):
        return [
            tf.debugging.Assert(
                tf.equal(tf.shape(z)[1], self.z_dim),
                [f"z must have shape [B, {self.z_dim}]; received shape", tf.shape(z)],
            ),
            self._check_batch("z", z, label),
        ]

    def _check_truncation(self, truncation, label):
        return [
            self._check_batch("truncation", truncation, label),
            tf.debugging.Assert(
                tf.reduce_all(truncation >= 0.0),
                ["truncation must be >= 0 (0 = none); received", truncation],
                summarize=16,
            ),
        ]

    def _generate(self, z, label, frames=None):
        """z float32 [B, z_dim], label int32 [B] (both checked), DVD-GAN-FP's frames
        float32 [B, C, H, W, 3] in [-1, 1] -> {"video": uint8 [B, T, H, W, 3]}."""
        kwargs = {} if frames is None else {"frames": frames}
        video = self.generator(z, label, training=False, **kwargs)  # in [-1, 1]
        return {"video": video_to_uint8(video)}

    def _seeded(self, label, seed, truncation):
        """Validates label, seed and truncation, then z from the seeds: (z, label)."""
        checks = [
            self._check_label(label),
            self._check_batch("seed", seed, label),
            *self._check_truncation(truncation, label),
        ]
        with tf.control_dependencies(checks):
            z = latents(seed, self.z_dim, truncation)  # [B, z_dim]
            label = tf.identity(label)
        return z, label


class ServingModule(_ServingBase):
    """The EMA generator behind the serving signatures (see the module docstring)."""

    def __init__(self, generator, config_json: str, class_names=None, name=None):
        if getattr(generator, "conditioning_frames", 0):
            raise ValueError(
                "this generator predicts from conditioning_frames="
                f"{generator.conditioning_frames} frames (DVD-GAN-FP): use "
                "PredictionServingModule (export_generator picks it)"
            )
        super().__init__(generator, config_json, class_names, name=name)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None, None], tf.float32, name="z"),
        ]
    )
    def serving_default(self, label, z):
        """label int32 [B], z float32 [B, z_dim] -> {"video": uint8 [B, T, H, W, 3]}."""
        checks = [self._check_label(label), *self._check_z(z, label)]
        with tf.control_dependencies(checks):
            z = tf.ensure_shape(tf.identity(z), [None, self.z_dim])  # [B, z_dim]
            label = tf.identity(label)
        return self._generate(z, label)

    def _sample(self, label, seed, truncation):
        return self._generate(*self._seeded(label, seed, truncation))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None], tf.int64, name="seed"),
        ]
    )
    def sample(self, label, seed):
        """label int32 [B], seed int64 [B] -> {"video": uint8 [B, T, H, W, 3]}."""
        return self._sample(label, seed, tf.zeros(tf.shape(seed), tf.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None], tf.int64, name="seed"),
            tf.TensorSpec([None], tf.float32, name="truncation"),
        ]
    )
    def sample_truncated(self, label, seed, truncation):
        """label [B], seed [B], truncation float32 [B] (0 = none) -> {"video": uint8}."""
        return self._sample(label, seed, truncation)

    def signatures(self) -> dict:
        return {name: getattr(self, name) for name in SIGNATURES}


class PredictionServingModule(_ServingBase):
    """DVD-GAN-FP's EMA generator behind `FP_SIGNATURES` (module docstring): every
    signature takes the conditioning frames uint8 [B, C, H, W, 3]."""

    def __init__(self, generator, config_json: str, class_names=None, name=None):
        super().__init__(generator, config_json, class_names, name=name)
        self.conditioning_frames = int(generator.conditioning_frames)
        if self.conditioning_frames < 1:
            raise ValueError(
                "PredictionServingModule needs a DVD-GAN-FP generator; received one "
                "with conditioning_frames=0 (use ServingModule)"
            )
        self.resolution = int(generator.resolution)

    def _frames(self, frames, label):
        """Checks uint8 frames [B, C, R, R, 3]; returns them float32 in [-1, 1]."""
        c, r = self.conditioning_frames, self.resolution
        shape = tf.shape(frames)  # [rank]
        padded = tf.concat([shape, tf.zeros([5], tf.int32)], 0)[:5]  # any rank
        ok = tf.logical_and(
            tf.equal(tf.size(shape), 5),
            tf.reduce_all(tf.equal(padded[1:], [c, r, r, 3])),
        )
        checks = [
            tf.debugging.Assert(
                ok,
                [
                    f"frames must have shape [B, {c}, {r}, {r}, 3]; received shape",
                    shape,
                ],
                summarize=8,
            ),
            self._check_batch("frames", frames, label),
        ]
        with tf.control_dependencies(checks):
            frames = tf.ensure_shape(tf.identity(frames), [None, c, r, r, 3])
        return tf.cast(frames, tf.float32) / 127.5 - 1.0  # [B, C, R, R, 3] in [-1, 1]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None, None], tf.float32, name="z"),
            tf.TensorSpec([None] * 5, tf.uint8, name="frames"),
        ]
    )
    def serving_default(self, label, z, frames):
        """label [B], z float32 [B, z_dim], frames uint8 [B, C, H, W, 3] -> {"video":
        uint8 [B, T, H, W, 3]}: the T frames that follow."""
        frames = self._frames(frames, label)
        checks = [self._check_label(label), *self._check_z(z, label)]
        with tf.control_dependencies(checks):
            z = tf.ensure_shape(tf.identity(z), [None, self.z_dim])  # [B, z_dim]
            label = tf.identity(label)
        return self._generate(z, label, frames)

    def _predict(self, frames, label, seed, truncation):
        frames = self._frames(frames, label)
        z, label = self._seeded(label, seed, truncation)
        return self._generate(z, label, frames)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None] * 5, tf.uint8, name="frames"),
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None], tf.int64, name="seed"),
        ]
    )
    def predict(self, frames, label, seed):
        """frames uint8 [B, C, H, W, 3], label [B], seed int64 [B] -> {"video": uint8
        [B, T, H, W, 3]}: z from the seed as in `sample`."""
        return self._predict(frames, label, seed, tf.zeros(tf.shape(seed), tf.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None] * 5, tf.uint8, name="frames"),
            tf.TensorSpec([None], tf.int32, name="label"),
            tf.TensorSpec([None], tf.int64, name="seed"),
            tf.TensorSpec([None], tf.float32, name="truncation"),
        ]
    )
    def predict_truncated(self, frames, label, seed, truncation):
        """`predict` with truncation float32 [B] (0 = none), as `sample_truncated`."""
        return self._predict(frames, label, seed, truncation)

    def signatures(self) -> dict:
        return {name: getattr(self, name) for name in FP_SIGNATURES}


def serving_module(generator, config_json: str, class_names=None) -> _ServingBase:
    """`PredictionServingModule` for a DVD-GAN-FP generator, else `ServingModule`."""
    if getattr(generator, "conditioning_frames", 0):
        return PredictionServingModule(generator, config_json, class_names)
    return ServingModule(generator, config_json, class_names)


def export_generator(
    generator, export_path: str, config_json: str, class_names=None
) -> str:
    """Saves `generator` with the serving signatures to `export_path`; returns it.

    DVD-GAN-FP generators get `FP_SIGNATURES`, others `SIGNATURES`.
    """
    module = serving_module(generator, config_json, class_names)
    try:
        tf.saved_model.save(module, export_path, signatures=module.signatures())
    finally:
        shutil.rmtree(module._assets_dir, ignore_errors=True)  # copied into assets/
    return export_path


def export(
    workdir: str,
    export_dir: str,
    version: int | None = None,
    checkpoint: str | None = None,
    overwrite: bool = False,
) -> str:
    """Exports the EMA generator of `workdir` to `export_dir/<version>`; returns that path.

    version: defaults to the checkpoint's step, or 1 when the step is unknown or 0
    (TF Serving serves the largest numeric version in `export_dir`).
    """
    generator, config, step = checkpoints.load_ema_generator(workdir, checkpoint)
    if version is None:
        version = step if step > 0 else 1
    if version < 0:
        raise ValueError(f"version must be a non-negative integer; received {version}")
    path = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(path):
        if not overwrite:
            raise FileExistsError(
                f"export path {path!r} already exists; pass --overwrite or another "
                "--version"
            )
        tf.io.gfile.rmtree(path)
    export_generator(
        generator, path, config.to_json(indent=2), checkpoints.load_class_names(workdir)
    )
    logging.info("exported the EMA generator at step %d to %s", step, path)
    return path


def rest_request_to_inputs(body) -> tuple[str, dict[str, tf.Tensor]]:
    """A TF Serving REST `:predict` body -> (signature name, {input name: tensor}).

    Mirrors TF Serving's two request formats (body: a JSON string or parsed dict):

      {"signature_name": "serving_default",                     # optional, default
       "instances": [{"label": 3, "z": [0.1, ...z_dim floats]},  # row format: one
                     {"label": 7, "z": [...]}]}                  # dict per video
      {"signature_name": "sample",
       "inputs": {"label": [3, 7], "seed": [42, 43]}}            # columnar format

    Rows are stacked along a new batch axis. The dtypes are the signatures'
    (label int32, z / truncation float32, seed int64). The response is
    {"predictions": [video_0, ...]} (rows) or {"outputs": videos} (columns) with
    each video a nested list of ints 0..255 of shape [T, H, W, 3].
    """
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    dtypes = {
        "label": tf.int32,
        "z": tf.float32,
        "seed": tf.int64,
        "truncation": tf.float32,
        "frames": tf.uint8,
    }
    name = body.get("signature_name", "serving_default")
    known = SIGNATURES + FP_SIGNATURES[1:]
    if name not in known:
        raise ValueError(f"unknown signature_name {name!r}; expected one of {known}")
    if ("instances" in body) == ("inputs" in body):
        raise ValueError(
            "a request needs exactly one of 'instances' (rows) or 'inputs' (columns); "
            f"received keys {sorted(body)}"
        )
    if "instances" in body:
        rows = body["instances"]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError(
                "'instances' must be a non-empty list of {name: value} objects"
            )
        columns = {key: [r[key] for r in rows] for key in rows[0]}
    else:
        columns = body["inputs"]
    unknown = sorted(set(columns) - set(dtypes))
    if unknown:
        raise ValueError(
            f"unknown input names {unknown}; expected some of {sorted(dtypes)}"
        )
    return name, {k: tf.constant(v, dtype=dtypes[k]) for k, v in columns.items()}


def rest_response(outputs, body) -> dict:
    """A signature's outputs -> the JSON object TF Serving's REST API returns for `body`.

    The signatures have one output, so (as in TF Serving) its name is omitted:
    `{"predictions": [video_0, ...]}` for a row (`instances`) request and
    `{"outputs": [video_0, ...]}` for a columnar (`inputs`) request, each video a
    nested list of ints 0..255 of shape [T, H, W, 3].
    """
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    videos = np.asarray(outputs["video"]).tolist()  # [B, T, H, W, 3] as nested lists
    return {"predictions" if "instances" in body else "outputs": videos}


# ------------------------------------------------------------------ the command


def define_flags() -> None:
    """The command's flags; defined only when run as a program, so that importing
    this module as a library does not clash with other absl mains' --workdir."""
    flags.DEFINE_string("workdir", None, "Training run directory (train.py's).")
    flags.DEFINE_string(
        "export_dir",
        None,
        "TF Serving --model_base_path; the export goes to <it>/<version>.",
    )
    flags.DEFINE_integer(
        "version",
        None,
        "Model version (subdirectory); default: the checkpoint step, or 1.",
    )
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint name (ckpt-N) or path; default: the latest."
    )
    flags.DEFINE_bool("overwrite", False, "Replace an existing <export_dir>/<version>.")
    flags.mark_flags_as_required(["workdir", "export_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        path = export(f.workdir, f.export_dir, f.version, f.checkpoint, f.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise SystemExit(f"dvdgan_tf.export: error: {e}") from None
    print(path)


if __name__ == "__main__":
    define_flags()
    app.run(main)
