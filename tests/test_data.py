"""Data sources: online determinism, finite sets (distinct, disjoint, seeded), grain file streams."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arith_jax import data, tasks
from arith_jax.errors import ConfigError

MODULI = jnp.asarray([7, 1000], jnp.int32)  # one per member
KEYS = jnp.stack([jax.random.key_data(jax.random.key(seed)) for seed in (0, 1)])  # raw keys, as the trainer's


def member_batches(source, member_data, host_step, step):
    """source.batch for both members, vmapped the way the trainer does it."""
    program = jax.jit(jax.vmap(source.batch, in_axes=(0, 0, 0, None, 0)))
    return jax.device_get(program(member_data, host_step, KEYS, step, MODULI))


def pairs_of(batch_a, batch_b):
    return [(tasks.digits_to_int(a), tasks.digits_to_int(b)) for a, b in zip(batch_a, batch_b)]


def assert_answers_right(spec, batch, moduli=(7, 1000)):
    for member, p in enumerate(moduli):
        for a, b, c in zip(batch.a[member], batch.b[member], batch.c[member]):
            a, b = tasks.digits_to_int(a), tasks.digits_to_int(b)
            expected = (a + b) % p if spec.name == "mod_add" else a + b
            assert tasks.digits_to_int(c) == expected


# ----------------------------------------------------------------------------------------
# Online
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def online():
    spec = tasks.TaskSpec("mod_add", 3, tasks.Format.parse("reverse_result"), 1000)
    source = data.make_source("online", spec, tasks.Sampling.parse("uniform:1-3"), 16)
    program = jax.jit(jax.vmap(source.batch, in_axes=(None, None, 0, None, 0)))
    return spec, source, lambda step: jax.device_get(program(None, None, KEYS, step, MODULI))


def test_online_is_a_function_of_key_and_step(online):
    spec, source, batch_at = online
    assert source.device_data([0, 1]) is None and source.next_host_chunk(5) is None and source.get_state() == {}
    first, again, later = batch_at(3), batch_at(3), batch_at(4)
    np.testing.assert_array_equal(first.tokens, again.tokens)
    assert not np.array_equal(first.tokens, later.tokens)
    assert not np.array_equal(first.a[0], first.a[1])  # members draw from their own keys
    assert_answers_right(spec, first)
    assert first.answer_mask.sum(axis=-1).min() >= 2  # at least one digit and the EOS


# ----------------------------------------------------------------------------------------
# Finite
# ----------------------------------------------------------------------------------------

ONE_DIGIT = tasks.TaskSpec("add", 2, tasks.Format())
EVAL_SET = (np.asarray([[1, 0], [3, 0], [9, 0]]), np.asarray([[2, 0], [4, 0], [9, 0]]))  # 1+2, 3+4, 9+9
WIDE_EVAL_SET = (np.asarray([[5, 0, 0], [5, 0, 1]]), np.asarray([[6, 0, 0], [6, 0, 0]]))  # 5+6; 105+6 can't occur


@pytest.fixture(scope="module")
def finite():
    return data.FiniteSource(ONE_DIGIT, tasks.Sampling.parse("below:1"), 8, 90, exclude=[EVAL_SET, WIDE_EVAL_SET])


def test_finite_set_is_distinct_disjoint_and_seeded(finite):
    a, b = finite.distinct_pairs(0)
    assert a.dtype == np.int8 and a.shape == (90, 2)
    pairs = pairs_of(a, b)
    assert len(set(pairs)) == 90
    assert not {(1, 2), (3, 4), (9, 9), (5, 6)} & set(pairs)
    assert all(x < 10 and y < 10 for x, y in pairs)
    assert pairs == pairs_of(*finite.distinct_pairs(0))
    assert pairs != pairs_of(*finite.distinct_pairs(1))


def test_finite_batches_come_from_the_member_set(finite):
    member_data = finite.device_data([0, 1])
    assert member_data["a"].shape == (2, 90, 2) and member_data["a"].dtype == jnp.int8
    batch = member_batches(finite, member_data, None, 5)
    for member in (0, 1):
        member_set = set(pairs_of(np.asarray(member_data["a"][member]), np.asarray(member_data["b"][member])))
        assert set(pairs_of(batch.a[member], batch.b[member])) <= member_set
    assert_answers_right(ONE_DIGIT, batch)
    assert not np.array_equal(batch.a, member_batches(finite, member_data, None, 6).a)


def test_finite_size_beyond_the_distinct_pairs_is_rejected():
    with pytest.raises(ConfigError, match=r"^data.size: 97 distinct pairs are asked for, but sampling 'below:1@1' "
                                          r"has only 96 after excluding 4 evaluation pairs"):
        data.FiniteSource(ONE_DIGIT, tasks.Sampling.parse("below:1"), 8, 97, exclude=[EVAL_SET, WIDE_EVAL_SET])
    with pytest.raises(ConfigError, match=r"^data.size: 0 is not allowed; must be an integer >= 1"):
        data.make_source("finite", ONE_DIGIT, tasks.Sampling.parse("below:1"), 8, size=0)


# ----------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------

SUMS = [(12, 34), (5, 6), (7, 8), (99, 1), (0, 0), (40, 2), (3, 300), (71, 29)]


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def sum_file(tmp_path):
    records = [f"{a}+{b}={a + b}" for a, b in SUMS]
    # Both layouts the seed papers use: one record per line, or several ';'-separated.
    text = ";\n".join(records[:4]) + ";\n " + "; ".join(records[4:]) + ";\n\n"
    return write(tmp_path / "sums.txt", text)


def test_plain_records_are_read_in_order(sum_file):
    spec = tasks.TaskSpec("add", 3, tasks.Format())
    records = data.read_records(spec, [sum_file])
    assert records.dtype == np.int8 and records.shape == (8, 2, 3)
    assert pairs_of(records[:, 0], records[:, 1]) == SUMS


def test_seed_paper_layouts_are_read(tmp_path):
    ijcai = tasks.TaskSpec("add", 5, tasks.Format.parse("ijcai2024", task="add"))
    path = write(tmp_path / "ijcai.txt", "0034900705450100\n0000100002300000\n")
    records = data.read_records(ijcai, [path])
    assert pairs_of(records[:, 0], records[:, 1]) == [(349, 705), (1, 2)]

    acl = tasks.TaskSpec("add", 3, tasks.Format.parse("acl2025"))
    line = "$" + "123".zfill(20) + "+" + "45".zfill(20) + "=" + "168".zfill(21)[::-1] + ";"
    records = data.read_records(acl, [write(tmp_path / "acl.txt", line + "\n")])
    assert pairs_of(records[:, 0], records[:, 1]) == [(123, 45)]

    hinted = tasks.TaskSpec("mul", 2, tasks.Format.parse("hints,reversed"))
    records = data.read_records(hinted, [write(tmp_path / "hints.txt", "<0>2<1>1*<0>3=<0>6<1>3;\n")])
    assert pairs_of(records[:, 0], records[:, 1]) == [(12, 3)]


def test_modular_records_are_checked_against_each_modulus(tmp_path):
    spec = tasks.TaskSpec("mod_add", 2, tasks.Format(), 100)
    path = write(tmp_path / "mod.txt", "7+8=5;\n")
    assert pairs_of(*data.read_records(spec, [path], moduli=[10]).transpose(1, 0, 2)) == [(7, 8)]
    with pytest.raises(ConfigError, match=r":1: '7\+8=5': answer 5 is wrong for modulus 11; mod_add gives 4$"):
        data.read_records(spec, [path], moduli=[10, 11])


@pytest.mark.parametrize("text, message", [
    ("1+2=3;\n12+=3;\n", r":2: '12\+=3': expected A\+B=C \(or A\*B=C\), or the digits of a padded layout$"),
    ("1+2=4;\n", r":1: '1\+2=4': answer 4 is wrong; add gives 3$"),
    ("1*2=2;\n", r":1: '1\*2=2': operator '\*', but add records use '\+'$"),
    ("1000+2=1002;\n", r":1: '1000\+2=1002': operand 1000 has more than the task's 3 digits \(task.width\)$"),
    ("123;\n", r":1: '123': a record without '\+'/'=' needs padded operands"),
    ("\n\n", r": no records \(expected lines of A\+B=C; in task.format\)$"),
])
def test_bad_records_give_one_line_with_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(ConfigError, match="^data.files: " + re.escape(path) + r".*" + message) as error:
        data.read_records(tasks.TaskSpec("add", 3, tasks.Format()), [path])
    assert "\n" not in str(error.value)


def test_unreadable_file(tmp_path):
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="^data.files: " + re.escape(missing) +
                                          r": cannot be read \(FileNotFoundError: No such file or directory\)$"):
        data.make_source("files", tasks.TaskSpec("add", 3, tasks.Format()), None, 4, paths=[missing])


def test_file_stream_shuffles_per_member_and_resumes_exactly(sum_file):
    spec = tasks.TaskSpec("add", 3, tasks.Format())
    source = data.make_source("files", spec, None, 4, paths=[sum_file])
    assert source.device_data([0, 1]) is None
    epoch = source.next_host_chunk(2)  # 2 steps x 4 = the 8 records once
    assert epoch["a"].shape == (2, 2, 4, 3) and epoch["a"].dtype == np.int8
    member_streams = [pairs_of(epoch["a"][:, m].reshape(-1, 3), epoch["b"][:, m].reshape(-1, 3)) for m in (0, 1)]
    assert sorted(member_streams[0]) == sorted(member_streams[1]) == sorted(SUMS)
    assert member_streams[0] != member_streams[1]

    saved = json.loads(json.dumps(source.get_state()))
    following = source.next_host_chunk(3)
    source.set_state(saved)
    replayed = source.next_host_chunk(3)
    for key in ("a", "b"):
        np.testing.assert_array_equal(replayed[key], following[key])

    resumed = data.make_source("files", spec, None, 4, paths=[sum_file])
    resumed.set_state(saved)  # before device_data, as a restarted trainer may do
    resumed.device_data([0, 1])
    np.testing.assert_array_equal(resumed.next_host_chunk(3)["a"], following["a"])

    host_step = jax.tree.map(lambda x: x[0], following)
    assert_answers_right(spec, member_batches(source, None, host_step, 0))


def test_unknown_source_kind():
    with pytest.raises(ConfigError, match=r"^data.source: unknown source 'stream'; allowed: online, finite, files$"):
        data.make_source("stream", ONE_DIGIT, tasks.Sampling.parse("exact:1"), 4)
