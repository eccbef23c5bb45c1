"""Turning a config into a validated experiment, before anything compiles.

Every check names the field and what is allowed (ConfigError). Checks of the task layout
and the model live beside the code that defines them (tasks.TaskSpec.validate,
model.ModelConfig.validate); this module checks the rest and calls those.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from typing import Any, Iterable

import ml_collections

from arith_jax import default_config, published
from arith_jax.data import SOURCES
from arith_jax.errors import ConfigError
from arith_jax.model import EMBEDDING_TABLES


def base() -> ml_collections.ConfigDict:
    """Every field with its plain value (default_config.base): what configs build on."""
    return default_config.base()


def sibling(config_file: str, name: str) -> ml_collections.ConfigDict:
    """get_config() of the config file `name` beside `config_file`: a CPU-size config builds
    on its paper-size sibling (config files are loaded by path, not imported as a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(config_file)), name)
    spec = importlib.util.spec_from_file_location(f"arith_jax_config_{name.removesuffix('.py')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    """A config saved in a workdir, laid over base() (so old workdirs still load: a field added
    since has the plain value the run trained with)."""
    config = base()
    _merge(config, json.loads(text))
    return config


def _merge(config: ml_collections.ConfigDict, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and key in config:
            _merge(config[key], value)
        else:
            with config.ignore_type():
                config[key] = value


def _positive_ints(field: str, values: Iterable[Any], *, allow_empty: bool = False) -> list[int]:
    values = list(values)
    if not values and not allow_empty:
        raise ConfigError(field, "must list at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(field, f"{v!r} is not allowed; each entry must be a positive integer")
    return values


def _ints(field: str, values: Iterable[Any]) -> list[int]:
    values = list(values)
    if not values:
        raise ConfigError(field, "must list at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(field, f"{v!r} is not allowed; each entry must be an integer >= 0")
    return values


def _floats(field: str, values: Iterable[Any], *, low: float, low_inclusive: bool) -> list[float]:
    values = list(values)
    if not values:
        raise ConfigError(field, "must list at least one value")
    bound = f">= {low}" if low_inclusive else f"> {low}"
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v >= low if low_inclusive else v > low)
        if not ok:
            raise ConfigError(field, f"{v!r} is not allowed; each entry must be a finite number {bound}")
    return [float(v) for v in values]


def _int_at_least(field: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(field, f"{value!r} is not allowed; must be an integer >= {low}")
    return value


def _float_in(field: str, value: Any, low: float, high: float, what: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low <= value <= high):
        raise ConfigError(field, f"{value!r} is not allowed; must be {what}")
    return float(value)


def dropout_rate(field: str, value: Any) -> float:
    return _float_in(field, value, 0.0, 0.999999, "a dropout rate in [0, 1)")


def _each_once(field: str, values: Iterable[Any]) -> None:
    values = list(values)
    if len(set(values)) != len(values):
        raise ConfigError(field, f"{values} repeats a value; list each once")


# The population lists a group may set for itself (population.group_overrides).
PER_GROUP_LISTS = ("learning_rates", "weight_decays", "format")


def _check_member_lists(prefix: str, lists) -> None:
    """The population's lists, or those of population.group_overrides.<key>: whichever are set."""
    checks = {
        "seeds": _ints,
        "data_seeds": _ints,
        "learning_rates": lambda f, v: _floats(f, v, low=0.0, low_inclusive=False),
        "weight_decays": lambda f, v: _floats(f, v, low=0.0, low_inclusive=True),
        "train_digits": lambda f, v: _positive_ints(f, v, allow_empty=True),
        "dropout": lambda f, v: [dropout_rate(f, rate) for rate in v],
    }
    for field, check in checks.items():
        if field in lists:
            check(f"{prefix}.{field}", lists[field])
    for field in ("format", "train_sampling"):  # strings as task.<field> takes them
        for text in lists.get(field, ()):
            if not isinstance(text, str):
                raise ConfigError(f"{prefix}.{field}", f"{text!r} is not allowed; each entry is a task.{field} string")
    for field in ("seeds", "data_seeds", "learning_rates", "weight_decays", "pe", "preset", "format", "dropout",
                  "train_sampling", "train_digits"):
        _each_once(f"{prefix}.{field}", lists.get(field, ()))


def check_scalars(config: ml_collections.ConfigDict) -> None:
    """The checks that need nothing but the config itself."""
    t = config.train
    _int_at_least("train.steps", t.steps, 1)
    _int_at_least("train.batch_size", t.batch_size, 1)
    _int_at_least("train.warmup_steps", t.warmup_steps, 0)
    _int_at_least("train.steps_per_dispatch", t.steps_per_dispatch, 1)
    _int_at_least("train.weight_decay_from_step", t.weight_decay_from_step, 0)
    _float_in("train.weight_decay_below_loss", t.weight_decay_below_loss, 0.0, math.inf,
              "a loss >= 0 (0 = decay at any loss)")
    _float_in("train.weight_decay_while_gated", t.weight_decay_while_gated, 0.0, math.inf, "a weight decay >= 0")
    full_at = _float_in("train.weight_decay_full_at_loss", t.weight_decay_full_at_loss, 0.0, math.inf,
                        "a loss >= 0 (0 = the full decay as soon as the loss is below the gate)")
    if full_at > 0 and not full_at < t.weight_decay_below_loss:
        raise ConfigError("train.weight_decay_full_at_loss",
                          f"{full_at!r} is not allowed; must be 0 or below train.weight_decay_below_loss "
                          f"({t.weight_decay_below_loss!r}), where the decay starts to rise")
    acc_gate = _float_in("train.weight_decay_above_accuracy", t.weight_decay_above_accuracy, 0.0, 1.0,
                         "a share in [0, 1] (0 = decay at any accuracy)")
    acc_full = _float_in("train.weight_decay_full_at_accuracy", t.weight_decay_full_at_accuracy, 0.0, 1.0,
                         "a share in [0, 1] (0 = the full decay as soon as the accuracy reaches the gate)")
    if acc_full > 0 and not acc_full > acc_gate:
        raise ConfigError("train.weight_decay_full_at_accuracy",
                          f"{acc_full!r} is not allowed; must be 0 or above train.weight_decay_above_accuracy "
                          f"({acc_gate!r}), where the decay starts to rise")
    _float_in("train.final_lr_fraction", t.final_lr_fraction, 0.0, 1.0, "in [0, 1]")
    _float_in("train.b1", t.b1, 0.0, 0.999999, "in [0, 1)")
    _float_in("train.b2", t.b2, 0.0, 0.999999, "in [0, 1)")
    _float_in("train.eps", t.eps, 1e-30, 1.0, "a number in (0, 1]")
    _float_in("train.grad_clip", t.grad_clip, 1e-12, math.inf, "a number > 0")
    _float_in("train.ema_decay", t.ema_decay, 0.0, 0.999999, "in [0, 1) (0 = no moving average)")
    _float_in("train.ema_ramp", t.ema_ramp, 1e-3, 1e6, "a number in [0.001, 1e6]")
    tables = sorted(set(EMBEDDING_TABLES.values()))
    for name in t.decayed_tables:
        if name not in tables:
            raise ConfigError("train.decayed_tables", f"{name!r} is not allowed; each entry is one of {', '.join(tables)}")
    _each_once("train.decayed_tables", t.decayed_tables)

    p = config.population
    _check_member_lists("population", p)
    for key, entry in p.get("group_overrides", {}).items():
        field = f"population.group_overrides.{key}"
        if not hasattr(entry, "items"):
            raise ConfigError(field, f"{entry!r} is not allowed; give a dict of {', '.join(PER_GROUP_LISTS)}")
        unknown = sorted(set(entry) - set(PER_GROUP_LISTS))
        if unknown:
            raise ConfigError(field, f"{unknown[0]!r} cannot be set per group; allowed: {', '.join(PER_GROUP_LISTS)}")
        _check_member_lists(field, entry)
        if "format" in entry and not list(entry["format"]):  # population.format's () means task.format; here, nothing
            raise ConfigError(f"{field}.format", "must list at least one value")
    sampling_field = "population.train_sampling" if p.train_sampling else "task.train_sampling"
    for text in list(p.train_sampling) or [config.task.train_sampling]:
        if p.train_digits and "{n}" not in text:
            raise ConfigError("population.train_digits",
                              f'is set, so {sampling_field} must contain "{{n}}" (e.g. "dn:{{n}}"), not {text!r}')

    if config.data.source not in SOURCES:
        raise ConfigError("data.source", f"{config.data.source!r} is not allowed; use one of {', '.join(SOURCES)}")
    if config.data.source == "finite":
        _int_at_least("data.size", config.data.size, 1)
    if config.data.source == "files" and not list(config.data.files):
        raise ConfigError("data.files", "is empty; data.source='files' needs at least one text file")

    published.parse(config.report.published)

    e = config.eval
    _positive_ints("eval.lengths", e.lengths)
    unknown = sorted(set(e.get("select_lengths", ())) - set(e.lengths))
    if unknown:
        raise ConfigError("eval.select_lengths", f"{unknown} are not evaluated; choose from eval.lengths "
                                                 f"{tuple(e.lengths)}")
    _int_at_least("eval.every", e.every, 0)
    _int_at_least("eval.examples_per_length", e.examples_per_length, 1)
    _int_at_least("checkpoint.every", config.checkpoint.every, 0)
    _int_at_least("checkpoint.keep", config.checkpoint.keep, 1)
    _int_at_least("log.every", config.log.every, 1)
