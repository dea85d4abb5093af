"""How fast do a DVD-GAN-FP generator's shapes move, and do its discriminators mind?

For a -FP run on the built-in dataset, conditions the EMA generator (standing
statistics as in the run's evaluations) on the first C frames of N test clips and
prints:

  speed   per motion class (left / right / up / down), the shape's displacement
          from the first to the last predicted frame (centroid of the pixels that
          differ from the clip's background shade by > 0.3, in pixels), for the
          real continuations and for G's: their ratio is G's speed relative to the
          data's.
  D       the run's D_T and D_S mean scores (hinge margin: real > +1, fake < -1) on
          the conditioning frames followed by: the real continuation, G's, the last
          conditioning frame frozen, and the real continuation slowed down by
          `--slow` (frame t of it is the real frame nearest to time C - 1 +
          slow * t). If D_T scores slowed clips as fake, it can see the speed, and a
          G that moves too slowly is not for lack of a signal from D_T. D_S scores
          k of the C + T frames drawn as in training (seeded: tf.random.set_seed(0)).

  python benchmarks/fp_motion_probe.py --workdir=workdirs/fp_skip_s0
"""

import argparse

import numpy as np
import tensorflow as tf

from dvdgan_tf import checkpoints, prediction
from dvdgan_tf.data import synthetic
from dvdgan_tf.discriminators import SpatialDiscriminator, TemporalDiscriminator

TRANSLATIONS = ("left", "right", "up", "down")


def centroids(videos: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Shape centroids [N, T, 2] (x, y in pixels) of videos [N, T, H, W, 3].

    shade: [N, 3], each clip's background colour.
    """
    mask = np.abs(videos - shade[:, None, None, None, :]).sum(-1) > 0.3  # [N, T, H, W]
    ys, xs = np.mgrid[: videos.shape[2], : videos.shape[3]]  # [H, W] each
    area = np.maximum(mask.sum((2, 3)), 1)  # [N, T]
    cx = (mask * xs).sum((2, 3)) / area  # [N, T]
    cy = (mask * ys).sum((2, 3)) / area  # [N, T]
    return np.stack([cx, cy], axis=-1)  # [N, T, 2]


def displacement(videos: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """|centroid(last frame) - centroid(first frame)| [N] in pixels."""
    c = centroids(videos, shade)  # [N, T, 2]
    return np.linalg.norm(c[:, -1] - c[:, 0], axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--num_clips", type=int, default=600)
    parser.add_argument("--slow", type=float, default=0.45)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    tf.random.set_seed(0)  # D_S's frame draws
    if not 0.0 <= args.slow <= 1.0:
        raise ValueError(f"--slow must be in [0, 1]; received {args.slow}")

    # Resolved once: G and both discriminators come from the same checkpoint even
    # while a run is still saving new ones.
    path = checkpoints.resolve_checkpoint(args.workdir, args.checkpoint)
    g, config, step = checkpoints.load_ema_generator(args.workdir, path)
    m = config.model
    c = m.conditioning_frames
    if not c:
        raise ValueError(f"{args.workdir!r} is not a DVD-GAN-FP run (C = 0)")
    d_t = TemporalDiscriminator.from_model_config(m)
    d_s = SpatialDiscriminator.from_model_config(m)
    status = tf.train.Checkpoint(
        temporal_discriminator=d_t, spatial_discriminator=d_s
    ).read(path)
    status.expect_partial()
    status.assert_existing_objects_matched()

    clips = prediction.dataset_clips(config, args.num_clips)
    real = clips.videos.astype(np.float32)  # [N, C+T, H, W, 3] in [-1, 1]
    labels = clips.labels  # [N]
    t = real.shape[1] - c
    shade = real[:, 0, 0, 0, :]  # [N, 3]: shapes never touch the corner
    z = np.random.default_rng(0).normal(size=(len(real), m.z_dim)).astype(np.float32)
    predicted = prediction.predict(g, real[:, :c], labels, z)  # [N, T, H, W, 3]
    frozen = np.repeat(real[:, c - 1 : c], t, axis=1)  # [N, T, H, W, 3]
    nearest = np.rint(c - 1 + args.slow * np.arange(1, t + 1)).astype(int)  # [T]
    slowed = real[:, nearest]  # [N, T, H, W, 3]

    motion = np.array([synthetic.motion_of(y) for y in labels])  # [N]
    print(f"{args.workdir} at step {step}, {len(real)} test clips")
    print("\nshape displacement over the T predicted frames (pixels)")
    print(f"{'motion':8s} {'real':>6s} {'G':>6s} {'G/real':>7s}")
    d_real = displacement(real[:, c:], shade)
    d_pred = displacement(predicted, shade)
    for name in TRANSLATIONS:
        sel = motion == name
        if sel.any():
            r, p = d_real[sel].mean(), d_pred[sel].mean()
            print(f"{name:8s} {r:6.2f} {p:6.2f} {p / r:7.2f}")

    def scores(d, continuation):
        video = np.concatenate([real[:, :c], continuation], axis=1)  # [N, C+T, ...]
        out = [
            d(video[i : i + args.batch_size], labels[i : i + args.batch_size]).numpy()
            for i in range(0, len(video), args.batch_size)
        ]
        return np.concatenate(out)  # [N]

    moving = np.isin(motion, TRANSLATIONS)
    print("\nmean discriminator scores (real > +1, fake < -1)")
    print(
        f"{'continuation':16s} {'D_T':>6s} {'D_T moving':>11s} {'D_T other':>10s}  D_S"
    )
    sets = {
        "real": real[:, c:],
        "G": predicted,
        "frozen": frozen,
        f"slowed x{args.slow:g}": slowed,
    }
    for name, continuation in sets.items():
        s_t, s_s = scores(d_t, continuation), scores(d_s, continuation)
        print(
            f"{name:16s} {s_t.mean():+6.2f} {s_t[moving].mean():+11.2f} "
            f"{s_t[~moving].mean():+10.2f}  {s_s.mean():+.2f}"
        )


if __name__ == "__main__":
    main()
