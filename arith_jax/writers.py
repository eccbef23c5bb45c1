"""What a training run leaves for people: TensorBoard runs, results.jsonl and console progress.

Workdir layout: ``tb/<member_name>/`` holds one TensorBoard run per member, ``tb/population/``
the population-level images and the HParams experiment, ``results.jsonl`` every evaluation.

results.jsonl schema: one JSON object per line, one line per member x eval step x length::

    {"group": "pe=learned", "member": {"p": 101, "seed": 1}, "member_name": "p=101,seed=1",
     "task": "mod_add", "n_train": 4, "step": 4000, "length": 7, "acc": 0.011,
     "digit_acc": 0.62, "equiv_acc": 0.998, "theory": 0.0099, "theory_asymptotic": 0.0099}

- ``group``: the static-shape group the member trained in (its fields that vary across
  groups, e.g. ``pe=learned``).
- ``member``: the member's full coordinates, every population field (seed, data_seed, p, lr,
  wd, train_digits, and group fields such as pe or preset when they vary).
- ``member_name``: only the fields that vary across the population; also the TensorBoard run.
- ``task``: add | mul | mod_add | mod_mul. ``n_train``: operand digits trained on.
- ``step``: training step of the evaluation. ``length``: operand digits evaluated.
- ``acc``: exact-match accuracy in [0, 1]. ``digit_acc``: share of answer digits right.
- ``equiv_acc``: share of decoded answers equal to the task applied to the operands'
  in-distribution representatives (IJCAI 2024); null when decoding was off.
- ``theory``: the ACL 2025 theorem's predicted accuracy at this length for modular tasks,
  ``theory_asymptotic``: its limit gcd(p, 10^n_train)/p; both null where undefined.

Non-finite numbers are written as null. A run killed between checkpoints may leave records
past its last checkpoint and a half-written last line; ``ResultsWriter.truncate_after`` on
resume drops both, and ``read_results`` skips a half-written last line.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich import progress as rich_progress
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.summary.writer.record_writer import RecordWriter

from arith_jax.errors import ConfigError

RESULTS_FILE = "results.jsonl"
TENSORBOARD_DIR = "tb"
POPULATION_RUN = "population"
HEATMAP_TAG = "eval/acc_heatmap"

# Seeds go last in names so that TensorBoard's alphabetical run list keeps the seeds of one
# configuration next to each other; the report averages over them.
SEED_FIELDS = ("data_seed", "seed")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=,+-]")
_event_file_ids = itertools.count()


# ---------------------------------------------------------------------------------------
# Member names


def safe_file_name(text: str) -> str:
    """`text` with every character that a path, a shell or a URL would trip on replaced."""
    return _UNSAFE_NAME_CHARS.sub("_", text)


def _format_value(value) -> str:
    value = _jsonable(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def member_names(members: Sequence[Mapping], lone_name: str = "member") -> list[str]:
    """Names from the fields that vary across `members`: ``p=101,seed=1``.

    Fields are ordered alphabetically with seeds last; a population of one (or members that
    vary in nothing) is named `lone_name`. Names are safe, unique directory names.
    """
    formatted = [{key: _format_value(value) for key, value in m.items()} for m in members]
    keys = {key for m in formatted for key in m}
    varying = sorted(
        (key for key in keys if len({m.get(key) for m in formatted}) > 1),
        key=lambda key: (key in SEED_FIELDS, key),
    )
    names = [
        safe_file_name(",".join(f"{k}={m[k]}" for k in varying if k in m)) or lone_name
        for m in formatted
    ]
    if len(set(names)) < len(names):
        # Values that differ beyond their printed precision: the position tells them apart.
        names = [f"{name},index={i}" for i, name in enumerate(names)]
    return names


# ---------------------------------------------------------------------------------------
# TensorBoard


def heatmap_png(acc_MxL, member_names: Sequence[str], lengths: Sequence[int], title: str) -> bytes:
    """A member x length accuracy heatmap (accuracy in [0, 1], NaN = not measured) as PNG."""
    acc_MxL = np.asarray(acc_MxL, dtype=np.float64)
    num_members, num_lengths = acc_MxL.shape
    figure = Figure(
        figsize=(min(2.5 + 0.6 * num_lengths, 20.0), min(1.5 + 0.28 * num_members, 30.0)),
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(
        np.ma.masked_invalid(acc_MxL), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
        interpolation="nearest",
    )
    figure.colorbar(image, ax=axes, label="exact-match accuracy")
    axes.set_xticks(range(num_lengths), [str(n) for n in lengths])
    axes.set_xlabel("operand digits")
    # Beyond a few dozen rows the labels overlap into noise; the colours still show structure.
    if num_members <= 60:
        axes.set_yticks(range(num_members), list(member_names), fontsize=8)
    axes.set_ylabel("member")
    axes.set_title(title)
    if num_members * num_lengths <= 300:
        for (m, n), acc in np.ndenumerate(acc_MxL):
            if np.isfinite(acc):
                axes.text(n, m, f"{100 * acc:.0f}", ha="center", va="center", fontsize=7,
                          color="black" if acc > 0.6 else "white")
    return png_bytes(figure)


def png_bytes(figure) -> bytes:
    """A matplotlib figure as PNG bytes (for TensorBoard images and the report's files)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _hparam_columns(hparams: Sequence[Mapping]) -> dict[str, list]:
    """Per hyperparameter, every member's value in one type TensorBoard accepts."""
    columns = {}
    for key in sorted({key for h in hparams for key in h}):
        values = [_jsonable(h.get(key)) for h in hparams]
        if all(isinstance(v, bool) for v in values):
            columns[key] = values
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            columns[key] = [float(v) for v in values]
        else:
            columns[key] = [str(v) for v in values]
    return columns


def _event(step: int, **fields) -> event_pb2.Event:
    return event_pb2.Event(step=int(step), wall_time=time.time(), **fields)


class TensorBoardWriter:
    """One TensorBoard run per member (``tb/<name>/``) plus ``tb/population/``, without TF.

    Events are buffered and appended to each run's event file by `flush()`. The event files
    are written with tensorboard's own RecordWriter, opened only while flushing: a population
    of thousands would otherwise hold thousands of open files and writer threads.

    `resume_step`: the checkpoint step this process resumed from (None for a fresh start).
    A SessionLog.START event at the first step this process writes tells TensorBoard to drop
    what an earlier process wrote from that step on, so a run killed after its last
    checkpoint leaves no duplicate or stale points. `eval_lengths` registers ``train/loss``
    and ``eval/acc/len_<n>`` as the HParams metrics.
    """

    def __init__(
        self,
        workdir: str,
        member_names: Sequence[str],
        hparams: Sequence[Mapping],
        *,
        resume_step: int | None = None,
        eval_lengths: Iterable[int] = (),
    ):
        if len(hparams) != len(member_names):
            raise ValueError(f"{len(member_names)} member names but {len(hparams)} hparams")
        logdir = os.path.join(workdir, TENSORBOARD_DIR)
        self._member_files = [self._new_event_file(os.path.join(logdir, n)) for n in member_names]
        self._population_file = self._new_event_file(os.path.join(logdir, POPULATION_RUN))
        self._pending: dict[str, list[event_pb2.Event]] = {
            path: [] for path in [*self._member_files, self._population_file]
        }

        first_step = 0 if resume_step is None else resume_step + 1
        now = time.time()
        for path in self._pending:
            self._pending[path] += [
                _event(0, file_version="brain.Event:2"),
                _event(first_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)),
            ]

        columns = _hparam_columns(hparams)
        experiment = hparams_summary.hparams_config_pb(
            hparams=[
                hparams_summary.HParam(key, hparams_summary.Discrete(sorted(set(values))))
                for key, values in columns.items()
            ],
            metrics=[
                hparams_summary.Metric(tag)
                for tag in ["train/loss", *(f"eval/acc/len_{n}" for n in eval_lengths)]
            ],
            time_created_secs=now,
        )
        self._pending[self._population_file].append(_event(0, summary=experiment))
        for m, (path, name) in enumerate(zip(self._member_files, member_names)):
            session = hparams_summary.hparams_pb(
                {key: values[m] for key, values in columns.items()},
                trial_id=name,
                start_time_secs=now,
            )
            self._pending[path].append(_event(0, summary=session))
        self.flush()

    @staticmethod
    def _new_event_file(run_dir: str) -> str:
        os.makedirs(run_dir, exist_ok=True)
        # TensorBoard reads a run's event files in name order; the zero padding keeps two
        # writers of one process within one second in creation order.
        return os.path.join(
            run_dir,
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
            f".{os.getpid()}.{next(_event_file_ids):06d}",
        )

    def scalars(self, step: int, values: Mapping[str, np.ndarray]) -> None:
        """Per-member scalars: `values` maps a tag (``train/loss``) to an array of shape [M].

        A member's non-finite value is skipped for that member only.
        """
        num_members = len(self._member_files)
        arrays = {}
        for tag, array in values.items():
            arrays[tag] = np.asarray(array, dtype=np.float64)
            if arrays[tag].shape != (num_members,):
                raise ValueError(f"{tag}: expected shape ({num_members},), got {arrays[tag].shape}")
        for m, path in enumerate(self._member_files):
            summary = summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag=tag, simple_value=array[m])
                    for tag, array in arrays.items()
                    if np.isfinite(array[m])
                ]
            )
            if summary.value:
                self._pending[path].append(_event(step, summary=summary))

    def heatmap(self, step: int, acc_MxL, member_names: Sequence[str], lengths: Sequence[int]) -> None:
        """The member x length accuracy heatmap as an image in the ``population`` run."""
        png = heatmap_png(acc_MxL, member_names, lengths, f"exact-match accuracy, step {step}")
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=4, encoded_image_string=png
        )
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=HEATMAP_TAG, image=image)])
        self._pending[self._population_file].append(_event(step, summary=summary))

    def flush(self) -> None:
        """Appends every buffered event to its run's event file."""
        for path, events in self._pending.items():
            if events:
                with open(path, "ab") as file:
                    records = RecordWriter(file)
                    for event in events:
                        records.write(event.SerializeToString())
                events.clear()

    def close(self) -> None:
        self.flush()


# ---------------------------------------------------------------------------------------
# results.jsonl


def _jsonable(value):
    """Plain JSON values from numpy scalars and arrays; non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_atomically(path: str, data: bytes) -> None:
    """Writes `data` to `path` so that a reader sees the old or the new file, never half;
    concurrent writers (two reports of one workdir) each rename a file of their own."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _complete_lines(path: str) -> list[bytes]:
    """The newline-terminated lines of `path`; a killed writer's partial tail is left out."""
    with open(path, "rb") as file:
        data = file.read()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


class ResultsWriter:
    """Appends evaluation records to ``<workdir>/results.jsonl`` (schema: module docstring)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, RESULTS_FILE)
        os.makedirs(workdir, exist_ok=True)

    def append(self, records: Iterable[Mapping]) -> None:
        """One line per record, flushed before returning."""
        text = "".join(json.dumps(_jsonable(r), allow_nan=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(text)

    def truncate_after(self, step: int) -> None:
        """On resume from a checkpoint at `step`: drops records of later steps and a
        half-written last line, which a run killed after that checkpoint left behind."""
        if os.path.exists(self.path):
            kept = [
                line
                for line in _complete_lines(self.path)
                if line.strip() and json.loads(line)["step"] <= step
            ]
            write_atomically(self.path, b"".join(kept))


def read_results(workdir: str) -> list[dict]:
    """Every record of ``<workdir>/results.jsonl``; a half-written last line is skipped.

    Raises ConfigError if any other line is not JSON (the file was edited or corrupted).
    """
    path = os.path.join(workdir, RESULTS_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: a writer stopped mid-line
                continue
            raise ConfigError(RESULTS_FILE, f"line {number} is not JSON ({error}) in {path}") from None
    return records


# ---------------------------------------------------------------------------------------
# Console progress


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m"


def _range_text(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "nan"
    text = f"{finite.min():.3g}..{finite.max():.3g}"
    if finite.size < values.size:
        text += f" ({values.size - finite.size} non-finite)"
    return text


class Progress:
    """Training progress: a rich bar on a terminal, one plain log line per update otherwise.

    `enabled=False` (e.g. on every host but the first) prints nothing at all.
    """

    def __init__(self, total_steps: int, members: int, enabled: bool = True):
        self._total_steps = total_steps
        self._enabled = enabled
        self._acc_M: np.ndarray | None = None
        self._bar: rich_progress.Progress | None = None
        if enabled and sys.stdout.isatty():
            self._bar = rich_progress.Progress(
                rich_progress.TextColumn(f"train {members} members"),
                rich_progress.BarColumn(),
                rich_progress.MofNCompleteColumn(),
                rich_progress.TextColumn("{task.fields[status]}"),
            )
            self._task = self._bar.add_task("train", total=total_steps, status="")
            self._bar.start()

    def update(self, step: int, loss_M, steps_per_sec: float, acc_M=None) -> None:
        """Shows the step, speed, ETA, the members' loss range and, from the latest
        evaluation, the best and worst member's accuracy."""
        if not self._enabled:
            return
        if acc_M is not None:
            self._acc_M = np.asarray(acc_M, dtype=np.float64)
        eta = (self._total_steps - step) / steps_per_sec if steps_per_sec > 0 else math.inf
        status = (
            f"{steps_per_sec:.1f} steps/s  eta {_format_duration(eta)}"
            f"  loss {_range_text(np.asarray(loss_M, dtype=np.float64))}"
        )
        if self._acc_M is not None and np.isfinite(self._acc_M).any():
            status += f"  acc best {np.nanmax(self._acc_M):.2f} worst {np.nanmin(self._acc_M):.2f}"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, status=status)
        else:
            print(f"step {step}/{self._total_steps}  {status}", flush=True)

    def log(self, message: str) -> None:
        """Prints `message` (above the bar on a terminal)."""
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
