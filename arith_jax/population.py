"""The member grid and its grouping by static shape.

A population is the product of the config's lists. Members that share every static shape
(architecture, positional encoding, sequence layout) form one Group and train in one
compiled program; what differs inside a group (seed, data seed, modulus, learning rate,
weight decay, training length) is data: arrays with a leading member axis, so no value
ever recompiles. Training lengths share the group's operand width, so a member's length is
the index of its sampler among the group's samplers. `population.group_overrides` lets an
encoding or preset replace the population's learning rates, weight decays or layouts with its
own, so a grid can give each architecture the settings it learns at.
"""

from __future__ import annotations

import dataclasses
import itertools

import ml_collections
import numpy as np

from arith_jax import config as config_lib
from arith_jax import model as model_lib
from arith_jax import positional
from arith_jax import tasks
from arith_jax import workdir as workdir_lib
from arith_jax import writers
from arith_jax.errors import ConfigError

# Fields that change the compiled program (a shape, a layout or a constant of the model):
# each combination is its own group.
GROUP_FIELDS = ("pe", "preset", "format", "dropout")


@dataclasses.dataclass(frozen=True)
class Group:
    name: str  # what distinguishes it from the other groups ("main" when alone)
    model: model_lib.ModelConfig
    spec: tasks.TaskSpec
    samplings: tuple[tasks.Sampling, ...]  # the training distributions in use; members index them
    members: tuple[dict, ...]  # each member's full coordinates (seed, data_seed, p, lr, wd, ...)
    sampling_indices: tuple[int, ...]  # per member: its entry of `samplings`
    # Per member: its name in TensorBoard and the report, from the whole population (so a
    # share of a split sweep names its members as the unsplit sweep would).
    names: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.members)

    def column(self, key: str, dtype) -> np.ndarray:
        return np.asarray([m[key] for m in self.members], dtype=dtype)

    def sampling_index(self, member: dict) -> int:
        return self.sampling_indices[self.members.index(member)]

    def sampling_of(self, member: dict) -> tasks.Sampling:
        return self.samplings[self.sampling_index(member)]

    def n_train(self, member: dict) -> int:
        """Longest trained operand: the "n" of equivalence accuracy and gcd(p, 10^n)/p."""
        return self.sampling_of(member).max_digits


def _moduli(config: ml_collections.ConfigDict) -> list[int]:
    if config.task.name not in tasks.MODULAR_TASKS:
        return [0]  # add and mul ignore the modulus; 0 keeps the member arrays uniform
    moduli = list(config.task.moduli)
    if not moduli:
        raise ConfigError("task.moduli", f"is empty; {config.task.name} needs at least one modulus")
    for p in moduli:
        tasks.check_modulus(p)
    if len(set(moduli)) != len(moduli):
        raise ConfigError("task.moduli", f"{moduli} repeats a value; list each once")
    if config.data.source == "files" and len(moduli) > 1:
        raise ConfigError("task.moduli", "a file source holds answers for one modulus; list exactly one")
    return moduli


def _modulus_capacity(largest: int) -> int:
    """The TaskSpec's max_modulus: only the result's digit count is static, so every modulus
    set whose answers have as many digits shares one spec (and one compiled program)."""
    if not largest:
        return 0
    return 10 ** len(str(largest - 1))


def _sampling(text: str, n: int | None, field: str) -> tasks.Sampling:
    if n is not None:
        text = text.replace("{n}", str(n))
    return tasks.Sampling.parse(text, field=field)


def _model_config(config: ml_collections.ConfigDict, preset: str, pe: str,
                  dropout: float) -> model_lib.ModelConfig:
    """Every model.* field that ModelConfig knows; sizes left at 0 come from the preset."""
    sizes = ("num_layers", "num_heads", "d_model", "d_ff")
    known = {f.name for f in dataclasses.fields(model_lib.ModelConfig)} | set(positional.FIELDS)
    fields = {k: v for k, v in config.model.items() if k in known and not (k in sizes and v == 0)}
    return model_lib.ModelConfig.from_preset(preset, **dict(fields, pe=pe, dropout=dropout))


def _spec(config: ml_collections.ConfigDict, text: str, width: int, max_modulus: int, field: str) -> tasks.TaskSpec:
    """The task in the layout `text`; a bad layout is named by the field that set it."""
    try:
        return tasks.TaskSpec(config.task.name, width, tasks.Format.parse(text, field=field, task=config.task.name),
                              max_modulus)
    except ConfigError as error:
        if error.field != "task.format":
            raise
        raise error.under(field) from None


def _own_lists(config: ml_collections.ConfigDict, pe: str, preset: str,
               formats: list[str]) -> tuple[dict[str, list], str]:
    """The learning rates, weight decays and layouts of the groups of one (pe, preset) pair:
    the population's, replaced by whatever population.group_overrides gives that encoding or
    preset. Also the field the layouts came from, to name it in an error."""
    pop = config.population
    lists = {"learning_rates": list(pop.learning_rates), "weight_decays": list(pop.weight_decays),
             "format": formats}
    format_field = "population.format" if pop.format else "task.format"
    set_by = {}
    for key in (pe, preset):
        for list_name, values in pop.get("group_overrides", {}).get(key, {}).items():
            if list_name in set_by:
                raise ConfigError("population.group_overrides", f"{set_by[list_name]!r} and {key!r} both set "
                                                                f"{list_name} for pe={pe}, preset={preset}; set it once")
            set_by[list_name] = key
            lists[list_name] = list(values)
            if list_name == "format":
                format_field = f"population.group_overrides.{key}.format"
    return lists, format_field


def _check_override_keys(config: ml_collections.ConfigDict) -> None:
    """Each key must name an encoding or a preset (a typo is not silently ignored); one the
    population does not train is allowed, so a config's overrides survive narrowing its lists."""
    names = list(positional.ENCODINGS) + list(model_lib.PRESETS)
    for key in config.population.get("group_overrides", {}):
        if key not in names:
            raise ConfigError(f"population.group_overrides.{key}",
                              f"names no positional encoding or preset; use one of {', '.join(names)}")


def plan(config: ml_collections.ConfigDict) -> list[Group]:
    """Validate the config and lay the population out in groups. Raises ConfigError."""
    config_lib.check_scalars(config)
    tasks.check_task(config.task.name)
    moduli = _moduli(config)
    pop = config.population
    pes = list(pop.pe) or [config.model.pe]
    presets = list(pop.preset) or [config.model.preset]
    formats = list(pop.format) or [config.task.format]
    dropouts = [config_lib.dropout_rate("population.dropout", d) for d in pop.dropout] or [config.model.dropout]
    _check_override_keys(config)
    digit_choices = sorted(pop.train_digits) or [None]
    sampling_field = "population.train_sampling" if pop.train_sampling else "task.train_sampling"
    sampling_texts = list(pop.train_sampling) or [config.task.train_sampling]
    for field in ("train_digits", "train_sampling"):
        if pop[field] and config.data.source == "files":
            raise ConfigError(f"population.{field}", "has no effect with data.source='files' (the files "
                                                     "are the training distribution); leave it empty")
    # Every member's training distribution; members share the group's program and pick
    # their sampler by index, so equal distributions share one sampler.
    member_samplings = {(text, n): _sampling(text, n, sampling_field) for text in sampling_texts
                        for n in digit_choices}
    samplings = tuple(dict.fromkeys(member_samplings.values()))
    longest = max([s.max_digits for s in samplings] + list(config.eval.lengths))
    width = config.task.width or longest
    if width < longest:
        raise ConfigError("task.width", f"{width} is smaller than the longest train or eval operand ({longest} "
                                        "digits); raise it or set 0 for automatic")
    # Each (pe, preset) pair's own lists: the population's, or its population.group_overrides.
    own = {(pe, preset): _own_lists(config, pe, preset, formats) for pe, preset in itertools.product(pes, presets)}
    format_fields = {}  # each layout, and the field that first asked for it
    for lists, format_field in own.values():
        for text in lists["format"]:
            format_fields.setdefault(text, format_field)
    specs = {text: _spec(config, text, width, _modulus_capacity(max(moduli)), field)
             for text, field in format_fields.items()}
    group_grid = [(pe, preset, format_text, dropout) for (pe, preset), (lists, _) in own.items()
                  for format_text in lists["format"] for dropout in dropouts]
    varying_group_fields = [f for i, f in enumerate(GROUP_FIELDS) if len({g[i] for g in group_grid}) > 1]

    groups = []
    for pe, preset, format_text, dropout in group_grid:
        spec = specs[format_text]
        model_cfg = _model_config(config, preset, pe, dropout)
        model_cfg.validate(spec.vocab_size, spec.seq_len, spec.format)
        group_coords = {"pe": pe, "preset": preset, "format": format_text, "dropout": dropout}
        # A safe name: it keys the checkpoint's per-group state and names directories.
        name = writers.safe_file_name(",".join(f"{f}={group_coords[f]}" for f in varying_group_fields)) or "main"
        lists, _ = own[pe, preset]
        member_grid = itertools.product(pop.seeds, pop.data_seeds, moduli, lists["learning_rates"],
                                        lists["weight_decays"], sampling_texts, digit_choices)
        members, indices = [], []
        for seed, data_seed, p, lr, wd, sampling_text, n in member_grid:
            coords = {"seed": seed, "data_seed": data_seed, "lr": lr, "wd": wd, **group_coords}
            if p:
                coords["p"] = p
            if pop.train_sampling:
                coords["train_sampling"] = sampling_text
            if n is not None:
                coords["train_digits"] = n
            members.append(coords)
            indices.append(samplings.index(member_samplings[sampling_text, n]))
        groups.append(Group(name, model_cfg, spec, samplings, tuple(members), tuple(indices)))
    names = iter(writers.member_names(all_members(groups)))
    groups = [dataclasses.replace(g, names=tuple(next(names) for _ in g.members)) for g in groups]
    shard = workdir_lib.parse_shard(pop.get("shard", ""), "population.shard")
    return groups if shard is None else share(groups, *shard)


def share(groups: list[Group], index: int, count: int) -> list[Group]:
    """The `index`-th of `count` disjoint shares of the member grid, for a sweep split over
    slices: contiguous runs of members in group order, as equal in size as can be, so a share
    spans few groups (few compiles) and every member is in exactly one share."""
    total = sum(g.size for g in groups)
    if count > total:
        raise ConfigError("population.shard", f"{index}/{count}: {count} shares of {total} members would leave "
                                              f"some empty; use at most {total} shares")
    lo, hi = index * total // count, (index + 1) * total // count
    shared, start = [], 0
    for group in groups:
        keep = [i for i in range(group.size) if lo <= start + i < hi]
        start += group.size
        if not keep:
            continue
        used = sorted({group.sampling_indices[i] for i in keep})  # samplers of the kept members only
        shared.append(dataclasses.replace(
            group,
            samplings=tuple(group.samplings[u] for u in used),
            members=tuple(group.members[i] for i in keep),
            sampling_indices=tuple(used.index(group.sampling_indices[i]) for i in keep),
            names=tuple(group.names[i] for i in keep),
        ))
    return shared


def all_members(groups: list[Group]) -> list[dict]:
    return [m for g in groups for m in g.members]
