"""Sampling from a trained run: truncated z, class grids, interpolations, GIF/MP4/NPY/PNG.

The library behind `python -m dvdgan_tf.sample` (and the samples `evaluation`
scores). Everything uses the EMA generator of a checkpoint (paper v2, section 4:
samples come from an exponential moving average of G's weights).

Latents. z ~ N(0, I) of `model.z_dim` entries. The truncation trick (BigGAN,
Brock et al. 2019, section 3.1; DVD-GAN's samples use threshold 0.44): every
entry with |z_i| > threshold is redrawn from N(0, 1) until |z_i| <= threshold,
i.e. each entry follows N(0, 1) truncated to [-threshold, threshold]. Smaller
thresholds trade diversity for sample quality. threshold 0 or None = no
truncation (plain N(0, I)).

Layouts (rows = classes, columns = samples; N = rows * cols videos, row-major):
  grid         column j uses the same z in every row, so rows differ only by the
               class: z [cols, z_dim], drawn once, tiled over rows.
  interpolate  per row, z moves from one endpoint z_a to another z_b along the
               columns, t = j / (cols - 1). The endpoints are shared by all rows.
               "slerp" (default, White 2016) follows the great circle between z_a
               and z_b, keeping the norm typical of a Gaussian sample; "linear" is
               (1 - t) z_a + t z_b, whose mid-points have a smaller norm than any
               sample. With truncation, linear stays inside the box |z_i| <=
               threshold (it is convex), while slerp mid-points can exceed it by a
               factor up to 1 / cos(omega / 2) (~1.4 for the near-orthogonal
               endpoints of high-dimensional z).

Outputs (`write_output`; the format is picked by the file extension):
  .gif  the grid video uint8 [T, rows*H*s, cols*W*s, 3] (pillow, looping). Pillow
        merges consecutive identical frames of a GIF (summing their durations),
        so a GIF of a video with repeated frames can hold fewer than T frames.
  .mp4  the same grid, H.264 (libx264, yuv420p) via imageio-ffmpeg. H.264 with
        yuv420p needs even sizes and ffmpeg's encoders work in 16x16 macro
        blocks, so the grid is upscaled with nearest neighbour by the smallest
        integer factor (after --scale) that makes both sides multiples of 16:
        pixels are repeated, never blended, and nothing is cropped or padded.
  .npy  uint8 [N, T, H, W, 3] in [0, 255], one video per grid cell in row-major
        order (no tiling, no scaling), with `<FILE>.labels.npy` int32 [N] next
        to it. Float [-1, 1] values: `videos / 127.5 - 1`.
  .png  one still image of the whole grid for documents: each cell is its video's
        T frames side by side (a film strip, frame 0 left), cells separated and
        framed by PNG_BORDER white pixels, so the image is uint8
        [rows*H + (rows+1)*b, cols*T*W + (cols+1)*b, 3] before --scale (which
        repeats pixels, borders included). Cells past N (a short last row) are
        black.
Every format writes a sidecar `<FILE without extension>.json`: the rows' class
ids and names, seed, truncation, checkpoint path and step, layout and sizes.

Future prediction (DVD-GAN-FP runs, model.conditioning_frames = C > 0; paper v2,
section 4.2). G continues real clips, so the rows are conditioning clips instead of
classes (layout "prediction"; `prediction.py` loads and checks the clips):
  --conditioning=FILE[,FILE2]  clips from files: .npy uint8 [N, >= C, H, W, 3] (or
               float in [-1, 1]; one clip [L, H, W, 3] also works) or a video
               (.gif, .mp4, ...: one clip) at the run's resolution. Labels: --classes
               (one for all clips or one per clip), else FILE.labels.npy beside a
               .npy, else 0 on a one-class run (BAIR); otherwise an error.
  --num_conditioning=N         N clips of the run's dataset (default 8): the first
               N of the test split in order (else the train split), with their
               labels; with --classes row i is a clip of class classes[i mod len].
Row i uses z_i of the grid rule above (seed, truncation), label = the clip's.
  .gif/.mp4/.png  one row per clip, two columns: the real clip (C + T frames;
             frames a file does not have are black) and the C conditioning frames
             followed by the T predicted ones, so both columns show the same first C
             frames (.png: each column a film strip of its C + T frames).
  .npy       the predicted frames uint8 [N, T, H, W, 3] (row order), labels in
             `FILE.labels.npy`, the conditioning frames uint8 [N, C, H, W, 3] in
             `FILE.conditioning.npy`.
The sidecar's rows name each clip's label, class name and origin ("test split,
clip 17" or "FILE[3]"). --interpolate and --num_per_class do not apply.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from dvdgan_tf.training import tile_videos, video_to_uint8

VALID_EXTENSIONS = (".gif", ".mp4", ".npy", ".png")
INTERPOLATIONS = ("slerp", "linear")
DEFAULT_MAX_ROWS = 12  # Default --classes: the first min(K, 12) classes.
DEFAULT_NUM_CONDITIONING = 8  # DVD-GAN-FP: clips from the dataset by default.
MACRO_BLOCK = 16  # Video frame sides are made multiples of this (see docstring).
PNG_BORDER = 2  # White pixels between and around the film strips of a .png sheet.
_MAX_RESAMPLE_ROUNDS = 100_000


# ---------------------------------------------------------------- validation


def check_output_path(out: str) -> str:
    """The lower-case extension of `out`; ValueError listing the valid ones."""
    if not out:
        raise ValueError(
            f"an output path is needed (--out=FILE with extension one of "
            f"{', '.join(VALID_EXTENSIONS)})"
        )
    ext = os.path.splitext(out)[1].lower()
    if ext not in VALID_EXTENSIONS:
        raise ValueError(
            f"unsupported output extension {ext or '(none)'!r} in out={out!r}; "
            f"valid extensions: {', '.join(VALID_EXTENSIONS)}"
        )
    return ext


def check_truncation(threshold) -> float | None:
    """None for no truncation (None or 0), else the threshold as a float > 0."""
    if threshold is None:
        return None
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(
            f"truncation must be a number >= 0 (0 = none); received {threshold!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            "truncation must be a finite number >= 0 (0 = no truncation, e.g. 0.5); "
            f"received truncation={threshold!r}"
        )
    return value or None


def _describe_classes(class_names: Sequence[str] | None, num_classes: int) -> str:
    text = f"valid class ids are 0..{num_classes - 1}"
    if class_names:
        shown = ", ".join(class_names[:30])
        more = f", ... ({len(class_names)} in total)" if len(class_names) > 30 else ""
        text += f"; valid names: {shown}{more}"
    return text


def parse_classes(
    spec: str | Sequence[str] | None,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> list[int]:
    """Class ids from ids and/or names ("0,3,7", "circle_left,2" or a list of them).

    Empty or None: the first min(num_classes, DEFAULT_MAX_ROWS) classes. Raises
    ValueError quoting an unknown id or name and listing the valid ones.
    """
    if spec is None:
        items = []
    elif isinstance(spec, str):
        items = spec.split(",")
    else:
        items = [str(s) for s in spec]
    items = [s.strip() for s in items if s.strip()]
    if not items:
        return list(range(min(num_classes, DEFAULT_MAX_ROWS)))
    names = list(class_names or [])
    ids = []
    for item in items:
        if item.lstrip("-").isdigit():
            k = int(item)
            if not 0 <= k < num_classes:
                raise ValueError(
                    f"unknown class id {item!r}; "
                    f"{_describe_classes(names, num_classes)}"
                )
        elif item in names:
            k = names.index(item)
        else:
            raise ValueError(
                f"unknown class name {item!r}; {_describe_classes(names, num_classes)}"
            )
        ids.append(k)
    return ids


# ---------------------------------------------------------------- latents


def truncated_normal(
    shape: Sequence[int], threshold: float | None, rng: np.random.Generator
) -> np.ndarray:
    """float32 z of `shape`: N(0, 1) entries, those with |z| > threshold redrawn.

    threshold None or 0: plain N(0, 1). Redrawing until |z_i| <= threshold gives
    each entry the N(0, 1) distribution truncated to [-threshold, threshold]
    (BigGAN's truncation trick).
    """
    threshold = check_truncation(threshold)
    z = rng.standard_normal(shape)
    if threshold is None:
        return z.astype(np.float32)
    for _ in range(_MAX_RESAMPLE_ROUNDS):
        bad = np.abs(z) > threshold
        num_bad = int(bad.sum())
        if not num_bad:
            return z.astype(np.float32)
        z[bad] = rng.standard_normal(num_bad)
    raise RuntimeError(
        f"truncation={threshold} is too small: entries still outside "
        f"[-{threshold}, {threshold}] after {_MAX_RESAMPLE_ROUNDS} redraws"
    )


def slerp(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation: z_a, z_b [D], t [S] in [0, 1] -> [S, D].

    Falls back to linear interpolation when z_a and z_b are (anti)parallel.
    """
    z_a, z_b = np.asarray(z_a, np.float64), np.asarray(z_b, np.float64)
    t = np.asarray(t, np.float64)[:, None]  # [S, 1]
    cos = np.dot(z_a, z_b) / max(np.linalg.norm(z_a) * np.linalg.norm(z_b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1.0 - t) * z_a + t * z_b
    return (np.sin((1.0 - t) * omega) * z_a + np.sin(t * omega) * z_b) / np.sin(omega)


def grid_latents(
    classes: Sequence[int],
    num_per_class: int,
    z_dim: int,
    truncation: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Latents of a class grid: z float32 [R*C, z_dim], labels int32 [R*C].

    R = len(classes) rows, C = num_per_class columns, row-major; column j has the
    same z in every row.
    """
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be >= 1; received {num_per_class}")
    rng = np.random.default_rng(seed)
    z = truncated_normal((num_per_class, z_dim), truncation, rng)  # [C, z_dim]
    rows = len(classes)
    z = np.tile(z, (rows, 1))  # [R*C, z_dim]: the columns repeated for each row
    labels = np.repeat(np.asarray(classes, np.int32), num_per_class)  # [R*C]
    return z, labels


def interpolation_latents(
    classes: Sequence[int],
    num_steps: int,
    z_dim: int,
    truncation: float | None = None,
    seed: int = 0,
    method: str = "slerp",
) -> tuple[np.ndarray, np.ndarray]:
    """Latents of an interpolation grid: z float32 [R*S, z_dim], labels int32 [R*S].

    Each of the R rows goes from z_a (column 0) to z_b (column S-1); z_a and z_b
    are drawn once (with truncation) and shared by all rows.
    """
    if num_steps < 2:
        raise ValueError(
            f"interpolation needs num_per_class >= 2 steps; received {num_steps}"
        )
    if method not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {method!r}; expected one of {INTERPOLATIONS}"
        )
    rng = np.random.default_rng(seed)
    z_a, z_b = truncated_normal((2, z_dim), truncation, rng)  # [z_dim] each
    t = np.linspace(0.0, 1.0, num_steps)  # [S]
    if method == "slerp":
        path = slerp(z_a, z_b, t)  # [S, z_dim]
    else:
        path = (1.0 - t)[:, None] * z_a + t[:, None] * z_b  # [S, z_dim]
    z = np.tile(path, (len(classes), 1)).astype(np.float32)  # [R*S, z_dim]
    labels = np.repeat(np.asarray(classes, np.int32), num_steps)  # [R*S]
    return z, labels


# ---------------------------------------------------------------- generation


def generate(generator, z, labels, batch_size: int = 16, frames=None) -> np.ndarray:
    """EMA generator samples: float32 [N, T, H, W, 3] in [-1, 1].

    z: float32 [N, z_dim]; labels: int32 [N]; frames: DVD-GAN-FP's conditioning
    frames float32 [N, C, H, W, 3] in [-1, 1] (None for plain generation). Batches
    of `batch_size` (BN is in inference mode, so the batching does not change the
    samples).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received {batch_size}")
    z = np.asarray(z, np.float32)
    labels = np.asarray(labels, np.int32)
    if frames is not None:
        frames = np.asarray(frames, np.float32)
    out = []
    for i in range(0, z.shape[0], batch_size):
        kwargs = {}
        if frames is not None:  # Only then: plain generators need not take frames.
            kwargs["frames"] = tf.constant(frames[i : i + batch_size])
        video = generator(
            tf.constant(z[i : i + batch_size]),
            tf.constant(labels[i : i + batch_size]),
            training=False,
            **kwargs,
        )
        out.append(np.asarray(video, np.float32))
    return np.concatenate(out, axis=0)


# ---------------------------------------------------------------- writing


def upscale_nearest(video: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [T, H, W, C] -> [T, factor*H, factor*W, C], pixels repeated."""
    if factor == 1:
        return video
    return np.repeat(np.repeat(video, factor, axis=1), factor, axis=2)


def codec_scale(height: int, width: int, multiple: int = MACRO_BLOCK) -> int:
    """The smallest integer k >= 1 with k*height and k*width multiples of `multiple`."""
    k_h = multiple // math.gcd(height, multiple)
    k_w = multiple // math.gcd(width, multiple)
    return k_h * k_w // math.gcd(k_h, k_w)


def filmstrip_sheet(
    videos: np.ndarray, cols: int, border: int = PNG_BORDER
) -> np.ndarray:
    """uint8 [N, T, H, W, 3] -> one still image of film strips (the .png format).

    Cell (i, j) of the rows x cols grid (row-major, as `tile_videos`) holds video
    i*cols + j as its T frames side by side; `border` white pixels separate the
    cells and frame the sheet. Returns uint8
    [rows*H + (rows+1)*border, cols*T*W + (cols+1)*border, 3].
    """
    if cols < 1 or border < 0:
        raise ValueError(
            f"need cols >= 1 and border >= 0; received cols={cols}, border={border}"
        )
    n, t, h, w, c = videos.shape
    rows = math.ceil(n / cols)
    strips = videos.transpose(0, 2, 1, 3, 4).reshape(n, h, t * w, c)  # [N, H, T*W, C]
    sheet = np.full(
        [rows * h + (rows + 1) * border, cols * t * w + (cols + 1) * border, c],
        255,
        np.uint8,
    )
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        top = border + i * (h + border)
        left = border + j * (t * w + border)
        cell = sheet[top : top + h, left : left + t * w]
        cell[...] = strips[k] if k < n else 0
    return sheet


def sidecar_path(out: str) -> str:
    """`FILE.gif` -> `FILE.json`."""
    return os.path.splitext(out)[0] + ".json"


def labels_path(out: str) -> str:
    """`FILE.npy` -> `FILE.labels.npy`."""
    return os.path.splitext(out)[0] + ".labels.npy"


def write_output(
    out: str,
    videos: np.ndarray,
    labels: np.ndarray,
    cols: int,
    fps: float = 8.0,
    scale: int = 1,
) -> tuple[int, int]:
    """Writes videos float32 [N, T, H, W, 3] in [-1, 1] to `out` (.gif/.mp4/.npy/.png).

    Returns the written frame size (height, width): the grid's for .gif/.mp4, one
    video's for .npy, the still image's for .png.
    """
    ext = check_output_path(out)
    if fps <= 0:
        raise ValueError(f"fps must be > 0; received fps={fps}")
    if scale < 1:
        raise ValueError(f"scale must be an integer >= 1; received scale={scale}")
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    frames = video_to_uint8(videos)  # [N, T, H, W, 3] uint8
    if ext == ".npy":
        np.save(out, frames)
        np.save(labels_path(out), np.asarray(labels, np.int32))
        return frames.shape[2], frames.shape[3]
    if ext == ".png":
        import imageio.v3 as iio

        sheet = filmstrip_sheet(frames, cols)  # [rows*H + .., cols*T*W + .., 3]
        sheet = upscale_nearest(sheet[None], scale)[0]
        iio.imwrite(out, sheet)
        return sheet.shape[0], sheet.shape[1]
    grid = tile_videos(frames, cols=cols)  # [T, rows*H, cols*W, 3]
    grid = upscale_nearest(grid, scale)
    if ext == ".gif":
        import imageio.v3 as iio

        # GIF delays are in hundredths of a second; pillow takes ms.
        iio.imwrite(out, grid, duration=1000.0 / fps, loop=0)
    else:  # .mp4
        import imageio.v2 as imageio

        grid = upscale_nearest(grid, codec_scale(grid.shape[1], grid.shape[2]))
        writer = imageio.get_writer(
            out,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=MACRO_BLOCK,  # Sizes are multiples already: no resize.
            quality=8,
        )
        try:
            for frame in grid:
                writer.append_data(frame)
        finally:
            writer.close()
    return grid.shape[1], grid.shape[2]


# ---------------------------------------------------------------- the command


def sample_workdir(
    workdir: str,
    out: str,
    checkpoint: str | None = None,
    classes: str | Sequence[str] | None = None,
    num_per_class: int = 4,
    truncation: float | None = None,
    seed: int = 0,
    interpolate: bool = False,
    interpolation: str = "slerp",
    fps: float = 8.0,
    scale: int = 1,
    batch_size: int = 16,
    conditioning: str | Sequence[str] | None = None,
    num_conditioning: int | None = None,
) -> dict:
    """Samples the EMA generator of a run and writes `out` plus its sidecar JSON.

    See the module docstring for layouts and formats. Arguments are checked before
    the generator is loaded. Returns the sidecar's content (a dict).

    DVD-GAN-FP runs (model.conditioning_frames > 0) predict instead (see
    "Future prediction" in the module docstring): `conditioning` names files of
    conditioning clips, else `num_conditioning` clips (default
    DEFAULT_NUM_CONDITIONING) come from the run's dataset; `num_per_class` does not
    apply. Both are errors for other runs.
    """
    from dvdgan_tf import checkpoints

    check_output_path(out)
    threshold = check_truncation(truncation)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}"
        )
    min_cols = 2 if interpolate else 1
    if num_per_class < min_cols:
        raise ValueError(
            f"num_per_class must be >= {min_cols}"
            f"{' with --interpolate' if interpolate else ''}; received "
            f"num_per_class={num_per_class}"
        )
    config = checkpoints.load_workdir_config(workdir)
    path = checkpoints.resolve_checkpoint(workdir, checkpoint)
    names = checkpoints.load_class_names(workdir)
    num_classes = config.model.num_classes
    if config.model.get("conditioning_frames", 0):
        if interpolate:
            raise ValueError(
                "--interpolate is for generation runs; this DVD-GAN-FP run "
                f"(model.conditioning_frames={config.model.conditioning_frames}) "
                "predicts from conditioning clips"
            )
        return _sample_prediction(
            workdir, out, path, config, names, classes, threshold, seed, fps, scale,
            batch_size, conditioning, num_conditioning,
        )  # fmt: skip
    if conditioning or num_conditioning is not None:
        flag = "--conditioning" if conditioning else "--num_conditioning"
        raise ValueError(
            f"{flag} is only for DVD-GAN-FP runs (model.conditioning_frames > 0); "
            f"the run in {workdir!r} has model.conditioning_frames=0 and generates "
            "videos from noise and a class (use --classes / --num_per_class)"
        )
    ids = parse_classes(classes, num_classes, names)

    generator, config, step = checkpoints.load_ema_generator(workdir, path)
    z_dim = config.model.z_dim
    if interpolate:
        z, labels = interpolation_latents(
            ids, num_per_class, z_dim, threshold, seed, interpolation
        )
    else:
        z, labels = grid_latents(ids, num_per_class, z_dim, threshold, seed)
    videos = generate(generator, z, labels, batch_size)  # [R*C, T, H, W, 3]
    height, width = write_output(out, videos, labels, num_per_class, fps, scale)

    def name_of(k: int) -> str | None:
        return names[k] if names and k < len(names) else None

    meta = {
        "out": os.path.abspath(out),
        "format": os.path.splitext(out)[1].lower().lstrip("."),
        "layout": "interpolate" if interpolate else "grid",
        "interpolation": interpolation if interpolate else None,
        "rows": [{"row": i, "label": k, "name": name_of(k)} for i, k in enumerate(ids)],
        "num_per_class": num_per_class,
        "seed": seed,
        "truncation": threshold,
        "checkpoint": path,
        "step": step,
        "workdir": os.path.abspath(workdir),
        "video_shape": list(videos.shape[1:]),  # [T, H, W, 3] of one sample
        "frame_size": [height, width],
        "fps": fps,
    }
    if meta["format"] == "npy":
        meta["labels_file"] = os.path.abspath(labels_path(out))
    with open(sidecar_path(out), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta


def _classes_given(spec) -> bool:
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    return any(str(s).strip() for s in items)


def conditioning_path(out: str) -> str:
    """`FILE.npy` -> `FILE.conditioning.npy` (DVD-GAN-FP inputs)."""
    return os.path.splitext(out)[0] + ".conditioning.npy"


def _sample_prediction(
    workdir, out, path, config, names, classes, threshold, seed, fps, scale,
    batch_size, conditioning, num_conditioning,
) -> dict:  # fmt: skip
    """`sample_workdir` for a DVD-GAN-FP run (module docstring, "Future prediction")."""
    from dvdgan_tf import checkpoints, prediction

    m = config.model
    c, t, r = m.conditioning_frames, m.num_frames, m.resolution
    ids = (
        parse_classes(classes, m.num_classes, names)
        if _classes_given(classes)
        else None
    )
    if conditioning:
        if num_conditioning is not None:
            raise ValueError(
                "pass --conditioning (clips from files) or --num_conditioning (clips "
                "from the run's dataset), not both"
            )
        clips, real_frames, sources = prediction.load_conditioning(
            conditioning, c, t, r
        )  # [N, C+T, R, R, 3], [N], [N]
        labels = prediction.file_labels(conditioning, len(clips), ids, m.num_classes)
        origin = "file"
    else:
        num = DEFAULT_NUM_CONDITIONING if num_conditioning is None else num_conditioning
        if num < 1:
            raise ValueError(f"num_conditioning must be >= 1; received {num}")
        got = prediction.dataset_clips(config, num, batch_size, classes=ids)
        clips, labels = got.videos, got.labels  # [N, C+T, R, R, 3], [N]
        real_frames = np.full([len(clips)], c + t, np.int32)
        sources = [f"{got.split} split, clip {i}" for i in got.indices]
        origin = "dataset"

    generator, config, step = checkpoints.load_ema_generator(workdir, path)
    n = len(clips)
    z = truncated_normal((n, m.z_dim), threshold, np.random.default_rng(seed))
    frames = clips[:, :c]  # [N, C, R, R, 3]: what G sees
    predicted = prediction.predict(generator, frames, labels, z, batch_size)
    ext = check_output_path(out)
    if ext == ".npy":  # G's T frames only; the inputs beside them.
        height, width = write_output(out, predicted, labels, 1, fps, scale)
        np.save(conditioning_path(out), video_to_uint8(frames))
    else:
        full = np.concatenate([frames, predicted], axis=1)  # [N, C+T, R, R, 3]
        grid = prediction.side_by_side(clips, full)  # [2N, C+T, R, R, 3]
        height, width = write_output(out, grid, np.repeat(labels, 2), 2, fps, scale)

    def name_of(k: int) -> str | None:
        return names[k] if names and k < len(names) else None

    meta = {
        "out": os.path.abspath(out),
        "format": ext.lstrip("."),
        "layout": "prediction",
        "meaning": (
            f"G (DVD-GAN-FP) predicts {t} frames from the first {c} frames of each "
            "real clip. .gif/.mp4/.png: one row per clip; left the real clip "
            f"({c + t} frames; frames its file lacks are black), right its {c} "
            f"conditioning frames followed by the {t} predicted ones. .npy: the "
            f"predicted frames uint8 [N, {t}, H, W, 3] (row order), labels in "
            "FILE.labels.npy, the conditioning frames in FILE.conditioning.npy."
        ),
        "conditioning": origin,
        "rows": [
            {
                "row": i,
                "label": int(k),
                "name": name_of(int(k)),
                "clip": sources[i],
                "real_frames": int(real_frames[i]),
            }
            for i, k in enumerate(labels)
        ],
        "conditioning_frames": c,
        "predicted_frames": t,
        "seed": seed,
        "truncation": threshold,
        "checkpoint": path,
        "step": step,
        "workdir": os.path.abspath(workdir),
        "video_shape": list(predicted.shape[1:] if ext == ".npy" else clips.shape[1:]),
        "frame_size": [height, width],
        "fps": fps,
    }
    if ext == ".npy":
        meta["labels_file"] = os.path.abspath(labels_path(out))
        meta["conditioning_file"] = os.path.abspath(conditioning_path(out))
    with open(sidecar_path(out), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return meta


def legend(meta: dict) -> str:
    """Human-readable legend of a `sample_workdir` result."""
    trunc = meta["truncation"] or "none"
    if meta["layout"] == "prediction":
        c, t = meta["conditioning_frames"], meta["predicted_frames"]
        lines = [
            f"{meta['out']}: {len(meta['rows'])} conditioning clips ({c} frames in, "
            f"{t} predicted), step {meta['step']}, seed {meta['seed']}, truncation "
            f"{trunc}",
        ]
        if meta["format"] != "npy":
            lines.append("  each row: real clip | conditioning + predicted frames")
        for row in meta["rows"]:
            name = f" {row['name']}" if row["name"] else ""
            lines.append(
                f"  row {row['row']}: class {row['label']}{name} ({row['clip']})"
            )
        lines.append(f"sidecar: {sidecar_path(meta['out'])}")
        return "\n".join(lines)
    lines = [
        f"{meta['out']}: {len(meta['rows'])} rows x {meta['num_per_class']} columns "
        f"({meta['layout']}"
        + (f", {meta['interpolation']}" if meta["interpolation"] else "")
        + f"), step {meta['step']}, seed {meta['seed']}, truncation {trunc}",
    ]
    for row in meta["rows"]:
        name = f" {row['name']}" if row["name"] else ""
        lines.append(f"  row {row['row']}: class {row['label']}{name}")
    lines.append(f"sidecar: {sidecar_path(meta['out'])}")
    return "\n".join(lines)
