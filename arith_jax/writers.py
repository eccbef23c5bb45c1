"""What a training run leaves for people: TensorBoard runs, results and console progress.

Where each goes in the workdir is `arith_jax/workdir.py`'s: ``tb/<member_name>/`` holds one
TensorBoard run per member, ``tb/population/`` the population-level images and the HParams
experiment, ``results/step_<step>.jsonl`` each evaluation. Nothing is appended to (object
stores cannot): each results object and each event file is written once, whole.

Results schema: one JSON object per line, one line per member x eval step x length::

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

Non-finite numbers are written as null. A run killed between checkpoints may leave results
of steps past its last checkpoint; ``ResultsWriter.truncate_after`` on resume deletes them.
``read_results`` also reads the single ``results.jsonl`` of older workdirs, skipping a
half-written last line there.
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

from arith_jax import workdir as workdir_lib
from arith_jax.errors import ConfigError

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
    # Wide enough for the member names beside the cells and the title above them.
    longest_label = max([len(name) for name in member_names] + [len(title) // 2], default=0)
    figure = Figure(
        figsize=(min(2.5 + 0.6 * num_lengths + 0.06 * longest_label, 30.0), min(1.5 + 0.28 * num_members, 30.0)),
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
    figure.suptitle(title)
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

    Events are buffered; `flush()` writes each run's buffered events as a new event file,
    whole, with tensorboard's own RecordWriter (object stores cannot append, and a disk gets
    the same files). TensorBoard reads a run's event files in name order, and the names sort
    in writing order. To keep the file count small, `flush()` writes only when `flush_secs`
    have passed since the last write; `flush(force=True)` (at each checkpoint and at the end)
    writes at once, so a run killed after a checkpoint lost no point up to it.

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
        flush_secs: float = 30.0,
    ):
        if len(hparams) != len(member_names):
            raise ValueError(f"{len(member_names)} member names but {len(hparams)} hparams")
        logdir = workdir_lib.join(workdir, workdir_lib.TENSORBOARD_DIR)
        self._member_runs = [workdir_lib.join(logdir, n) for n in member_names]
        self._population_run = workdir_lib.join(logdir, workdir_lib.POPULATION_RUN)
        self._pending: dict[str, list[event_pb2.Event]] = {
            run: [] for run in [*self._member_runs, self._population_run]
        }
        self._flush_secs = flush_secs
        self._last_flush = -math.inf

        first_step = 0 if resume_step is None else resume_step + 1
        now = time.time()
        for run in self._pending:
            self._pending[run] += [
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
        self._pending[self._population_run].append(_event(0, summary=experiment))
        for m, (run, name) in enumerate(zip(self._member_runs, member_names)):
            session = hparams_summary.hparams_pb(
                {key: values[m] for key, values in columns.items()},
                trial_id=name,
                start_time_secs=now,
            )
            self._pending[run].append(_event(0, summary=session))
        self.flush(force=True)

    @staticmethod
    def _event_file_name() -> str:
        # Seconds, then a per-process sequence number, zero-padded: name order is writing
        # order within a process, and a resumed process's files sort after its predecessor's.
        return (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
                f".{os.getpid()}.{next(_event_file_ids):06d}")

    def scalars(self, step: int, values: Mapping[str, np.ndarray]) -> None:
        """Per-member scalars: `values` maps a tag (``train/loss``) to an array of shape [M].

        A member's non-finite value is skipped for that member only.
        """
        num_members = len(self._member_runs)
        arrays = {}
        for tag, array in values.items():
            arrays[tag] = np.asarray(array, dtype=np.float64)
            if arrays[tag].shape != (num_members,):
                raise ValueError(f"{tag}: expected shape ({num_members},), got {arrays[tag].shape}")
        for m, path in enumerate(self._member_runs):
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
        self._pending[self._population_run].append(_event(step, summary=summary))

    def flush(self, force: bool = False) -> None:
        """Writes every run's buffered events as a new event file (see the class docstring)."""
        if not force and time.monotonic() - self._last_flush < self._flush_secs:
            return
        self._last_flush = time.monotonic()
        name = self._event_file_name()
        for run, events in self._pending.items():
            if events:
                buffer = io.BytesIO()
                records = RecordWriter(buffer)
                for event in events:
                    records.write(event.SerializeToString())
                workdir_lib.write_atomically(workdir_lib.join(run, name), buffer.getvalue())
                events.clear()

    def close(self) -> None:
        self.flush(force=True)


# ---------------------------------------------------------------------------------------
# results


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


def _complete_lines(data: bytes) -> list[bytes]:
    """The newline-terminated lines of `data`; a killed writer's partial tail is left out."""
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


class ResultsWriter:
    """Evaluation records into ``<workdir>/results/step_<step>.jsonl`` (schema: module docstring).

    One object per evaluation step, written whole: a store without append loses nothing, and
    a reader never sees half a step. Only process 0 writes.
    """

    def __init__(self, workdir: str):
        self.workdir = workdir

    def append(self, records: Iterable[Mapping]) -> None:
        """Adds `records` to the results of their steps (a step written before keeps its lines)."""
        by_step: dict[int, list[str]] = {}
        for record in records:
            line = json.dumps(_jsonable(record), allow_nan=False) + "\n"
            by_step.setdefault(int(record["step"]), []).append(line)
        for step, lines in by_step.items():
            path = workdir_lib.results_file(self.workdir, step)
            try:
                earlier = workdir_lib.read_bytes(path)
            except FileNotFoundError:
                earlier = b""
            workdir_lib.write_atomically(path, earlier + "".join(lines).encode("utf-8"))

    def truncate_after(self, step: int) -> None:
        """On resume from a checkpoint at `step`: deletes the results of later steps, which a
        run killed after that checkpoint left behind (the resumed run writes them again)."""
        for later, path in workdir_lib.results_steps(self.workdir):
            if later > step:
                workdir_lib.remove(path)
        legacy = workdir_lib.join(self.workdir, workdir_lib.LEGACY_RESULTS_FILE)
        if workdir_lib.exists(legacy):
            kept = [line for line in _complete_lines(workdir_lib.read_bytes(legacy))
                    if line.strip() and json.loads(line)["step"] <= step]
            workdir_lib.write_atomically(legacy, b"".join(kept))


def read_results(workdir: str) -> list[dict]:
    """Every record of `workdir`, in step order (the ``results.jsonl`` of an older workdir
    first, where a half-written last line is skipped).

    Raises ConfigError if a line is not JSON (the file was edited or corrupted).
    """
    sources = [(workdir_lib.join(workdir, workdir_lib.LEGACY_RESULTS_FILE), True)]
    sources += [(path, False) for _, path in workdir_lib.results_steps(workdir)]
    records = []
    for path, legacy in sources:
        try:
            lines = workdir_lib.read_text(path).split("\n")
        except FileNotFoundError:
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                if legacy and number == len(lines):  # no newline after it: a writer stopped mid-line
                    continue
                raise ConfigError("results", f"line {number} is not JSON ({error}) in {path}") from None
    return records


# ---------------------------------------------------------------------------------------
# Console progress


def selection_scores(records: Iterable[Mapping], select_lengths: Sequence[int]) -> dict[tuple[str, int], float]:
    """Per (member_name, step) evaluation in `records`: its mean exact match over
    `select_lengths`, the score that picks a member's best checkpoint (in training) and its
    selected evaluation (in report). NaN where an accuracy is null: such an evaluation never wins."""
    accs: dict[tuple[str, int], list[float]] = {}
    for r in records:
        if r["length"] in select_lengths:
            accs.setdefault((r["member_name"], r["step"]), []).append(math.nan if r["acc"] is None else r["acc"])
    return {key: float(np.mean(values)) for key, values in accs.items()}


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
