"""TensorBoard runs read back by TensorBoard itself, results.jsonl, member names, progress lines."""

import io
import json
import os
import re

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from arith_jax import workdir as workdir_lib
from arith_jax import writers
from arith_jax.errors import ConfigError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------
# member_names


@pytest.mark.parametrize(
    "members, expected",
    [
        (
            [{"p": 101, "seed": 1, "lr": 1e-3}, {"p": 100, "seed": 1, "lr": 1e-3}],
            ["p=101", "p=100"],
        ),
        (  # seeds last, the rest alphabetical
            [{"seed": 0, "p": 100, "data_seed": 0}, {"seed": 1, "p": 101, "data_seed": 2}],
            ["p=100,data_seed=0,seed=0", "p=101,data_seed=2,seed=1"],
        ),
        ([{"p": 101, "seed": 1}], ["member"]),
        (  # float32 values print as the number the user wrote
            [{"lr": np.float32(1e-3)}, {"lr": np.float32(3e-4)}],
            ["lr=0.001", "lr=0.0003"],
        ),
        (  # characters a path or URL would trip on are replaced
            [{"preset": "a/b c"}, {"preset": "nano"}],
            ["preset=a_b_c", "preset=nano"],
        ),
        (  # a field only some members have still names them
            [{"seed": 0}, {"seed": 0, "pe": "rope"}],
            ["member", "pe=rope"],
        ),
        (  # values equal to printed precision: told apart by position
            [{"lr": 0.001}, {"lr": 0.0010000001}],
            ["member,index=0", "member,index=1"],
        ),
    ],
)
def test_member_names(members, expected):
    assert writers.member_names(members) == expected


members_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "p": st.integers(2, 10**6),
            "seed": st.integers(0, 3),
            "pe": st.sampled_from(["learned", "rope", "fire"]),
            "lr": st.sampled_from([1e-3, 3e-4]),
        }
    ),
    min_size=2,
    max_size=8,
    unique_by=lambda m: tuple(sorted(m.items())),
)


@settings(max_examples=40, deadline=None)
@given(members_strategy)
def test_member_names_are_unique_safe_and_name_what_varies(members):
    names = writers.member_names(members)
    assert len(set(names)) == len(names)
    varying = {k for k in members[0] if len({m[k] for m in members}) > 1}
    for member, name in zip(members, names):
        assert re.fullmatch(r"[A-Za-z0-9._=,+-]+", name)
        assert dict(part.split("=") for part in name.split(",")) == {k: str(member[k]) for k in varying}


# ---------------------------------------------------------------------------------------
# TensorBoard


MEMBERS = [{"p": p, "seed": seed, "lr": 1e-3} for p, seed in [(100, 0), (101, 0), (101, 1)]]
NAMES = writers.member_names(MEMBERS)
LOSS_BY_STEP = {10: np.array([2.5, np.nan, 1.25], np.float32), 20: np.array([0.5, 0.75, np.inf], np.float32)}
ACC_MxL = np.array([[1.0, 0.98], [1.0, 0.01], [0.99, np.nan]])


def accumulator(workdir, run):
    events = EventAccumulator(os.path.join(workdir, "tb", run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def tensorboard_workdir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("tb_run"))
    writer = writers.TensorBoardWriter(workdir, NAMES, MEMBERS, eval_lengths=[1, 2])
    for step, loss_M in LOSS_BY_STEP.items():
        writer.scalars(step, {"train/loss": loss_M, "train/lr": np.full(3, 1e-3)})
    writer.scalars(20, {"eval/acc/len_2": ACC_MxL[:, 1]})
    writer.heatmap(20, ACC_MxL, NAMES, [1, 2])
    writer.close()
    return workdir


def test_tensorboard_serves_the_scalars_written_and_skips_non_finite(tensorboard_workdir):
    for m, name in enumerate(NAMES):
        events = accumulator(tensorboard_workdir, name)
        written = {
            step: float(loss_M[m]) for step, loss_M in LOSS_BY_STEP.items() if np.isfinite(loss_M[m])
        }
        served = {e.step: e.value for e in events.Scalars("train/loss")}
        assert served == pytest.approx(written)
        assert [e.value for e in events.Scalars("train/lr")] == pytest.approx([1e-3, 1e-3])
        if np.isfinite(ACC_MxL[m, 1]):
            assert [(e.step, e.value) for e in events.Scalars("eval/acc/len_2")] == [
                (20, pytest.approx(ACC_MxL[m, 1]))
            ]
        else:
            assert "eval/acc/len_2" not in events.Tags()["scalars"]


def test_tensorboard_population_run_holds_the_heatmap_image(tensorboard_workdir):
    (image,) = accumulator(tensorboard_workdir, workdir_lib.POPULATION_RUN).Images(writers.HEATMAP_TAG)
    assert image.step == 20
    assert image.encoded_image_string.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(io.BytesIO(image.encoded_image_string), format="png")
    assert pixels.shape[:2] == (image.height, image.width)


def test_tensorboard_hparams_plugin_sees_sessions_and_experiment(tensorboard_workdir):
    for member, name in zip(MEMBERS, NAMES):
        content = accumulator(tensorboard_workdir, name).PluginTagToContent(hparams_metadata.PLUGIN_NAME)
        session = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
        assert session.group_name == name
        assert {k: v.number_value for k, v in session.hparams.items()} == pytest.approx(member)

    content = accumulator(tensorboard_workdir, workdir_lib.POPULATION_RUN).PluginTagToContent(
        hparams_metadata.PLUGIN_NAME
    )
    experiment = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    domains = {h.name: [v.number_value for v in h.domain_discrete.values] for h in experiment.hparam_infos}
    assert domains == {"lr": [1e-3], "p": [100, 101], "seed": [0, 1]}
    assert [m.name.tag for m in experiment.metric_infos] == ["train/loss", "eval/acc/len_1", "eval/acc/len_2"]


def test_tensorboard_resume_replaces_what_the_killed_run_wrote_after_its_checkpoint(tmp_path):
    names, hparams = ["seed=0", "seed=1"], [{"seed": 0}, {"seed": 1}]
    first = writers.TensorBoardWriter(str(tmp_path), names, hparams)
    for step in range(1, 6):
        first.scalars(step, {"train/loss": np.full(2, float(step))})
    first.close()
    resumed = writers.TensorBoardWriter(str(tmp_path), names, hparams, resume_step=3)
    resumed.scalars(5, {"train/loss": np.full(2, 50.0)})
    resumed.close()
    served = [(e.step, e.value) for e in accumulator(str(tmp_path), "seed=1").Scalars("train/loss")]
    assert served == [(1, 1.0), (2, 2.0), (3, 3.0), (5, 50.0)]


def test_tensorboard_event_files_are_written_whole_and_never_appended_to(tmp_path):
    """Object stores cannot append: each flush writes new files, and a file once written
    never changes. A flush within flush_secs of the last writes nothing until forced."""
    workdir = str(tmp_path)
    writer = writers.TensorBoardWriter(workdir, NAMES, MEMBERS, flush_secs=3600)
    run_dir = tmp_path / "tb" / NAMES[0]

    def files():
        return {path.name: path.read_bytes() for path in run_dir.iterdir()}

    first = files()
    assert len(first) == 1
    writer.scalars(10, {"train/loss": np.ones(3)})
    writer.flush()  # within flush_secs: buffered
    assert files() == first
    writer.flush(force=True)
    second = files()
    assert len(second) == 2 and {k: second[k] for k in first} == first
    assert sorted(second) == sorted(second, key=lambda name: name.split(".")[-1])  # name order = writing order
    writer.close()  # nothing pending: no empty file
    assert files() == second
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp")]
    assert [e.step for e in accumulator(workdir, NAMES[0]).Scalars("train/loss")] == [10]


def test_tensorboard_rejects_values_not_one_per_member(tmp_path):
    writer = writers.TensorBoardWriter(str(tmp_path), NAMES, MEMBERS)
    with pytest.raises(ValueError, match=r"train/loss: expected shape \(3,\), got \(2,\)"):
        writer.scalars(1, {"train/loss": np.zeros(2)})


# ---------------------------------------------------------------------------------------
# results


def record(step, length, acc=0.5, member_name="p=101,seed=1"):
    return {"group": "pe=learned", "member": {"p": 101, "seed": 1}, "member_name": member_name,
            "task": "mod_add", "n_train": 2, "step": step, "length": length, "acc": acc,
            "digit_acc": 0.9, "equiv_acc": None, "theory": None, "theory_asymptotic": None}


def test_results_round_trip_numpy_values_and_non_finite_as_null(tmp_path):
    results = writers.ResultsWriter(str(tmp_path))
    results.append([record(np.int64(100), np.int32(3), acc=np.float32(0.25))])
    results.append([record(200, 3, acc=float("nan")), record(200, 4, acc=np.float64(0.125))])
    read = writers.read_results(str(tmp_path))
    assert [(r["step"], r["length"], r["acc"]) for r in read] == [
        (100, 3, 0.25), (200, 3, None), (200, 4, 0.125)
    ]
    assert read[0] == record(100, 3, acc=0.25)
    assert sorted(os.listdir(tmp_path / "results")) == ["step_000000100.jsonl", "step_000000200.jsonl"]
    with open(workdir_lib.results_file(str(tmp_path), 200)) as file:
        assert all(json.loads(line) for line in file)  # strict JSON: no NaN literals


def test_results_of_one_step_written_twice_keep_both(tmp_path):
    results = writers.ResultsWriter(str(tmp_path))
    results.append([record(100, 1)])
    results.append([record(100, 2)])
    assert [(r["step"], r["length"]) for r in writers.read_results(str(tmp_path))] == [(100, 1), (100, 2)]


def test_read_results_of_an_older_workdir_skips_its_half_written_last_line(tmp_path):
    with open(tmp_path / workdir_lib.LEGACY_RESULTS_FILE, "w") as file:
        file.write(json.dumps(record(100, 1)) + "\n" + json.dumps(record(200, 1))[:40])
    writers.ResultsWriter(str(tmp_path)).append([record(300, 1)])
    assert [(r["step"], r["length"]) for r in writers.read_results(str(tmp_path))] == [(100, 1), (300, 1)]


def test_read_results_of_a_workdir_without_results_is_empty(tmp_path):
    assert writers.read_results(str(tmp_path)) == []


def test_read_results_rejects_a_corrupt_line(tmp_path):
    writers.ResultsWriter(str(tmp_path)).append([record(100, 1), record(100, 2)])
    path = workdir_lib.results_file(str(tmp_path), 100)
    with open(path) as file:
        lines = file.read().splitlines()
    with open(path, "w") as file:
        file.write("\n".join([lines[0], "{oops", lines[1]]) + "\n")
    with pytest.raises(ConfigError, match=r"^results: line 2 is not JSON .* in .*step_000000100\.jsonl$"):
        writers.read_results(str(tmp_path))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=12), st.integers(0, 50))
def test_truncate_after_keeps_exactly_the_records_up_to_the_checkpoint(tmp_path_factory, steps, resume_step):
    workdir = str(tmp_path_factory.mktemp("results"))
    results = writers.ResultsWriter(workdir)
    results.append([record(step, i) for i, step in enumerate(steps)])
    results.truncate_after(resume_step)
    kept = sorted(((i, step) for i, step in enumerate(steps) if step <= resume_step), key=lambda r: r[1])
    assert [(r["length"], r["step"]) for r in writers.read_results(workdir)] == kept
    results.append([record(resume_step + 1, 99)])  # writing after the truncation stays valid
    assert writers.read_results(workdir)[-1]["length"] == 99
    assert os.listdir(workdir) == ["results"]
    assert len(os.listdir(os.path.join(workdir, "results"))) == len({s for s in steps if s <= resume_step}) + 1


def test_truncate_after_also_cuts_an_older_workdirs_single_file(tmp_path):
    with open(tmp_path / workdir_lib.LEGACY_RESULTS_FILE, "w") as file:
        file.write("".join(json.dumps(record(step, 1)) + "\n" for step in (10, 20, 30)) + '{"step": 4')
    writers.ResultsWriter(str(tmp_path)).truncate_after(20)
    assert [r["step"] for r in writers.read_results(str(tmp_path))] == [10, 20]


# ---------------------------------------------------------------------------------------
# Progress


def test_progress_prints_plain_lines_when_not_a_terminal(capsys):
    with writers.Progress(total_steps=2000, members=3) as progress:
        progress.update(400, np.array([0.31, 0.52, 0.4]), 2.0)
        progress.update(1000, np.array([0.2, np.nan, 0.1]), 4.0, acc_M=np.array([0.01, 0.99, 0.5]))
        progress.log("evaluated at step 1000")
        progress.update(1990, np.array([0.1, 0.1, 0.1]), 10.0)
        progress.update(2000, np.array([np.nan] * 3), 0.0)
    assert capsys.readouterr().out.splitlines() == [
        "step 400/2000  2.0 steps/s  eta 13m  loss 0.31..0.52",
        "step 1000/2000  4.0 steps/s  eta 4m  loss 0.1..0.2 (1 non-finite)  acc best 0.99 worst 0.01",
        "evaluated at step 1000",
        "step 1990/2000  10.0 steps/s  eta 1s  loss 0.1..0.1  acc best 0.99 worst 0.01",
        "step 2000/2000  0.0 steps/s  eta ?  loss nan  acc best 0.99 worst 0.01",
    ]


def test_progress_formats_long_etas_in_hours(capsys):
    with writers.Progress(total_steps=7600, members=1) as progress:
        progress.update(100, np.array([1.0]), 1.0)
    assert capsys.readouterr().out == "step 100/7600  1.0 steps/s  eta 2h05m  loss 1..1\n"


def test_progress_disabled_prints_nothing(capsys):
    with writers.Progress(total_steps=10, members=1, enabled=False) as progress:
        progress.update(5, np.array([1.0]), 1.0)
        progress.log("hidden")
    assert capsys.readouterr().out == ""


def test_progress_on_a_terminal_draws_a_rich_bar_and_logs_above_it(capsys, monkeypatch):
    monkeypatch.setattr(writers.sys.stdout, "isatty", lambda: True)
    with writers.Progress(total_steps=10, members=2) as progress:
        progress.update(5, np.array([1.0, 2.0]), 1.0, acc_M=np.array([0.5, 0.25]))
        progress.log("checkpoint saved")
    assert "checkpoint saved" in capsys.readouterr().out
