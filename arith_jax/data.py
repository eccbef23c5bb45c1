"""Training data sources, one stream per population member (the trainer vmaps over members).

Every source answers the same five calls:
- device_data(data_seeds) -> pytree with a leading member axis, or None; built once.
- next_host_chunk(num_steps) -> pytree of numpy arrays [num_steps, M, ...], or None: host
  inputs for the next num_steps steps (only the file source has any).
- batch(member_data, host_step, key, step, modulus) -> tasks.Batch: traced, ONE member: the
  source class's `device_batch` for its settings, the same pure function `batch_function`
  gives the compiled trainer (which never holds a source object).
- get_state() / set_state(state): JSON-serialisable position of the stream ({} if none).

Answers are always computed on the device with the member's modulus, so one set of
operands serves every member of a population.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence

import grain
import jax
import jax.numpy as jnp
import numpy as np

from arith_jax import tasks
from arith_jax import workdir as workdir_lib
from arith_jax.errors import ConfigError

class _Source:
    """What every source shares: `batch` is its device half, built once from the source's
    settings into `_batch_fn`. Each kind of SOURCE_CLASSES builds it with its static
    `device_batch(spec, sampling, batch_size, size)`, the pure function `batch_function` gives
    the compiled trainer: (member_data, host_step, key, step, modulus) -> tasks.Batch."""

    _batch_fn = None

    def batch(self, member_data, host_step, key, step, modulus) -> tasks.Batch:
        return self._batch_fn(member_data, host_step, key, step, modulus)


class _DeviceOnlySource(_Source):
    """The host side of a source whose examples all come from the device: nothing to feed,
    nothing to save."""

    def next_host_chunk(self, num_steps: int):
        return None

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


class OnlineSource(_DeviceOnlySource):
    """Fresh examples every step, drawn from fold_in(key, step): resuming needs no state."""

    def __init__(self, spec: tasks.TaskSpec, sampling: tasks.Sampling, batch_size: int):
        self.spec, self.sampling, self.batch_size = spec, sampling, batch_size
        self._batch_fn = self.device_batch(spec, sampling, batch_size, 0)

    @classmethod
    def create(cls, spec, sampling, batch_size, *, size, exclude, paths, moduli):
        return cls(spec, sampling, batch_size)

    @staticmethod
    def device_batch(spec, sampling, batch_size, size):
        return functools.partial(online_batch, spec, sampling, batch_size)

    def device_data(self, data_seeds: list[int]):
        return None


def _pair_rows(a_NxW, b_NxW) -> np.ndarray:
    """One hashable row per pair: [N] of void scalars over the concatenated int8 digits."""
    rows_Nx2W = np.ascontiguousarray(np.concatenate([a_NxW, b_NxW], axis=1).astype(np.int8))
    return rows_Nx2W.view(np.dtype((np.void, rows_Nx2W.shape[1])))[:, 0]


def _digit_lengths(digits_NxW: np.ndarray) -> np.ndarray:
    nonzero_NxW = digits_NxW != 0
    return np.maximum(np.where(nonzero_NxW, np.arange(1, digits_NxW.shape[1] + 1), 0).max(axis=1), 1)


class FiniteSource(_DeviceOnlySource):
    """A fixed set of `size` distinct operand pairs per member, held on the device as int8.

    The set is drawn from the sampling with the member's data seed, never contains a pair of
    `exclude` (the evaluation sets), and each step samples batch_size pairs of it with
    replacement from fold_in(key, step).
    """

    def __init__(self, spec: tasks.TaskSpec, sampling: tasks.Sampling, batch_size: int, size: int,
                 exclude: Sequence[tuple[np.ndarray, np.ndarray]] = ()):
        self.spec, self.sampling, self.batch_size, self.size = spec, sampling, batch_size, size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError("data.size", f"{size!r} is not allowed; must be an integer >= 1")
        self._excluded = self._excluded_pairs(exclude)
        available = sampling.num_pairs - self._excluded.shape[0]
        if size > available:
            raise ConfigError("data.size", f"{size} distinct pairs are asked for, but sampling {str(sampling)!r} has "
                                           f"only {available} after excluding {self._excluded.shape[0]} evaluation "
                                           "pairs; lower data.size or widen the sampling")
        self._sample = jax.jit(tasks.sample_operands, static_argnums=(1, 2, 3))
        # Candidates per draw: twice the set, so one or two draws usually suffice; a power of
        # two in [4096, 2^20] keeps compiles few and device memory bounded.
        self._candidates = min(2**20, max(4096, 1 << (2 * size - 1).bit_length()))
        self._batch_fn = self.device_batch(spec, sampling, batch_size, size)

    @classmethod
    def create(cls, spec, sampling, batch_size, *, size, exclude, paths, moduli):
        return cls(spec, sampling, batch_size, size, exclude)

    @staticmethod
    def device_batch(spec, sampling, batch_size, size):
        return functools.partial(finite_batch, spec, size, batch_size)

    def _excluded_pairs(self, exclude) -> np.ndarray:
        """The distinct excluded pairs this sampling could draw, as rows of width W."""
        width, kept = self.spec.width, []
        classes = self.sampling.length_classes()
        for a_NxV, b_NxV in exclude:
            # Sets of another width V: a pair with a nonzero digit beyond W cannot be drawn,
            # the rest are re-cut (or zero-extended) to W digits.
            a_NxV, b_NxV = np.asarray(a_NxV), np.asarray(b_NxV)
            fits_N = ~np.any(a_NxV[:, width:] != 0, axis=1) & ~np.any(b_NxV[:, width:] != 0, axis=1)
            extend = ((0, 0), (0, max(0, width - a_NxV.shape[1])))
            a_NxW = np.pad(a_NxV[fits_N, :width], extend)
            b_NxW = np.pad(b_NxV[fits_N, :width], extend)
            length_pairs = zip(_digit_lengths(a_NxW).tolist(), _digit_lengths(b_NxW).tolist())
            drawable_N = np.asarray([pair in classes for pair in length_pairs], bool)
            kept.append(_pair_rows(a_NxW[drawable_N], b_NxW[drawable_N]))
        return np.unique(np.concatenate(kept)) if kept else _pair_rows(np.zeros((0, width)), np.zeros((0, width)))

    def distinct_pairs(self, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The member's set: (a, b) int8 [size, W], in draw order (so no value bias)."""
        width = self.spec.width
        key = jax.random.key(data_seed)
        accepted = _pair_rows(np.zeros((0, width)), np.zeros((0, width)))
        for round_index in itertools.count():  # ends: feasibility was checked up front
            a, b = jax.device_get(self._sample(jax.random.fold_in(key, round_index), self.sampling, width,
                                               self._candidates))
            rows = np.concatenate([self._excluded, accepted, _pair_rows(a, b)])
            _, first_index = np.unique(rows, return_index=True)
            first_index = np.sort(first_index[first_index >= self._excluded.shape[0]])
            accepted = rows[first_index]
            if accepted.shape[0] >= self.size:
                break
        digits = np.frombuffer(accepted[: self.size].tobytes(), np.int8).reshape(self.size, 2 * width)
        return digits[:, :width], digits[:, width:]

    def device_data(self, data_seeds: list[int]):
        pairs = [self.distinct_pairs(seed) for seed in data_seeds]
        return {"a": jnp.asarray(np.stack([a for a, _ in pairs])), "b": jnp.asarray(np.stack([b for _, b in pairs]))}


# ----------------------------------------------------------------------------------------
# Text files of records
# ----------------------------------------------------------------------------------------

_HINT_TEXT = re.compile(r"<\d+>")
_SYMBOL_RECORD = re.compile(r"(\d+)([+*])(\d+)=(\d+)")


def _expected_answers(name: str, a: int, b: int, moduli: Sequence[int]) -> list[tuple[int, int | None]]:
    """(answer, modulus) for every modulus the answer is checked against."""
    if name == "add":
        return [(a + b, None)]
    if name == "mul":
        return [(a * b, None)]
    return [((a + b) % p if name == "mod_add" else (a * b) % p, p) for p in moduli]


def _split_record(spec: tasks.TaskSpec, record: str) -> tuple[str, str, str]:
    """The digit strings of A, B, C as written, or ValueError saying what is wrong."""
    match = _SYMBOL_RECORD.fullmatch(record)
    if match:
        a_text, operator, b_text, c_text = match.groups()
        wanted = "+" if spec.name in ("add", "mod_add") else "*"
        if operator != wanted:
            raise ValueError(f"operator {operator!r}, but {spec.name} records use {wanted!r}")
        return a_text, b_text, c_text
    pad = spec.format.pad_operands
    if not record.isdigit():
        raise ValueError("expected A+B=C (or A*B=C), or the digits of a padded layout")
    if not pad:
        raise ValueError("a record without '+'/'=' needs padded operands (pad=N in task.format)")
    result_len = len(record) - 2 * pad
    if result_len < 1 or (spec.format.pad_result and result_len != spec.result_slots):
        raise ValueError(f"{len(record)} digits do not split as {pad} + {pad} + the result's digits")
    return record[:pad], record[pad: 2 * pad], record[2 * pad:]


def _parse_record(spec: tasks.TaskSpec, record: str, moduli: Sequence[int]) -> tuple[int, int]:
    a_text, b_text, c_text = _split_record(spec, record)
    fmt = spec.format
    a = int(a_text[::-1] if fmt.reverse_operands else a_text)
    b = int(b_text[::-1] if fmt.reverse_operands else b_text)
    c = int(c_text[::-1] if fmt.reverse_result else c_text)
    for operand in (a, b):
        if len(str(operand)) > spec.width:
            raise ValueError(f"operand {operand} has more than the task's {spec.width} digits (task.width)")
    for answer, p in _expected_answers(spec.name, a, b, moduli):
        if c != answer:
            where = f" for modulus {p}" if p else ""
            raise ValueError(f"answer {c} is wrong{where}; {spec.name} gives {answer}")
    return a, b


def read_records(spec: tasks.TaskSpec, paths: Sequence[str], moduli: Sequence[int] = ()) -> np.ndarray:
    """Every record of the files as int8 digits [N, 2, W] (a, b); each answer is checked.

    Records are `A+B=C;` (or `A*B=C;`) in the format's digit order, with or without the
    symbols, BOS, index hints and zero padding, one per line or several per line split by ';'.
    """
    if spec.is_modular and not [p for p in moduli if p]:
        raise ConfigError("task.moduli", f"is empty; {spec.name} records are checked against each modulus")
    pairs = []
    for path in paths:
        try:
            lines = workdir_lib.read_text(path).splitlines()  # a local file or gs://...
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError("data.files", f"{path}: cannot be read ({error.__class__.__name__}: "
                                            f"{getattr(error, 'strerror', None) or error})") from None
        for line_number, line in enumerate(lines, start=1):
            for record in line.split(";"):
                record = _HINT_TEXT.sub("", "".join(record.split())).removeprefix("$")
                if not record:
                    continue
                try:
                    a, b = _parse_record(spec, record, moduli)
                except ValueError as error:
                    raise ConfigError("data.files", f"{path}:{line_number}: {record!r}: {error}") from None
                pairs.append((tasks.int_to_digits(a, spec.width), tasks.int_to_digits(b, spec.width)))
    if not pairs:
        raise ConfigError("data.files", f"{', '.join(map(str, paths)) or 'the empty file list'}: no records "
                                        "(expected lines of A+B=C; in task.format)")
    return np.asarray(pairs, np.int8)


class FileSource(_Source):
    """Operand pairs read from text files, shuffled per member by grain, repeated, batched.

    Each member reads the same records through its own grain pipeline (shuffle seeded by its
    data seed, reshuffled every epoch); the iterators' states are the source's state, so a
    resumed run continues each stream exactly. The sampling is not used: the files are the
    distribution. The pipelines exist once device_data has been called.
    """

    def __init__(self, spec: tasks.TaskSpec, sampling: tasks.Sampling, batch_size: int, paths: Sequence[str],
                 moduli: Sequence[int] = ()):
        self.spec, self.batch_size = spec, batch_size
        self.records_Nx2xW = read_records(spec, paths, moduli)
        self._iterators = []
        self._pending_state = None
        self._batch_fn = self.device_batch(spec, sampling, batch_size, 0)

    @classmethod
    def create(cls, spec, sampling, batch_size, *, size, exclude, paths, moduli):
        return cls(spec, sampling, batch_size, paths, moduli)

    @staticmethod
    def device_batch(spec, sampling, batch_size, size):
        return functools.partial(file_batch, spec)

    def device_data(self, data_seeds: list[int]):
        # Reading is synchronous: the trainer fetches a chunk while the device runs the last.
        read_options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
        self._iterators = [
            iter(grain.MapDataset.source(self.records_Nx2xW).shuffle(seed=seed % 2**32).repeat()
                 .batch(self.batch_size).to_iter_dataset(read_options))
            for seed in data_seeds]
        if self._pending_state is not None:
            self.set_state(self._pending_state)
        return None

    def next_host_chunk(self, num_steps: int):
        if not self._iterators:
            raise RuntimeError("FileSource.device_data(data_seeds) builds the member pipelines; call it first")
        steps = [np.stack([next(iterator) for iterator in self._iterators]) for _ in range(num_steps)]
        chunk_SxMxBx2xW = np.stack(steps)
        return {"a": chunk_SxMxBx2xW[:, :, :, 0], "b": chunk_SxMxBx2xW[:, :, :, 1]}

    def get_state(self) -> dict:
        if not self._iterators:
            return self._pending_state or {}
        return {"members": [iterator.get_state() for iterator in self._iterators]}

    def set_state(self, state: dict) -> None:
        if not self._iterators:
            self._pending_state = state
            return
        members = state.get("members", [])
        if len(members) != len(self._iterators):
            raise ConfigError("data.source", f"the saved file-source state has {len(members)} member streams, this "
                                             f"run has {len(self._iterators)}")
        for iterator, member_state in zip(self._iterators, members):
            iterator.set_state(member_state)


class SamplingSwitch(_DeviceOnlySource):
    """Members of one group trained on different operand lengths (population.train_digits).

    One source per sampling; each member's index into them is device data, and
    `lax.switch` picks its stream inside the vmapped step (as a select over the branches,
    which costs a few generations: well under a percent of a training step).
    """

    def __init__(self, sources: Sequence, member_sampling: Sequence[int]):
        self.sources, self.member_sampling = list(sources), np.asarray(member_sampling, np.int32)
        self._batch_fn = functools.partial(switched_batch, [source.batch for source in self.sources])

    def device_data(self, data_seeds: list[int]):
        per_sampling = [source.device_data([s for s, k in zip(data_seeds, self.member_sampling) if k == i])
                        for i, source in enumerate(self.sources)]
        data = None
        if per_sampling[0] is not None:
            # Back into member order: member m is row (its rank among its sampling's members).
            rank = [int(np.sum(self.member_sampling[:m] == k)) for m, k in enumerate(self.member_sampling)]
            data = jax.tree.map(lambda *parts: np.stack([np.asarray(parts[k][r]) for k, r in
                                                         zip(self.member_sampling, rank)]), *per_sampling)
        return {"sampling": self.member_sampling, "data": data}


def make_source(kind: str, spec: tasks.TaskSpec, sampling: tasks.Sampling, batch_size: int, *, size: int = 0,
                exclude: Sequence[tuple[np.ndarray, np.ndarray]] = (), paths: Sequence[str] = (),
                moduli: Sequence[int] = ()):
    """The source named by data.source; keyword arguments a kind does not use are ignored."""
    return source_class(kind).create(spec, sampling, batch_size, size=size, exclude=exclude, paths=paths,
                                     moduli=moduli)


# The data.source names: the one place that knows them.
SOURCE_CLASSES = {"online": OnlineSource, "finite": FiniteSource, "files": FileSource}
SOURCES = tuple(SOURCE_CLASSES)


def source_class(kind: str) -> type[_Source]:
    """The class of data.source `kind`, or a ConfigError that says what is allowed."""
    if kind not in SOURCE_CLASSES:
        raise ConfigError("data.source", f"unknown source {kind!r}; allowed: {', '.join(SOURCES)}")
    return SOURCE_CLASSES[kind]


# ----------------------------------------------------------------------------------------
# The device half of every source, as pure functions of the group's static description: a
# compiled training program builds its batch function from these and never holds a source
# object (whose host half, the files' iterators, belongs to one run).
# Each takes (member_data, host_step, key, step, modulus) of one member after its static
# arguments, and returns that member's tasks.Batch.
# ----------------------------------------------------------------------------------------


def online_batch(spec, sampling, batch_size, member_data, host_step, key, step, modulus) -> tasks.Batch:
    """Fresh examples drawn from fold_in(key, step)."""
    return tasks.make_batch(spec, sampling, jax.random.fold_in(key, step), batch_size, modulus)


def finite_batch(spec, size, batch_size, member_data, host_step, key, step, modulus) -> tasks.Batch:
    """`batch_size` pairs drawn with replacement from the member's fixed set."""
    index_B = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, size)
    return tasks.batch_for_operands(spec, member_data["a"][index_B], member_data["b"][index_B], modulus)


def file_batch(spec, member_data, host_step, key, step, modulus) -> tasks.Batch:
    """The pairs the host read from files for this step."""
    return tasks.batch_for_operands(spec, host_step["a"], host_step["b"], modulus)


def switched_batch(batch_fns: Sequence, member_data, host_step, key, step, modulus) -> tasks.Batch:
    """The member's own training distribution among several (index member_data["sampling"])."""
    branches = [lambda fn=fn: fn(member_data["data"], host_step, key, step, modulus) for fn in batch_fns]
    return jax.lax.switch(member_data["sampling"], branches)


def batch_function(kind: str, spec: tasks.TaskSpec, samplings: Sequence, batch_size: int, size: int):
    """The device half of the source `make_source` builds for these settings (one per sampling,
    switched per member when there are several)."""
    fns = [source_class(kind).device_batch(spec, sampling, batch_size, size) for sampling in samplings]
    return fns[0] if len(fns) == 1 else functools.partial(switched_batch, fns)
