"""The report of a tiny synthetic results.jsonl: tables, means over seeds, theory rows, PNGs."""

import json
import math
import os
import re
import statistics

import matplotlib.image
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_jax import report, writers
from arith_jax.errors import ConfigError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODULI = (100, 101)
SEEDS = (0, 1, 2)
LENGTHS = range(1, 7)
N_TRAIN = 2
FINAL_STEP = 1000


def theory(p, length):
    # Trained on 2 digits, both moduli need no more than the last 2 digits up to length 2.
    return 1.0 if length <= N_TRAIN else math.gcd(p, 10**N_TRAIN) / p


def acc(p, seed, length):
    if theory(p, length) == 1.0:
        return 0.9 + 0.04 * seed - 0.01 * length
    return 0.02 + 0.01 * seed  # above the theory's 0.99%: seeds do a little better by luck


def make_records(step, members=None, names=None):
    members = members or [{"p": p, "seed": s, "lr": 1e-3} for p in MODULI for s in SEEDS]
    names = names or writers.member_names(members)
    return [
        {"group": "pe=learned", "member": m, "member_name": name, "task": "mod_add", "n_train": N_TRAIN,
         "step": step, "length": n, "acc": acc(m["p"], m["seed"], n) if step == FINAL_STEP else 0.5,
         "digit_acc": 0.9, "equiv_acc": 0.97 if n > N_TRAIN else None, "theory": theory(m["p"], n),
         "theory_asymptotic": math.gcd(m["p"], 10**N_TRAIN) / m["p"]}
        for m, name in zip(members, names)
        for n in LENGTHS
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    with open(os.path.join(workdir, "config.json"), "w") as file:
        json.dump({"task": {"name": "mod_add", "train_sampling": "below:2"}}, file)
    results = writers.ResultsWriter(workdir)
    results.append(make_records(500))  # an earlier evaluation the report must not use
    results.append(make_records(FINAL_STEP))
    return workdir


@pytest.fixture(scope="module")
def report_text(workdir):
    with open(report.write_report(workdir)) as file:
        return file.read()


def expected_cell(p, length):
    values = [acc(p, s, length) for s in SEEDS]
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def test_report_tables_hold_means_over_seeds_of_the_latest_step(report_text):
    assert "Task `mod_add`, trained on operand lengths `below:2`; 6 members in 1 group(s)" in report_text
    assert "## Group pe=learned (step 1000)" in report_text
    assert "| configuration | n | 1 | 2 | 3 | 4 | 5 | 6 | asymptotic |" in report_text
    for p in MODULI:
        row = f"| p={p} | 3 | " + " | ".join(expected_cell(p, n) for n in LENGTHS) + " |  |"
        assert row in report_text


def test_report_theory_row_follows_each_modulus(report_text):
    table = report_text.split("### Exact-match accuracy (%)")[1].split("###")[0]
    labels = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert labels == ["configuration", ":--", "p=100", "theory p=100", "p=101", "theory p=101"]
    assert "| theory p=101 |  | 100.0 | 100.0 | 0.99 | 0.99 | 0.99 | 0.99 | 0.99 |" in report_text
    assert "| theory p=100 |  | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in report_text


def test_report_equivalence_table_appears_where_measured(report_text):
    equivalence = report_text.split("### Equivalence accuracy (%)")[1]
    assert "| p=101 | 3 | - | - | 97.0 ± 0.0 | 97.0 ± 0.0 | 97.0 ± 0.0 | 97.0 ± 0.0 |" in equivalence


def test_report_pngs_are_valid_images_linked_from_the_markdown(workdir, report_text):
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report_text)
    assert linked == ["accuracy_vs_length_pe=learned.png", "heatmap.png"]
    for name in linked:
        path = os.path.join(workdir, "report", name)
        with open(path, "rb") as file:
            assert file.read(8) == PNG_SIGNATURE
        height, width, channels = matplotlib.image.imread(path).shape
        assert height > 100 and width > 100 and channels == 4


def test_report_rerun_on_a_running_workdir_is_safe(workdir, report_text):
    path = report.write_report(workdir)
    with open(path) as file:
        assert file.read() == report_text
    # Training goes on: a new evaluation of one member arrives, a second is being written
    # (its temporary file is there, not yet renamed).
    members = [{"p": 100, "seed": 0, "lr": 1e-3}]
    later = make_records(FINAL_STEP + 500, members, ["p=100,seed=0"])
    writers.ResultsWriter(workdir).append(later)
    with open(os.path.join(workdir, "results", ".tmp.1234.0"), "w") as file:
        file.write('{"group": "pe=learned", "memb')
    with open(report.write_report(workdir)) as file:
        assert "## Group pe=learned (steps 1000..1500)" in file.read()
    assert sorted(os.listdir(os.path.join(workdir, "report"))) == [
        "accuracy_vs_length_pe=learned.png", "heatmap.png", "report.md"
    ]


def test_report_without_results_names_the_workdir(tmp_path):
    with pytest.raises(ConfigError, match=r"^--workdir: .* has no evaluation results yet"):
        report.write_report(str(tmp_path))


def test_format_table_aligns_columns_with_theory_last_per_modulus():
    table = report.format_table(make_records(FINAL_STEP))
    title, header, *rows = table.splitlines()
    assert title == "Exact-match accuracy (%) by operand digits, group pe=learned, step 1000"
    assert header.split() == ["configuration", "n", "1", "2", "3", "4", "5", "6", "asymptotic"]
    assert [row.split("  ")[0].strip() for row in rows] == ["p=100", "theory p=100", "p=101", "theory p=101"]
    # Right-aligned: every row's cell for length 6 ends under the header's "6".
    end_of_6 = header.index(" 6 ") + 2
    assert rows[0].endswith(expected_cell(100, 6)) and len(rows[0]) == end_of_6
    assert rows[1][:end_of_6].endswith(" 100.0")
    assert len(rows[3]) == len(header)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_format_table_cell_is_mean_and_sample_std_over_seeds(accuracies):
    members = [{"p": 7, "seed": s} for s in range(len(accuracies))]
    records = [
        {"group": "", "member": m, "member_name": f"seed={m['seed']}", "task": "mod_mul", "n_train": 1,
         "step": 10, "length": 3, "acc": a, "theory": None, "theory_asymptotic": None}
        for m, a in zip(members, accuracies)
    ]
    title, _, row = report.format_table(records).splitlines()
    assert title == "Exact-match accuracy (%) by operand digits, all members, step 10"
    label, n, *cell = row.split()
    assert (label, n) == ("all", str(len(accuracies)))
    assert float(cell[0]) == pytest.approx(100 * statistics.mean(accuracies), rel=0.05, abs=0.05)
    if len(accuracies) > 1:
        assert cell[1] == "±"
        assert float(cell[2]) == pytest.approx(100 * statistics.stdev(accuracies), rel=0.05, abs=0.05)


def test_format_table_has_one_section_per_group_and_labels_what_varies_in_it():
    members = [{"pe": pe, "p": 101, "lr": lr, "seed": 0} for pe in ("rope", "learned") for lr in (1e-3, 3e-4)]
    names = writers.member_names(members)
    records = [
        {**r, "group": f"pe={m['pe']}"}
        for m, name in zip(members, names)
        for r in make_records(FINAL_STEP, [m], [name])
    ]
    sections = report.format_table(records).split("\n\n")
    assert [s.splitlines()[0] for s in sections] == [
        "Exact-match accuracy (%) by operand digits, group pe=learned, step 1000",
        "Exact-match accuracy (%) by operand digits, group pe=rope, step 1000",
    ]
    for section in sections:
        labels = [row.split("  ")[0].strip() for row in section.splitlines()[2:]]
        assert labels == ["lr=0.0003", "lr=0.001", "theory p=101"]


def _published_workdir(path, published, train_sampling="below:2"):
    with open(os.path.join(path, "config.json"), "w") as file:
        json.dump({"task": {"name": "mod_add", "train_sampling": train_sampling}, "report": {"published": published}},
                  file)
    writers.ResultsWriter(str(path)).append(make_records(FINAL_STEP))
    return str(path)


def test_report_puts_the_published_table_beside_measured_and_theory(tmp_path):
    workdir = _published_workdir(tmp_path, "acl2025_mod_addition")
    title, header, *rows = report.format_published(workdir).splitlines()
    assert title.startswith("Exact-match accuracy (%): measured vs published, Xu et al., ACL 2025, modular addition")
    assert header.split() == ["configuration", "n", "1", "2", "3", "4", "5", "6"]
    cells = [re.split(r"\s{2,}", row.strip()) for row in rows]
    worst = lambda p, n: f"{expected_cell(p, n)} [{100 * min(acc(p, s, n) for s in SEEDS):.1f}]"
    assert cells[0] == ["p=100", "3", "measured", *(worst(100, n) for n in LENGTHS)]
    assert cells[1] == ["published", "-", "-", "-", "100.0", "100.0", "100.0"]
    assert cells[2] == ["theory", "100.0", "100.0", "100.0", "100.0", "100.0", "100.0"]
    assert cells[4] == ["published", "-", "-", "-", "100.0", "0.0", "1.2"]  # p=101: 0 at 5, 1.2 at 6
    assert cells[5] == ["theory", "100.0", "100.0", "0.99", "0.99", "0.99", "0.99"]
    with open(report.write_report(workdir)) as file:
        text = file.read()
    assert "## Exact-match accuracy (%): measured vs published, Xu et al., ACL 2025" in text
    assert "| p=101 | 3 | measured | " in text and "|  |  | published | - | - | - | 100.0 | 0.0 | 1.2 |" in text


def test_published_rows_match_members_by_training_distribution(tmp_path):
    from arith_jax import published
    table = published.TABLES["acl2025_addition"]
    assert table.row_key({"train_digits": 4}, "dn:{n}") == "dn:4@1"
    assert table.row_key({"train_sampling": "dn:4@1,dn:5@1"}, "below:2") == "dn:4@0.5,dn:5@0.5"
    assert table.row_key({"train_sampling": "exact:4"}, "below:2") == "exact:4@1"
    assert table.row_key({"train_sampling": "dn:9"}, "below:2") is None
    # A run two digits shorter than the paper: D2 is compared with D4, length i - 2 with length i.
    assert table.row_key({"train_sampling": "dn:2@1,dn:3@1"}, "below:2", shift=-2) == "dn:4@0.5,dn:5@0.5"
    assert table.row({"train_sampling": "exact:2"}, "below:2", shift=-2) == {1: 72.6, 2: 100, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0}
    assert table.row_key({"train_sampling": "dn:1"}, "below:2", shift=2) is None  # D_-1 is no row
    # No published row: measured and theory only, published dashes.
    workdir = _published_workdir(tmp_path, "acl2025_addition")
    rows = report.format_published(workdir).splitlines()[2:]
    assert re.split(r"\s{2,}", rows[1].strip()) == ["published"] + ["-"] * 6


def test_a_shifted_published_table_sits_beside_the_shorter_run(tmp_path):
    workdir = _published_workdir(tmp_path, "acl2025_mod_addition:-2")
    title, header, *rows = report.format_published(workdir).splitlines()
    assert title.endswith("its rows and lengths are moved by -2 to sit at the same place relative to the training length")
    cells = [re.split(r"\s{2,}", row.strip()) for row in rows]
    assert cells[1] == ["published", "-", "100.0", "100.0", "100.0", "100.0", "100.0"]  # the paper's 4..9 at 2..7
    assert cells[4] == ["published", "-", "100.0", "0.0", "1.2", "0.9", "1.1"]  # p=101


def test_an_unknown_published_table_is_a_one_line_error():
    from arith_jax import population
    from tiny_config import tiny_config
    with pytest.raises(ConfigError, match=r"^report\.published: unknown table 'acl2026'; allowed: acl2025_mod_addition, "):
        population.plan(tiny_config(report__published="acl2025_addition,acl2026"))
    with pytest.raises(ConfigError, match=r"^report\.published: 'acl2025_addition:two': the digit shift after ':' "
                                          r"must be an integer, e.g\. acl2025_addition:-2$"):
        population.plan(tiny_config(report__published="acl2025_addition:two"))


def test_best_records_pick_each_members_best_step_on_the_selection_lengths():
    # Step 500 scores 0.5 everywhere; step 1000 is better at short lengths, worse at long ones
    # for p = 101 (0.02-0.04), better for p = 100 (0.84-0.94): p = 101 selects step 500.
    records = make_records(500) + make_records(FINAL_STEP)
    selected = report.best_records(records, (5, 6))
    steps = {(r["member"]["p"], r["member"]["seed"]): r["step"] for r in selected}
    assert steps == {**{(100, s): FINAL_STEP for s in SEEDS}, **{(101, s): 500 for s in SEEDS}}
    assert len(selected) == len(SEEDS) * len(MODULI) * len(LENGTHS)  # every length of the chosen step
    tie = make_records(500) + make_records(700)
    assert {r["step"] for r in report.best_records(tie, (3,))} == {700}  # equal scores: the latest


def test_report_adds_the_selected_tables_when_asked(tmp_path):
    with open(os.path.join(tmp_path, "config.json"), "w") as file:
        json.dump({"task": {"name": "mod_add", "train_sampling": "below:2"}, "eval": {"select_lengths": [5, 6]}},
                  file)
    results = writers.ResultsWriter(str(tmp_path))
    results.append(make_records(500))
    results.append(make_records(FINAL_STEP))
    with open(report.write_report(str(tmp_path))) as file:
        text = file.read()
    assert "## Selected checkpoints: best mean exact match at lengths 5, 6" in text
    assert "p=101,seed=0 500" in text and "p=100,seed=0 1000" in text
    assert "| p=101 | 3 | 50.0 ± 0.0 | 50.0 ± 0.0 |" in text  # the selected step's every length


def test_report_of_a_split_sweep_merges_its_shares_and_names_the_missing_one(tmp_path, workdir, report_text):
    """Three of four shares of the fixture's population, each a workdir of its own under one
    parent: the parent's report equals the unsplit report, plus a line on the shares."""
    members = [{"p": p, "seed": s, "lr": 1e-3} for p in MODULI for s in SEEDS]
    names = writers.member_names(members)
    for i, (lo, hi) in enumerate([(0, 2), (2, 4), (4, 6)]):
        share = tmp_path / f"share-{i}-of-4"
        share.mkdir()
        (share / "config.json").write_text(json.dumps(
            {"task": {"name": "mod_add", "train_sampling": "below:2"}, "population": {"shard": f"{i}/4"}}))
        results = writers.ResultsWriter(str(share))
        results.append(make_records(500, members[lo:hi], names[lo:hi]))
        results.append(make_records(FINAL_STEP, members[lo:hi], names[lo:hi]))
    with open(report.write_report(str(tmp_path))) as file:
        merged = file.read().splitlines()
    expected = report_text.splitlines()
    assert merged[0] == f"# arith_jax report: {tmp_path.name}"
    assert merged[2:4] == ["Merged from 3 shares of the sweep. Not yet started (no results): share-3-of-4.", ""]
    assert merged[4:] == expected[2:]
