"""Samples a trained run's EMA generator to a GIF, MP4, NPY or PNG file.

  python -m dvdgan_tf.sample --workdir=DIR --out=samples.gif
  python -m dvdgan_tf.sample --workdir=DIR --out=s.mp4 --classes=0,3,circle_left \\
      --num_per_class=6 --truncation=0.5 --seed=1 --fps=8 --scale=4
  python -m dvdgan_tf.sample --workdir=DIR --out=interp.gif --interpolate
  python -m dvdgan_tf.sample --workdir=DIR --out=samples.npy --checkpoint=ckpt-2000
  python -m dvdgan_tf.sample --workdir=DIR --out=sheet.png --scale=2

Rows are classes, columns samples (column j has the same z in every row); with
--interpolate each row walks from one z to another along the columns (slerp by
default). `.npy` holds uint8 [N, T, H, W, 3] with labels in FILE.labels.npy;
`.png` is one still image for documents, each sample's T frames side by side
(a film strip) with 2-pixel white borders between samples.
Every run writes FILE.json (class names per row, seed, truncation, checkpoint
step) and prints a legend. Formats, truncation and the MP4 size rule are
documented in `dvdgan_tf/sampling.py`.

DVD-GAN-FP runs (future prediction) continue real clips; one row per clip, the real
clip beside its C conditioning frames + T predicted frames:

  python -m dvdgan_tf.sample --workdir=DIR --out=fp.gif --num_conditioning=8
  python -m dvdgan_tf.sample --workdir=DIR --out=fp.mp4 --classes=0,circle_up
  python -m dvdgan_tf.sample --workdir=DIR --out=pred.npy --conditioning=clips.npy
  python -m dvdgan_tf.sample --workdir=DIR --out=fp.gif --conditioning=clip.mp4 \\
      --classes=square_left --seed=3 --truncation=0.5

`--conditioning` takes .npy [N, >= C, H, W, 3] (uint8, or float in [-1, 1]) or
video files at the run's resolution; the labels come from --classes or
FILE.labels.npy. `.npy` output holds the predicted frames [N, T, H, W, 3] and
FILE.conditioning.npy the inputs.
"""

from __future__ import annotations

from absl import app, flags

from dvdgan_tf import sampling

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's directory.")
_OUT = flags.DEFINE_string(
    "out",
    None,
    f"Output file; the extension picks the format: {', '.join(sampling.VALID_EXTENSIONS)}.",
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "", "Checkpoint name (ckpt-N) or path; default: the latest."
)
_CLASSES = flags.DEFINE_list(
    "classes",
    [],
    f"Class ids or names, one row each; default: the first "
    f"{sampling.DEFAULT_MAX_ROWS} classes. DVD-GAN-FP runs: the conditioning clips' "
    "classes (dataset clips of these classes; labels of --conditioning clips).",
)
_NUM_PER_CLASS = flags.DEFINE_integer(
    "num_per_class", 4, "Columns: samples (or interpolation steps) per class."
)
_TRUNCATION = flags.DEFINE_float(
    "truncation", 0.0, "Truncation threshold for z (BigGAN); 0 = none."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the latents.")
_INTERPOLATE = flags.DEFINE_bool(
    "interpolate", False, "Latent interpolation along the columns of each row."
)
_INTERPOLATION = flags.DEFINE_enum(
    "interpolation", "slerp", list(sampling.INTERPOLATIONS), "Interpolation path."
)
_FPS = flags.DEFINE_float("fps", 8.0, "Frames per second of .gif/.mp4.")
_SCALE = flags.DEFINE_integer(
    "scale", 1, "Nearest-neighbour upscale factor of .gif/.mp4 frames and .png sheets."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Generator batch size.")
_CONDITIONING = flags.DEFINE_list(
    "conditioning",
    [],
    "DVD-GAN-FP runs: files of conditioning clips (.npy [N, >= C, H, W, 3] uint8 or "
    "float in [-1, 1], or videos such as .gif/.mp4, one clip each).",
)
_NUM_CONDITIONING = flags.DEFINE_integer(
    "num_conditioning",
    None,
    "DVD-GAN-FP runs: number of conditioning clips taken from the run's dataset "
    f"(test split first; default {sampling.DEFAULT_NUM_CONDITIONING}).",
)
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        meta = sampling.sample_workdir(
            _WORKDIR.value,
            _OUT.value,
            checkpoint=_CHECKPOINT.value or None,
            classes=_CLASSES.value,
            num_per_class=_NUM_PER_CLASS.value,
            truncation=_TRUNCATION.value,
            seed=_SEED.value,
            interpolate=_INTERPOLATE.value,
            interpolation=_INTERPOLATION.value,
            fps=_FPS.value,
            scale=_SCALE.value,
            batch_size=_BATCH_SIZE.value,
            conditioning=_CONDITIONING.value,
            num_conditioning=_NUM_CONDITIONING.value,
        )
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dvdgan_tf.sample: error: {e}") from None
    print(sampling.legend(meta))


if __name__ == "__main__":
    app.run(main)
