"""The workdir: every name a run writes there, and reading and writing them on a local disk or
an object store (``gs://bucket/run``), through etils.epath (gcsfs on gs://, as orbax uses).

Layout of a workdir W::

    W/config.json                        the full config of the run
    W/checkpoints/<step>/                orbax (tensorstore writes gs:// itself)
    W/results/step_<step>.jsonl          one object per evaluation step (schema: writers.py)
    W/results.jsonl                      the single file of workdirs written before 0.2 (read only)
    W/tb/<member>/events.out.tfevents.*  TensorBoard, one run per member; tb/population/
    W/report/report.md, *.png            `arith-jax report`; report/analysis/<member>/*.png
    W/eval/step_<step>.jsonl             `arith-jax eval`
    W/share-<i>-of-<K>/                  a whole workdir per share of `train --shard=i/K`

Object stores have no append and no rename: an object is replaced whole by each write, and a
reader sees the old object or the new one. So nothing here is ever appended to. Every file is
written once, whole (`write_atomically`: one upload on an object store, a temporary file and a
rename on a disk), under a name no other write uses, or replaced whole by the only process
that writes it: evaluations go to one results object per step, TensorBoard events to a new
event file per flush, and a resumed run deletes the results objects of steps after its
checkpoint instead of truncating a file.
"""

from __future__ import annotations

import errno
import itertools
import os
import posixpath
import re

from etils import epath

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
RESULTS_DIR = "results"
LEGACY_RESULTS_FILE = "results.jsonl"
TENSORBOARD_DIR = "tb"
POPULATION_RUN = "population"
REPORT_DIR = "report"
ANALYSIS_DIR = "analysis"
EVAL_DIR = "eval"

_RESULTS_NAME = re.compile(r"step_(\d+)\.jsonl")
_SHARE_NAME = re.compile(r"share-(\d+)-of-(\d+)")
_temporary_ids = itertools.count()


def is_url(path: str) -> bool:
    """An object-store path (gs://, s3://, ...) rather than a local one."""
    return "://" in str(path)


def join(base: str, *names: str) -> str:
    base = str(base)
    return posixpath.join(base, *names) if is_url(base) else os.path.join(base, *names)


def absolute(path: str) -> str:
    """orbax wants absolute paths; a URL already is one."""
    return str(path) if is_url(path) else os.path.abspath(path)


def make_dirs(path: str) -> None:
    """A directory on disk; nothing on an object store, where directories are name prefixes."""
    if not is_url(path):
        os.makedirs(path, exist_ok=True)


def exists(path: str) -> bool:
    return epath.Path(path).exists()


def read_bytes(path: str) -> bytes:
    """The file's bytes; FileNotFoundError if there is none."""
    if not is_url(path):
        with open(path, "rb") as file:
            return file.read()
    target = epath.Path(path)
    if not target.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return target.read_bytes()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_atomically(path: str, data: bytes) -> None:
    """Writes `data` to `path` so that a reader sees the old or the new file, never half.

    On an object store one upload creates the object whole. On a disk the data goes to a
    temporary file beside it and is renamed over `path`; concurrent writers (two reports of
    one workdir) each rename a file of their own. The temporary name never contains the final
    name, so a TensorBoard reader polling the directory never takes it for an event file.
    """
    if is_url(path):
        epath.Path(path).write_bytes(data)
        return
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".tmp.{os.getpid()}.{next(_temporary_ids)}")
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def list_names(directory: str) -> list[str]:
    """The names in `directory`, sorted; empty if it does not exist."""
    target = epath.Path(directory)
    if not target.exists():
        return []
    return sorted(child.name for child in target.iterdir())


def remove(path: str) -> None:
    epath.Path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# Names of the workdir


def results_file(workdir: str, step: int) -> str:
    # Zero-padded so that name order is step order.
    return join(workdir, RESULTS_DIR, f"step_{int(step):09d}.jsonl")


def results_steps(workdir: str) -> list[tuple[int, str]]:
    """(step, path) of every results object of `workdir`, in step order."""
    found = []
    for name in list_names(join(workdir, RESULTS_DIR)):
        match = _RESULTS_NAME.fullmatch(name)
        if match:
            found.append((int(match.group(1)), join(workdir, RESULTS_DIR, name)))
    return sorted(found)


def share_name(index: int, count: int) -> str:
    return f"share-{index}-of-{count}"


def parse_shard(text: str, field: str = "--shard") -> tuple[int, int] | None:
    """``"i/K"`` as (i, K) with 0 <= i < K; None for the empty string (the whole grid)."""
    from arith_jax.errors import ConfigError
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ConfigError(field, f"{text!r} is not i/K with 0 <= i < K (the i-th of K shares, e.g. 0/4)")
    return int(match.group(1)), int(match.group(2))


def shares(workdir: str) -> list[str]:
    """The workdirs that `report`, `eval` and `analyze` of `workdir` cover: its
    ``share-<i>-of-<K>`` subdirectories in share order when it holds a sweep split over slices
    and no run of its own, else `workdir` itself."""
    if exists(join(workdir, CONFIG_FILE)):
        return [workdir]
    found = []
    for name in list_names(workdir):
        match = _SHARE_NAME.fullmatch(name)
        if match and exists(join(workdir, name, CONFIG_FILE)):
            found.append((int(match.group(2)), int(match.group(1)), join(workdir, name)))
    return [path for _, _, path in sorted(found)] or [workdir]


def missing_shares(paths: list[str]) -> list[str]:
    """Share names of a K-way split that `paths` lacks (a share that has not started yet)."""
    seen = {}
    for path in paths:
        match = _SHARE_NAME.fullmatch(os.path.basename(str(path).rstrip("/")))
        if match:
            seen.setdefault(int(match.group(2)), set()).add(int(match.group(1)))
    return [share_name(i, k) for k, indices in sorted(seen.items()) for i in range(k) if i not in indices]
