"""orbax checkpoints, preemption handling and the resume check.

A checkpoint holds, per group, every member's parameters, optimizer state, frozen flags and
keys (the train state pytree), plus a JSON item with the step, the config and the data
source's iterator state. orbax writes each step into a temporary directory and renames it
when complete, so a process killed mid-save leaves nothing that a restore would read.
"""

from __future__ import annotations

import json
import signal
import threading

import jax
import orbax.checkpoint as ocp
from absl import logging

from arith_jax import default_config
from arith_jax import workdir as workdir_lib
from arith_jax.errors import ConfigError

# What a resumed run must share with the checkpoint: the whole task, model, population and
# data, and every optimisation setting but the length of the run (train.steps may grow to
# train longer: the cosine schedule is then stretched to the new total).
SHAPE_SECTIONS = ("task", "model", "population", "data")
FREE_TRAIN_FIELDS = ("steps", "steps_per_dispatch")
# A finite training set that excludes the eval sets depends on them.
EVAL_FIELDS_OF_FINITE_DATA = ("lengths", "seed", "examples_per_length")


class Checkpointer:
    def __init__(self, workdir: str, keep: int, read_only: bool = False):
        self.directory = workdir_lib.absolute(workdir_lib.join(workdir, workdir_lib.CHECKPOINT_DIR))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                               enable_async_checkpointing=not read_only)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, states: dict, meta: dict) -> None:
        """Asynchronous: returns once the device buffers are copied; the write goes on."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(states),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def read_meta(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, abstract_states: dict, step: int | None = None) -> tuple[dict, dict]:
        """Restore onto the shardings in `abstract_states` (any device count or mesh)."""
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_states), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def check_resumable(saved_config: dict, config: dict, workdir: str) -> None:
    """A resumed run must be the same experiment; name the first field that differs."""
    fields = [(section, key) for section in SHAPE_SECTIONS
              for key in sorted(set(saved_config.get(section, {})) | set(config.get(section, {})))]
    fields += [("train", key) for key in sorted(config.get("train", {})) if key not in FREE_TRAIN_FIELDS]
    # Selection keeps each member's best parameters in the state, chosen by these lengths.
    fields.append(("eval", "select_lengths"))
    data = config.get("data", {})
    if data.get("source") == "finite" and data.get("exclude_eval"):
        fields += [("eval", key) for key in EVAL_FIELDS_OF_FINITE_DATA]
    # A field the checkpoint's config lacks was added later: its plain value (base) is what that
    # run trained with. Tuples as lists, as saved.
    defaults = json.loads(json.dumps(default_config.base().to_dict()))
    for section, key in fields:
        saved_section = saved_config.get(section, {})
        old = saved_section[key] if key in saved_section else defaults.get(section, {}).get(key)
        new = config.get(section, {}).get(key)
        if old != new:
            raise ConfigError(
                f"{section}.{key}",
                f"is {new!r} but the checkpoint in {workdir} was trained with {old!r}; "
                "resume with the same value or use a new --workdir")


def check_same_layout(saved_groups, groups, field: str) -> None:
    """The sequence layout of every group must match the checkpoint's.

    With task.width=0 the operand width follows the longest eval length, and with index
    hints the vocabulary follows the width, so new eval lengths can change parameter shapes.
    """
    for old, new in zip(saved_groups, groups):
        if (old.spec.width, old.spec.vocab_size) != (new.spec.width, new.spec.vocab_size):
            raise ConfigError(field, f"changes the operand width from {old.spec.width} to {new.spec.width} digits "
                                     f"(vocabulary {old.spec.vocab_size} -> {new.spec.vocab_size}), which this "
                                     "checkpoint's model cannot take; keep the trained width")


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop finishes its chunk, saves and exits.

    On multi-host runs the hosts agree through JAX's preemption sync point (which Cloud TPU
    triggers on maintenance events) or any host's flag, so every host saves the same step.
    """

    def __init__(self):
        self._event = threading.Event()
        self._previous = {}
        self._warned = False
        self.signal_name = ""

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def should_stop(self, step: int) -> bool:
        local = self._event.is_set()
        if jax.process_count() == 1:
            return local
        import numpy as np
        from jax.experimental import multihost_utils
        try:
            preempted = multihost_utils.reached_preemption_sync_point(step)
        except Exception as error:  # no preemption service (e.g. local multi-process runs)
            if not self._warned:
                logging.warning("preemption sync point unavailable (%s); relying on signals", error)
                self._warned = True
            preempted = False
        flags = multihost_utils.process_allgather(np.asarray([local or preempted]))
        return bool(np.any(flags))
