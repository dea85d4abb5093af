"""A user's folder of clips as a cached TFDS dataset (issue 4, item 3).

Layout: `ROOT/<class_name>/*.{mp4,avi,gif,webm,mov,mkv}`. Class ids are the sorted
class-folder names, saved with the dataset (ClassLabel in dataset_info.json) so ids
stay stable. Clips are decoded once with imageio (ffmpeg plugin for mp4/avi/webm,
pillow for gif), resized so the short side is `resolution` (aspect kept; the input
pipeline crops), capped at `max_frames` frames from the start, and written as a
TFDS dataset ("video_folder") under the TFDS data_dir; later runs read that cache
and never decode the originals again. The cache's config name hashes the root, the
sizes and the folder listing (names, sizes, mtimes), so editing the folder rebuilds.

Bad input: an unreadable or corrupt clip is skipped, counted and listed in a logged
warning (and in `info.metadata`); a clip with fewer than `min_frames` frames is
skipped and counted the same way; the build continues. A missing or empty root, or
an empty class folder, raises an error naming the path.

  video: uint8 [L, h, w, 3] with min(h, w) = resolution, L <= max_frames;
  label: int64 in [0, len(class_names)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".gif", ".webm", ".mov", ".mkv")
DEFAULT_MAX_FRAMES = 512


@dataclasses.dataclass(frozen=True)
class FolderReport:
    """What a folder build used and skipped."""

    root: str
    class_names: tuple[str, ...]
    num_clips: int  # Clips written to the cache.
    corrupt: tuple[tuple[str, str], ...]  # (path, error) of unreadable clips.
    too_short: tuple[tuple[str, int], ...]  # (path, frames) with < min_frames.

    @property
    def num_skipped(self) -> int:
        return len(self.corrupt) + len(self.too_short)


def scan_folder(root: str) -> dict[str, list[str]]:
    """Sorted class name -> sorted clip paths; raises naming an empty path."""
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"video folder not found: {root!r}; expected {root}/<class_name>/*.mp4"
        )
    classes = sorted(
        d
        for d in os.listdir(root)
        if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
    )
    if not classes:
        raise ValueError(
            f"video folder {root!r} has no class folders; expected "
            f"{root}/<class_name>/*{{{','.join(VIDEO_EXTENSIONS)}}}"
        )
    files = {}
    for name in classes:
        d = os.path.join(root, name)
        clips = sorted(
            os.path.join(d, f)
            for f in os.listdir(d)
            if f.lower().endswith(VIDEO_EXTENSIONS)
            and os.path.isfile(os.path.join(d, f))
        )
        if not clips:
            raise ValueError(
                f"class folder {d!r} has no clips with an extension in "
                f"{VIDEO_EXTENSIONS}"
            )
        files[name] = clips
    return files


def _fingerprint(root: str, files: dict[str, list[str]], *sizes: int) -> str:
    h = hashlib.sha1(os.path.abspath(root).encode())
    h.update(repr(sizes).encode())
    for paths in files.values():
        for p in paths:
            st = os.stat(p)
            h.update(
                f"{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns};".encode()
            )
    return h.hexdigest()[:16]


def read_clip(path: str, max_frames: int = DEFAULT_MAX_FRAMES) -> np.ndarray:
    """Decodes up to `max_frames` frames of a clip: uint8 [L, H, W, 3]."""
    import imageio.v3 as iio

    frames = []
    for frame in iio.imiter(path):
        frame = np.asarray(frame)
        if frame.ndim == 2:  # Greyscale [H, W] -> [H, W, 3].
            frame = np.repeat(frame[..., None], 3, axis=-1)
        elif frame.shape[-1] == 4:  # RGBA (gif) -> RGB.
            frame = frame[..., :3]
        elif frame.shape[-1] == 1:
            frame = np.repeat(frame, 3, axis=-1)
        frames.append(frame.astype(np.uint8))
        if len(frames) >= max_frames:
            break
    if not frames:
        raise ValueError(f"no frames decoded from {path!r}")
    return np.stack(frames)  # [L, H, W, 3]


def resize_short_side(video: np.ndarray, size: int) -> np.ndarray:
    """Resizes uint8 [L, H, W, 3] so min(H, W) == size: uint8 [L, H', W', 3]."""
    _, h, w, _ = video.shape
    if min(h, w) == size:
        return video
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    return np.stack(
        [
            np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.BILINEAR))
            for f in video
        ]
    )  # [L, H', W', 3]


@dataclasses.dataclass
class VideoFolderConfig(tfds.core.BuilderConfig):
    """One cached view of one folder; build with `folder_config`."""

    root: str = ""
    class_names: tuple[str, ...] = ()
    resolution: int = 64
    min_frames: int = 1
    max_frames: int = DEFAULT_MAX_FRAMES


def folder_config(
    root: str,
    resolution: int,
    min_frames: int,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> VideoFolderConfig:
    """Scans `root` (raising on a missing/empty path) and names its cache."""
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1; received resolution={resolution}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(
            "need 1 <= min_frames <= max_frames; received "
            f"min_frames={min_frames}, max_frames={max_frames}"
        )
    root = os.path.abspath(os.path.expanduser(root))
    files = scan_folder(root)
    key = _fingerprint(root, files, resolution, min_frames, max_frames)
    return VideoFolderConfig(
        name=f"r{resolution}_f{min_frames}_{key}",
        description=f"Clips of {root}",
        root=root,
        class_names=tuple(files),
        resolution=resolution,
        min_frames=min_frames,
        max_frames=max_frames,
    )


class VideoFolder(tfds.core.GeneratorBasedBuilder):
    """`ROOT/<class_name>/*.mp4` decoded once into a TFDS dataset (split "train")."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        return self.dataset_info_from_configs(
            description=f"Video clips from the folder {c.root}.",
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(
                        (None, None, None, 3), encoding_format="jpeg"
                    ),
                    "label": tfds.features.ClassLabel(names=list(c.class_names)),
                    "path": tfds.features.Text(),
                }
            ),
            supervised_keys=("video", "label"),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        c = self.builder_config
        files = scan_folder(c.root)
        if tuple(files) != tuple(c.class_names):
            raise ValueError(
                f"class folders of {c.root!r} changed since the config was made: "
                f"{tuple(files)} != {c.class_names}"
            )
        corrupt, too_short, written = [], [], 0
        for label, paths in enumerate(files.values()):
            for path in paths:
                try:
                    video = read_clip(path, c.max_frames)
                except Exception as e:  # noqa: BLE001 -- any decoder failure skips.
                    first_line = (str(e).strip().splitlines() or [""])[0]
                    corrupt.append((path, f"{type(e).__name__}: {first_line}"[:300]))
                    continue
                if video.shape[0] < c.min_frames:
                    too_short.append((path, int(video.shape[0])))
                    continue
                written += 1
                rel = os.path.relpath(path, c.root)
                yield (
                    rel,
                    {
                        "video": resize_short_side(video, c.resolution),
                        "label": label,
                        "path": rel,
                    },
                )
        md = self.info.metadata
        md["root"] = c.root
        md["num_clips"] = written
        md["corrupt"] = [list(x) for x in corrupt]
        md["too_short"] = [list(x) for x in too_short]
        _log_skipped(c.root, c.min_frames, corrupt, too_short)
        if not written:
            raise ValueError(
                f"no usable clips in {c.root!r}: {len(corrupt)} unreadable, "
                f"{len(too_short)} shorter than {c.min_frames} frames"
            )


def _log_skipped(root, min_frames, corrupt, too_short) -> None:
    if corrupt:
        logger.warning(
            "skipped %d unreadable clip(s) in %s:\n  %s",
            len(corrupt),
            root,
            "\n  ".join(f"{p} ({err})" for p, err in corrupt),
        )
    if too_short:
        logger.warning(
            "skipped %d clip(s) shorter than %d frames in %s:\n  %s",
            len(too_short),
            min_frames,
            root,
            "\n  ".join(f"{p} ({n} frames)" for p, n in too_short),
        )


def report(builder: VideoFolder) -> FolderReport:
    """The skip report of a prepared `VideoFolder` (read back from its metadata)."""
    md = builder.info.metadata or {}
    return FolderReport(
        root=builder.builder_config.root,
        class_names=tuple(builder.builder_config.class_names),
        num_clips=int(md.get("num_clips", builder.info.splits["train"].num_examples)),
        corrupt=tuple((p, e) for p, e in md.get("corrupt", [])),
        too_short=tuple((p, int(n)) for p, n in md.get("too_short", [])),
    )


def prepare_folder(
    root: str,
    data_dir: str | None = None,
    resolution: int = 64,
    min_frames: int = 1,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> tuple[VideoFolder, FolderReport]:
    """Builds (once) and returns the cached dataset of `root` and its skip report.

    data_dir: TFDS data_dir for the cache (None or "" = TFDS default).
    """
    config = folder_config(root, resolution, min_frames, max_frames)
    builder = VideoFolder(config=config, data_dir=data_dir or None)
    if not builder.is_prepared():
        logger.info("decoding %s into %s (once)", config.root, builder.data_dir)
        builder.download_and_prepare()
        builder = VideoFolder(config=config, data_dir=data_dir or None)
    rep = report(builder)
    if rep.num_skipped:
        logger.info(
            "%s: %d clips cached, %d skipped (%d unreadable, %d too short)",
            rep.root,
            rep.num_clips,
            rep.num_skipped,
            len(rep.corrupt),
            len(rep.too_short),
        )
    return builder, rep
