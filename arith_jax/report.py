"""The report a person reads in a minute: Markdown tables and PNG plots from a workdir's results.

Rows are member configurations (every population field but the seeds), cells the mean ± std
over the configuration's members of each member's latest evaluation, in percent, with the
operand lengths as columns. For modular tasks a theory row follows each modulus: the
prediction of Xu et al. (ACL 2025) for a model that only uses the operands' last n_train
digits, at each evaluated length and in the limit gcd(p, 10^n_train)/p.

`write_report` is `arith-jax report`; `format_table` prints the same table on a console.
Every file is written whole (workdir.write_atomically), so reporting on a workdir that is
still training, or twice at once, never leaves a half-written file. A workdir whose sweep was
split over slices (`train --shard=i/K`) is reported as one: its shares' results are merged.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arith_jax import published
from arith_jax import workdir as workdir_lib
from arith_jax.errors import ConfigError
from arith_jax.workdir import write_atomically
from arith_jax.writers import (
    SEED_FIELDS,
    heatmap_png,
    member_names,
    png_bytes,
    read_results,
    safe_file_name,
    selection_scores,
)

REPORT_FILE = "report.md"
HEATMAP_FILE = "heatmap.png"
METRIC_TITLES = {"acc": "Exact-match accuracy", "equiv_acc": "Equivalence accuracy"}


@dataclasses.dataclass
class _Configuration:
    """The members of one group that differ only in their seeds."""

    config: dict  # the population fields but the seeds
    theory_key: tuple  # (p, n_train): configurations sharing one theory prediction
    label: str = ""  # what varies across the group's configurations
    members: set = dataclasses.field(default_factory=set)
    # metric -> length -> one measurement per member
    values: dict = dataclasses.field(default_factory=dict)

    def measurements(self, metric: str, length: int) -> list[float]:
        return self.values.get(metric, {}).get(length, [])


@dataclasses.dataclass
class _GroupTable:
    group: str
    steps: list[int]  # the latest step of each member
    lengths: list[int]
    configurations: list[_Configuration]
    theory: dict  # theory_key -> length -> predicted accuracy
    asymptotic: dict  # theory_key -> gcd(p, 10^n_train)/p
    n_train: set


def _sort_key(value) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def latest_records(records: Iterable[Mapping]) -> list[Mapping]:
    """Each member's records at its latest step (the last record per member and length)."""
    records = list(records)
    latest_step: dict[str, int] = {}
    for r in records:
        latest_step[r["member_name"]] = max(r["step"], latest_step.get(r["member_name"], r["step"]))
    latest = {
        (r["member_name"], r["length"]): r for r in records if r["step"] == latest_step[r["member_name"]]
    }
    return list(latest.values())


def best_records(records: Iterable[Mapping], select_lengths: Sequence[int]) -> list[Mapping]:
    """Each member's records at its selected step: the evaluation with the best mean exact match
    over `select_lengths` (the latest of equals), as the position-coupling and Abacus authors
    pick checkpoints by held-out lengths. The selection reads the same examples the tables
    show at those lengths, so their numbers there are optimistic; other lengths are not."""
    records = list(records)
    best: dict[str, tuple[float, int]] = {}
    for (member, step), score in selection_scores(records, select_lengths).items():
        if not math.isnan(score):  # as in training, an evaluation with a null accuracy never wins
            best[member] = max(best.get(member, (-1.0, -1)), (score, step))
    return [r for r in records if r["member_name"] in best and r["step"] == best[r["member_name"]][1]]


def _configuration_of(record: Mapping) -> dict:
    return {k: v for k, v in record["member"].items() if k not in SEED_FIELDS}


def _group_tables(records: Iterable[Mapping]) -> list[_GroupTable]:
    by_group = defaultdict(list)
    for r in latest_records(records):
        by_group[r["group"]].append(r)
    tables = []
    for group in sorted(by_group):
        group_records = by_group[group]
        configurations: dict[str, _Configuration] = {}
        theory, asymptotic = defaultdict(dict), {}
        for r in group_records:
            config = _configuration_of(r)
            theory_key = (config.get("p"), r["n_train"])
            configuration = configurations.setdefault(
                json.dumps(config, sort_keys=True), _Configuration(config, theory_key)
            )
            configuration.members.add(r["member_name"])
            for metric in METRIC_TITLES:
                if r.get(metric) is not None:
                    by_length = configuration.values.setdefault(metric, {})
                    by_length.setdefault(r["length"], []).append(r[metric])
            if r.get("theory") is not None:
                theory[theory_key].setdefault(r["length"], r["theory"])
            if r.get("theory_asymptotic") is not None:
                asymptotic.setdefault(theory_key, r["theory_asymptotic"])

        # Sorted by modulus first, so that each modulus' theory row can follow its block.
        ordered = sorted(
            configurations.values(),
            key=lambda c: (
                [_sort_key(v) for v in c.theory_key],
                [(k, _sort_key(v)) for k, v in sorted(c.config.items())],
            ),
        )
        for c, label in zip(ordered, member_names([c.config for c in ordered], lone_name="all")):
            c.label = label
        latest_step = {r["member_name"]: r["step"] for r in group_records}
        tables.append(
            _GroupTable(
                group=group,
                steps=sorted(latest_step.values()),
                lengths=sorted({r["length"] for r in group_records}),
                configurations=ordered,
                theory=dict(theory),
                asymptotic=asymptotic,
                n_train={r["n_train"] for r in group_records},
            )
        )
    return tables


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single member); `statistics` computes
    exactly, so equal values give a std of 0, not a rounding residue."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _percent(value: float | None) -> str:
    """One decimal; below 1% two significant digits, so that 1/101 reads 0.99, not 1.0."""
    if value is None:
        return "-"
    percent = 100 * value
    return f"{percent:.2g}" if 0 < abs(percent) < 1 else f"{percent:.1f}"


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean, std = _mean_std(values)
    return _percent(mean) if len(values) == 1 else f"{_percent(mean)} ± {_percent(std)}"


def _theory_label(theory_key: tuple, table: _GroupTable) -> str:
    p, n_train = theory_key
    label = "theory" if p is None else f"theory p={p}"
    return label + (f", n_train={n_train}" if len(table.n_train) > 1 else "")


def _has_metric(table: _GroupTable, metric: str) -> bool:
    return any(metric in c.values for c in table.configurations)


def _table_rows(table: _GroupTable, metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per configuration, for `acc` a theory row after each modulus."""
    with_theory = metric == "acc" and bool(table.theory)
    header = ["configuration", "n", *(str(n) for n in table.lengths)]
    header += ["asymptotic"] if with_theory else []
    rows = []
    for theory_key, block in itertools.groupby(table.configurations, key=lambda c: c.theory_key):
        for c in block:
            rows.append(
                [c.label, str(len(c.members)), *(_cell(c.measurements(metric, n)) for n in table.lengths)]
                + ([""] if with_theory else [])
            )
        if with_theory and theory_key in table.theory:
            predicted = table.theory[theory_key]
            rows.append(
                [_theory_label(theory_key, table), "", *(_percent(predicted.get(n)) for n in table.lengths)]
                + [_percent(table.asymptotic.get(theory_key))]
            )
    return header, rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    alignment = [":--", *["--:"] * (len(header) - 1)]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, alignment, *rows])


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in [header, *rows]
    )


def _group_title(table: _GroupTable) -> str:
    return f"group {table.group}" if table.group else "all members"


def _steps_text(table: _GroupTable) -> str:
    first, last = table.steps[0], table.steps[-1]
    return f"step {last}" if first == last else f"steps {first}..{last}"


def format_table(records: Iterable[Mapping], metric: str = "acc") -> str:
    """Plain-text tables of `metric` (%) by operand length, one per group, from each member's
    latest records: configurations as rows (mean ± std over seeds), theory as the last row of
    each modulus. Aligned for a console."""
    sections = []
    for table in _group_tables(records):
        if _has_metric(table, metric):
            header, rows = _table_rows(table, metric)
            title = f"{METRIC_TITLES[metric]} (%) by operand digits, {_group_title(table)}"
            sections.append(f"{title}, {_steps_text(table)}\n{_plain_table(header, rows)}")
    return "\n\n".join(sections)


def published_comparison(records: Iterable[Mapping], comparison: published.Comparison,
                         train_sampling: str) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, rows): per configuration, measured (mean ± std over seeds, worst seed
    in brackets), the published value and, for exact match of modular tasks, the theory."""
    table = comparison.table
    lengths, rows = set(), []
    group_tables = _group_tables(records)
    for group in group_tables:
        for c in group.configurations:
            published_L = table.row(c.config, train_sampling, comparison.shift)
            measured = {n: c.measurements(table.metric, n) for n in group.lengths}
            lengths |= {n for n, values in measured.items() if values}
            theory_L = group.theory.get(c.theory_key, {}) if table.metric == "acc" else {}
            label = c.label if len(group_tables) == 1 else f"{group.group}: {c.label}"
            rows.append((label, len(c.members), measured, published_L, theory_L))
    lengths = sorted(lengths)
    header = ["configuration", "n", "", *(str(n) for n in lengths)]
    out = []
    for label, count, measured, published_L, theory_L in rows:
        out.append([label, str(count), "measured", *(_worst_cell(measured.get(n, [])) for n in lengths)])
        out.append(["", "", "published", *(_published_percent(published_L.get(n)) for n in lengths)])
        if theory_L:
            out.append(["", "", "theory", *(_percent(theory_L.get(n)) for n in lengths)])
    title = f"{METRIC_TITLES[table.metric]} (%): measured vs published, {table.source}"
    if table.note:
        title += f" ({table.note})"
    if comparison.shift:
        title += (f"; the paper trained on operands {abs(comparison.shift)} digit(s) "
                  f"{'shorter' if comparison.shift > 0 else 'longer'}: its rows and lengths are moved by "
                  f"{comparison.shift:+d} to sit at the same place relative to the training length")
    return title, header, out


def _worst_cell(values: Sequence[float]) -> str:
    if len(values) < 2:
        return _cell(values)
    return f"{_cell(values)} [{_percent(min(values))}]"


def _published_percent(value: float | None) -> str:
    return "-" if value is None else _percent(value / 100)


def format_published(workdir: str) -> str:
    """The comparison tables of the workdir config's report.published, for a console."""
    records, config, _ = gather(workdir)
    records = latest_records(records)
    sampling = config.get("task", {}).get("train_sampling", "")
    sections = []
    for comparison in published.parse(config.get("report", {}).get("published", "")):
        title, header, rows = published_comparison(records, comparison, sampling)
        sections.append(f"{title}\n{_plain_table(header, rows)}")
    return "\n\n".join(sections)


def _accuracy_plot(table: _GroupTable) -> bytes:
    """Accuracy vs operand length: a line per configuration with a ±std band over its
    members, the theory dashed in the colour of its modulus' first configuration."""
    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    theory_colors = {}
    for i, c in enumerate(table.configurations):
        color = f"C{i % 10}"
        theory_colors.setdefault(c.theory_key, color)
        lengths = [n for n in table.lengths if c.measurements("acc", n)]
        if not lengths:
            continue
        mean_L, std_L = (
            100 * np.array(s) for s in zip(*(_mean_std(c.measurements("acc", n)) for n in lengths))
        )
        axes.plot(lengths, mean_L, "o-", color=color, label=f"{c.label} (n={len(c.members)})")
        if len(c.members) > 1:
            axes.fill_between(
                lengths, np.clip(mean_L - std_L, 0, 100), np.clip(mean_L + std_L, 0, 100),
                color=color, alpha=0.2, linewidth=0,
            )
    for theory_key, predicted in table.theory.items():
        lengths = sorted(predicted)
        axes.plot(
            lengths, [100 * predicted[n] for n in lengths], "--",
            color=theory_colors[theory_key], label=_theory_label(theory_key, table),
        )
    if len(table.n_train) == 1:
        (n_train,) = table.n_train
        # Between the last trained length and the first longer one: left is in distribution.
        axes.axvline(n_train + 0.5, color="0.6", linestyle=":", label=f"trained on ≤ {n_train} digits")
    axes.set_xlabel("operand digits")
    axes.set_ylabel("exact-match accuracy (%)")
    axes.set_ylim(-3, 103)
    axes.set_xticks(table.lengths)
    axes.set_title(f"{_group_title(table)}, {_steps_text(table)}")
    if len(table.configurations) + len(table.theory) <= 20:
        axes.legend(fontsize="small")
    return png_bytes(figure)


def _heatmap(records: Sequence[Mapping]) -> bytes:
    latest = latest_records(records)
    names = sorted({(r["group"], r["member_name"]) for r in latest})
    lengths = sorted({r["length"] for r in latest})
    acc_MxL = np.full((len(names), len(lengths)), np.nan)
    row, column = {name: i for i, name in enumerate(names)}, {n: i for i, n in enumerate(lengths)}
    for r in latest:
        if r["acc"] is not None:  # null: the measurement was not finite
            acc_MxL[row[r["group"], r["member_name"]], column[r["length"]]] = r["acc"]
    return heatmap_png(
        acc_MxL, [name for _, name in names], lengths, "exact-match accuracy, latest evaluation"
    )


def _read_config(workdir: str) -> dict:
    path = workdir_lib.join(workdir, workdir_lib.CONFIG_FILE)
    try:
        return json.loads(workdir_lib.read_text(path))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as error:
        raise ConfigError(workdir_lib.CONFIG_FILE, f"is not JSON ({error}) in {path}") from None


def gather(workdir: str) -> tuple[list[dict], dict, list[str]]:
    """(every record, the config, the workdirs read) of `workdir`, or of all its shares when
    a sweep was split over slices; the config is the first share's, less its share."""
    parts = workdir_lib.shares(workdir)
    records = [record for part in parts for record in read_results(part)]
    config = _read_config(parts[0])
    if "population" in config:
        config["population"] = dict(config["population"], shard="")
    return records, config, parts


def write_report(workdir: str) -> str:
    """Writes ``<workdir>/report/report.md`` and its PNGs; returns the Markdown file's path."""
    records, config, parts = gather(workdir)
    if not records:
        raise ConfigError(
            "--workdir",
            f"{workdir} has no evaluation results yet (nothing in {workdir_lib.RESULTS_DIR}/); "
            "report after the first evaluation",
        )
    task_config = config.get("task", {})
    task = task_config.get("name", records[0]["task"])
    report_dir = workdir_lib.join(workdir, workdir_lib.REPORT_DIR)
    workdir_lib.make_dirs(report_dir)
    tables = _group_tables(records)

    sampling = task_config.get("train_sampling")
    num_members = len({r["member_name"] for r in records})
    lines = [
        f"# arith_jax report: {_base_name(workdir)}",
        "",
        *_shares_note(workdir, parts),
        f"Task `{task}`" + (f", trained on operand lengths `{sampling}`" if sampling else "")
        + f"; {num_members} members in {len(tables)} group(s), each at its latest evaluation.",
        "",
        "Cells: accuracy (%) at each operand length (columns), mean ± std over the members of a "
        "configuration (n of them; seeds and data seeds vary within one). Theory rows: the "
        "prediction of Xu et al. (ACL 2025) for a model that only uses the operands' last "
        "n_train digits; asymptotic: gcd(p, 10^n_train)/p.",
    ]
    for comparison in published.parse(config.get("report", {}).get("published", "")):
        title, header, rows = published_comparison(records, comparison, sampling or "")
        lines += ["", f"## {title}", "", "Measured: mean ± std over seeds [worst seed].", "",
                  _markdown_table(header, rows)]
    for table in tables:
        lines += ["", f"## {_group_title(table).capitalize()} ({_steps_text(table)})"]
        for metric in METRIC_TITLES:
            if _has_metric(table, metric):
                header, rows = _table_rows(table, metric)
                lines += ["", f"### {METRIC_TITLES[metric]} (%)", "", _markdown_table(header, rows)]
        plot_file = f"accuracy_vs_length_{safe_file_name(table.group) or 'all'}.png"
        write_atomically(workdir_lib.join(report_dir, plot_file), _accuracy_plot(table))
        lines += ["", f"![accuracy vs length, {_group_title(table)}]({plot_file})"]

    select_lengths = tuple(config.get("eval", {}).get("select_lengths", ()))
    if select_lengths:
        selected = best_records(records, select_lengths)
        chosen = sorted({(r["member_name"], r["step"]) for r in selected})
        lines += ["", f"## Selected checkpoints: best mean exact match at lengths {', '.join(map(str, select_lengths))}",
                  "", "Step per member: " + "; ".join(f"{name} {step}" for name, step in chosen) + "."]
        for table in _group_tables(selected):
            for metric in METRIC_TITLES:
                if _has_metric(table, metric):
                    header, rows = _table_rows(table, metric)
                    lines += ["", f"### {_group_title(table).capitalize()}, selected: {METRIC_TITLES[metric]} (%)", "",
                              _markdown_table(header, rows)]
    write_atomically(workdir_lib.join(report_dir, HEATMAP_FILE), _heatmap(records))
    lines += ["", "## Every member", "", f"![member x length accuracy]({HEATMAP_FILE})", ""]
    report_path = workdir_lib.join(report_dir, REPORT_FILE)
    write_atomically(report_path, "\n".join(lines).encode("utf-8"))
    return report_path


def _base_name(workdir: str) -> str:
    return os.path.basename(str(workdir).rstrip("/") if workdir_lib.is_url(workdir) else os.path.abspath(workdir))


def _shares_note(workdir: str, parts: list[str]) -> list[str]:
    """For a sweep split over slices: which shares the report merged, and which it lacks."""
    if parts == [workdir]:
        return []
    missing = workdir_lib.missing_shares(parts)
    note = f"Merged from {len(parts)} shares of the sweep."
    if missing:
        note += f" Not yet started (no results): {', '.join(missing)}."
    return [note, ""]
