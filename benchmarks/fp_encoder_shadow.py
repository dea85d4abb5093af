"""Does a DVD-GAN-FP generator draw its frame encoder's border pattern?

Feeds a trained -FP run's EMA generator conditioning frames *without a shape*: each
test clip's background shade, flat, in every conditioning frame. A good predictor
then continues the flat background; the "shadow" is the spatial pattern in its predicted
frames (std over H and W; 0 for a flat frame), printed with the shade error
(|frame mean - shade|), both in [-1, 1] units, per predicted frame. Also prints each encoder state's spatial spread on those flat frames (the
largest per-channel std over H, W: 0 with reflect padding, encoder.py), and with
`--zero_states` the shadow again with each state replaced by zeros in turn, which
shows which state carries the pattern. `--out=X.png` writes the first predicted
frames (rows: clips; columns: last conditioning frame, then the prediction with the
states as they are and with each zeroed).

  python benchmarks/fp_encoder_shadow.py --workdir=workdirs/fp_cpu_v2_s0 --zero_states \\
      --out=docs/fp_shadow_v2.png
"""

import argparse

import numpy as np
import tensorflow as tf
from PIL import Image

from dvdgan_tf import checkpoints, prediction, training


def _with_states(g, states, run):
    """run() with G's frame encoder replaced by one that returns `states`."""
    encoder = g.frame_encoder
    encoder.call = lambda frames, training=False: states  # instance attribute
    try:
        return run()
    finally:
        del encoder.call  # the class's call again


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--num_clips", type=int, default=48)
    parser.add_argument("--zero_states", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    g, config, step = checkpoints.load_ema_generator(
        args.workdir, args.checkpoint, standing_stats=0
    )
    c = config.model.conditioning_frames
    if not c:
        raise ValueError(f"{args.workdir!r} is not a DVD-GAN-FP run (C = 0)")
    clips = prediction.dataset_clips(config, args.num_clips)
    real = clips.videos  # float32 [N, C+T, H, W, 3] in [-1, 1]
    shade = real[:, :1, :1, :1, :]  # [N, 1, 1, 1, 3]: shapes never touch the corner
    flat = np.broadcast_to(shade, real[:, :c].shape).astype(np.float32)  # [N, C, ...]
    z = np.random.default_rng(0).normal(size=(len(real), config.model.z_dim))
    z = z.astype(np.float32)
    labels = clips.labels

    states = g.frame_encoder(tf.constant(flat), training=False)
    spreads = [float(tf.reduce_max(tf.math.reduce_std(s, axis=[1, 2]))) for s in states]
    print(
        f"run {args.workdir}, step {step}, encoder_padding "
        f"{config.model.get('encoder_padding', 'zeros')!r}"
    )
    print(
        "encoder states on flat frames, spatial spread: "
        + ", ".join(
            f"{s.shape[1]}x{s.shape[2]} {v:.3f}" for s, v in zip(states, spreads)
        )
    )

    def shadow(videos):  # [N, T, H, W, 3] -> pattern, shade error per frame [T]
        pattern = videos.std(axis=(2, 3)).mean(axis=(0, 2))  # spatial std
        error = np.abs(videos.mean(axis=(2, 3), keepdims=True) - shade)
        return pattern, error.mean(axis=(0, 2, 3, 4))

    variants = {"states as they are": g(z, labels, frames=flat).numpy()}
    if args.zero_states:
        for i, s in enumerate(states):
            zeroed = [tf.zeros_like(x) if j == i else x for j, x in enumerate(states)]
            name = f"{s.shape[1]}x{s.shape[2]} state zeroed"
            variants[name] = _with_states(
                g, zeroed, lambda: g(z, labels, frames=flat).numpy()
            )
    print(
        "predicted frames 1 / T / mean over T: spatial pattern (std over H, W; 0 "
        "for a flat frame) and shade error (|frame mean - shade|)"
    )
    for name, videos in variants.items():
        pattern, error = shadow(videos)
        print(
            f"{name:22s} pattern {pattern[0]:.3f} / {pattern[-1]:.3f} / "
            f"{pattern.mean():.3f}   shade error {error[0]:.3f} / {error[-1]:.3f} / "
            f"{error.mean():.3f}"
        )
    if args.out:
        cols = [flat[:8, -1:]] + [v[:8, :1] for v in variants.values()]
        frames = np.concatenate(cols, axis=1)  # [8, 1+V, H, W, 3]: one row per clip
        n, k, h, w, _ = frames.shape
        frames = frames.reshape(n * k, 1, h, w, 3)  # [8*(1+V), 1, H, W, 3]
        [image] = training.tile_videos(training.video_to_uint8(frames), cols=k)
        image = Image.fromarray(image)  # [8*H, (1+V)*W, 3]
        image.resize((image.width * 3, image.height * 3), Image.NEAREST).save(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
