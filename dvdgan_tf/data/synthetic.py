"""Synthetic actions: the built-in, offline video dataset (issue 4, item 1).

Each clip shows one anti-aliased shape moving over a flat grey background. A class
is a (shape, motion) pair; within a class the colour, size, start position, speed
(or growth / rotation amount) and background shade are random. Several classes share
a shape and differ only in motion (square_left / square_right / square_grow /
square_rotate), and several share a motion and differ only in shape (square_left /
circle_left / triangle_left), so a single frame cannot tell every class apart: a
conditional GAN must get both appearance (D_S) and motion (D_T) right.

Motion amounts are fractions of the frame and of the clip, so motion is equally
visible at 32x32 x 8 frames (the CPU config) and at 64x64 x 16 frames. Shapes are
drawn from signed distance functions evaluated for a whole batch of clips at once
(vectorised numpy), so rendering runs at thousands of clips/s at 32x32x8.

Clip `i` of a seed is drawn from its own generator `default_rng([seed, stream, i])`,
so any clip can be rendered alone, in any order, and `make_clips` is deterministic.

  clips: uint8 [N, T, H, W, 3] in [0, 255]; labels: int32 [N] in [0, NUM_CLASSES).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHAPES = ("square", "circle", "triangle")
MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "rotate")

# Label id = position in this tuple; never reorder (saved datasets and checkpoints
# depend on it). Rotation only for shapes where it is visible (not the circle).
CLASS_NAMES: tuple[str, ...] = (
    "square_left",
    "square_right",
    "square_grow",
    "square_rotate",
    "circle_left",
    "circle_right",
    "circle_up",
    "circle_shrink",
    "triangle_left",
    "triangle_up",
    "triangle_grow",
    "triangle_rotate",
)
NUM_CLASSES = len(CLASS_NAMES)

_CLASS_SHAPE = np.array([SHAPES.index(n.split("_")[0]) for n in CLASS_NAMES])
_CLASS_MOTION = np.array([MOTIONS.index(n.split("_")[1]) for n in CLASS_NAMES])

# Number of U(0, 1) draws that fully describe one clip (see `_clip_params`).
_NUM_UNIFORMS = 9
# Elements of one float32 [n, T, H, W] work array; bounds memory per render chunk.
_CHUNK_ELEMENTS = 1 << 22
# Extent of any shape from its centre, in units of its size h (rotated square).
_EXTENT = 1.42


def shape_of(label: int) -> str:
    """The shape name of class `label`, e.g. "square"."""
    return SHAPES[_CLASS_SHAPE[label]]


def motion_of(label: int) -> str:
    """The motion name of class `label`, e.g. "left"."""
    return MOTIONS[_CLASS_MOTION[label]]


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs [N] in [0, 1], output float32 [N, 3]."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ],
        axis=1,
    )  # [N, 6, 3]
    return table[np.arange(len(h)), i].astype(np.float32)  # [N, 3]


def _clip_params(
    u: np.ndarray, labels: np.ndarray, num_frames: int, resolution: int
) -> dict[str, np.ndarray]:
    """Maps uniforms [N, 9] and labels [N] to per-frame shape parameters.

    Returns cx, cy, size, angle: float32 [N, T] in pixels / radians; shape: [N];
    colour: [N, 3] and background: [N] in [0, 1].
    """
    t, r = num_frames, float(resolution)
    shape = _CLASS_SHAPE[labels]
    motion = _CLASS_MOTION[labels]
    frac = np.arange(t, dtype=np.float32) / max(t - 1, 1)  # [T] in [0, 1]

    colour = _hsv_to_rgb(u[:, 0], 0.6 + 0.4 * u[:, 1], 0.75 + 0.25 * u[:, 2])
    background = (0.4 * u[:, 3]).astype(np.float32)  # Dark-to-mid grey: contrast.

    translate = motion <= MOTIONS.index("down")
    scale = (motion == MOTIONS.index("grow")) | (motion == MOTIONS.index("shrink"))
    rotate = motion == MOTIONS.index("rotate")

    # Size h (circle radius, half the square's side) as a fraction of the frame.
    h0 = np.where(translate, 0.10 + 0.06 * u[:, 4], 0.14 + 0.06 * u[:, 4])
    h0 = np.where(scale, 0.08 + 0.03 * u[:, 4], h0)
    growth = 1.8 + 0.6 * u[:, 5]  # Size ratio end/start for grow (start/end: shrink).
    size = np.repeat(h0[:, None], t, axis=1)  # [N, T]
    grow_curve = h0[:, None] * growth[:, None] ** frac[None, :]  # [N, T]
    size = np.where((motion == MOTIONS.index("grow"))[:, None], grow_curve, size)
    size = np.where(
        (motion == MOTIONS.index("shrink"))[:, None], grow_curve[:, ::-1], size
    )
    h_max = size.max(axis=1)  # [N]

    # Translation: total displacement 0.30-0.50 of the frame over the clip.
    disp = np.where(translate, 0.30 + 0.20 * u[:, 5], 0.0)
    e = _EXTENT * h_max + 1.0 / r  # Keep the whole shape (+1 px) inside the frame.
    # Start position uniform over the range that keeps the shape inside.
    dx = np.select(
        [motion == MOTIONS.index("left"), motion == MOTIONS.index("right")],
        [-disp, disp],
        0.0,
    )
    dy = np.select(
        [motion == MOTIONS.index("up"), motion == MOTIONS.index("down")],
        [-disp, disp],
        0.0,
    )
    lo_x, hi_x = e - np.minimum(dx, 0), 1 - e - np.maximum(dx, 0)
    lo_y, hi_y = e - np.minimum(dy, 0), 1 - e - np.maximum(dy, 0)
    x0 = lo_x + (hi_x - lo_x) * u[:, 6]
    y0 = lo_y + (hi_y - lo_y) * u[:, 7]
    cx = x0[:, None] + dx[:, None] * frac[None, :]  # [N, T]
    cy = y0[:, None] + dy[:, None] * frac[None, :]  # [N, T]

    # Rotation: less than the shape's symmetry period (90 / 120 degrees), so the
    # last frame never looks like the first; direction random.
    period = np.where(shape == SHAPES.index("square"), np.pi / 2, 2 * np.pi / 3)
    total = np.where(rotate, (0.55 + 0.3 * u[:, 5]) * period, 0.0)
    total = np.where(u[:, 8] < 0.5, -total, total)
    angle = total[:, None] * frac[None, :]  # [N, T]

    return {
        "cx": (cx * r).astype(np.float32),
        "cy": (cy * r).astype(np.float32),
        "size": (size * r).astype(np.float32),
        "angle": angle.astype(np.float32),
        "shape": shape,
        "colour": colour,
        "background": background,
    }


def _coverage(p: dict[str, np.ndarray], resolution: int) -> np.ndarray:
    """Anti-aliased shape coverage float32 [N, T, H, W] in [0, 1]."""
    grid = np.arange(resolution, dtype=np.float32) + 0.5  # Pixel centres.
    px = grid[None, None, None, :] - p["cx"][:, :, None, None]  # [N, T, 1, W]
    py = grid[None, None, :, None] - p["cy"][:, :, None, None]  # [N, T, H, 1]
    cos = np.cos(p["angle"])[:, :, None, None]  # [N, T, 1, 1]
    sin = np.sin(p["angle"])[:, :, None, None]
    u = px * cos + py * sin  # [N, T, H, W]: shape-local coordinates
    v = py * cos - px * sin
    h = p["size"][:, :, None, None]  # [N, T, 1, 1]

    sdf = np.empty(u.shape, np.float32)  # Signed distance in pixels, < 0 inside.
    for s, name in enumerate(SHAPES):
        m = p["shape"] == s
        if not m.any():
            continue
        us, vs, hs = u[m], v[m], h[m]
        if name == "square":
            d = np.maximum(np.abs(us), np.abs(vs)) - 0.9 * hs  # Area ~ the circle's.
        elif name == "circle":
            d = np.sqrt(us * us + vs * vs) - hs
        else:
            # Equilateral triangle, vertex up, circumradius 1.25 h: the max over the
            # three edges' outward normals, minus the inradius (half circumradius).
            c = 0.8660254
            d = np.maximum(vs, np.maximum(c * us - 0.5 * vs, -c * us - 0.5 * vs))
            d = d - 0.625 * hs
        sdf[m] = d
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _render(
    u: np.ndarray, labels: np.ndarray, num_frames: int, resolution: int
) -> np.ndarray:
    """Renders clips from uniforms [N, 9] and labels [N]: uint8 [N, T, H, W, 3]."""
    n, t, r = len(labels), num_frames, resolution
    out = np.empty((n, t, r, r, 3), np.uint8)
    chunk = max(1, _CHUNK_ELEMENTS // (t * r * r))
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        p = _clip_params(u[sl], labels[sl], t, r)
        alpha = _coverage(p, r)[..., None]  # [n, T, H, W, 1]
        bg = p["background"][:, None, None, None, None]  # [n, 1, 1, 1, 1]
        fg = p["colour"][:, None, None, None, :]  # [n, 1, 1, 1, 3]
        frames = bg + alpha * (fg - bg)  # [n, T, H, W, 3] in [0, 1]
        out[sl] = (frames * 255.0 + 0.5).astype(np.uint8)
    return out


def _check_args(num_frames: int, resolution: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1; received num_frames={num_frames}")
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8; received resolution={resolution}")


def _check_labels(labels: np.ndarray) -> None:
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise ValueError(
            f"labels must be in [0, {NUM_CLASSES}); received label={int(bad[0])}"
        )


def render_clip(
    rng: np.random.Generator, label: int, num_frames: int, resolution: int
) -> np.ndarray:
    """Renders one clip of class `label`: uint8 [T, H, W, 3] with T = num_frames."""
    _check_args(num_frames, resolution)
    labels = np.array([label], np.int64)
    _check_labels(labels)
    u = rng.random((1, _NUM_UNIFORMS))
    return _render(u, labels, num_frames, resolution)[0]


def balanced_labels(indices: np.ndarray) -> np.ndarray:
    """The label of clip `i` in a balanced set: i mod NUM_CLASSES, int32 [N]."""
    return (np.asarray(indices) % NUM_CLASSES).astype(np.int32)


def render_indexed(
    indices: Sequence[int] | np.ndarray,
    num_frames: int,
    resolution: int,
    seed: int = 0,
    stream: int = 0,
    labels: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Renders clips `indices` of the set (seed, stream), in any order.

    Clip i depends only on (seed, stream, i, label), so an input pipeline can shuffle
    and shard indices and render each batch on the fly. `stream` separates splits
    (0 = train, 1 = test). Returns uint8 [N, T, H, W, 3] and int32 labels [N]
    (balanced, `balanced_labels(indices)`, when `labels` is None).
    """
    _check_args(num_frames, resolution)
    indices = np.asarray(indices, np.int64).reshape(-1)
    if labels is None:
        labels = balanced_labels(indices)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if labels.shape != indices.shape:
        raise ValueError(
            f"labels must have one entry per clip; received {labels.shape[0]} "
            f"labels for {indices.shape[0]} clips"
        )
    _check_labels(labels)
    u = np.empty((len(indices), _NUM_UNIFORMS))
    for k, i in enumerate(indices):
        u[k] = np.random.default_rng([seed, stream, int(i)]).random(_NUM_UNIFORMS)
    return _render(u, labels, num_frames, resolution), labels.astype(np.int32)


def make_clips(
    num: int,
    num_frames: int = 16,
    resolution: int = 64,
    seed: int = 0,
    labels: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first `num` clips of the set `seed`: uint8 [N, T, H, W, 3], int32 [N].

    Deterministic for a seed. Labels cycle through the classes (balanced) unless
    given; clip i is the same whatever `num` is.
    """
    if num < 0:
        raise ValueError(f"num must be >= 0; received num={num}")
    return render_indexed(np.arange(num), num_frames, resolution, seed, 0, labels)
