"""The task engine against Python integers: arithmetic, sampling, layouts, parsing, errors."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_jax import printing, tasks
from arith_jax.errors import ConfigError

SETTINGS = settings(max_examples=15, deadline=None)


def python_answer(name, a, b, p):
    return {"add": a + b, "mul": a * b, "mod_add": (a + b) % p, "mod_mul": (a * b) % p}[name]


def numbers_of_up_to(max_digits):
    """Integers whose digit count is uniform in [1, max_digits], so long ones are common."""
    return st.integers(1, max_digits).flatmap(lambda n: st.integers(0 if n == 1 else 10 ** (n - 1), 10**n - 1))


def as_digits(values, width):
    return np.stack([tasks.int_to_digits(v, width) for v in values])


# Jitted once per spec: eager dispatch of the many small ops is slower than compiling them.
encode = jax.jit(tasks.encode, static_argnums=0)
read_result = jax.jit(tasks.read_result, static_argnums=0)
compute_result = jax.jit(tasks.compute_result, static_argnums=0)


# ----------------------------------------------------------------------------------------
# Arithmetic on 128-digit arrays
# ----------------------------------------------------------------------------------------

WIDE = 128
ROWS = 6


@pytest.fixture(scope="module")
def wide_compute():
    """One compiled compute_result per task, for [ROWS, 128] operands."""
    return {name: jax.jit(lambda a, b, p, name=name: tasks.compute_result(name, a, b, p)) for name in tasks.TASKS}


MODULI = st.sampled_from([2, 3, 999983, 10**6]) | st.integers(2, tasks.MAX_MODULUS)


@pytest.mark.parametrize("name", tasks.TASKS)
@SETTINGS
@given(pairs=st.lists(st.tuples(numbers_of_up_to(WIDE), numbers_of_up_to(WIDE)), min_size=ROWS, max_size=ROWS),
       modulus=MODULI)
def test_compute_result_matches_python_ints(wide_compute, name, pairs, modulus):
    a_values, b_values = zip(*pairs)
    c_BxR = np.asarray(wide_compute[name](as_digits(a_values, WIDE), as_digits(b_values, WIDE), jnp.int32(modulus)))
    expected_width = {"add": WIDE + 1, "mul": 2 * WIDE}.get(name, tasks.MODULAR_RESULT_DIGITS)
    assert c_BxR.shape == (ROWS, expected_width)
    assert c_BxR.dtype == np.int32
    for a, b, c in zip(a_values, b_values, c_BxR):
        assert tasks.digits_to_int(c) == python_answer(name, a, b, modulus)


def test_extreme_operands_do_not_overflow(wide_compute):
    """All-nines and one-digit operands: the largest carries and convolution columns."""
    nines = 10**WIDE - 1
    a_values = [nines, nines, 0, 9, 1, nines]
    b_values = [nines, 1, 0, 9, nines, 10 ** (WIDE - 1)]
    a_BxW, b_BxW = as_digits(a_values, WIDE), as_digits(b_values, WIDE)
    for name in tasks.TASKS:
        for p in (2, 999983, 10**6):
            c_BxR = np.asarray(wide_compute[name](a_BxW, b_BxW, jnp.int32(p)))
            assert [tasks.digits_to_int(c) for c in c_BxR] == [python_answer(name, a, b, p)
                                                               for a, b in zip(a_values, b_values)]


# ----------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------

SAMPLE_WIDTH = 6
SAMPLE_ROWS = 512


def sample_values(text, seed=0):
    a_BxW, b_BxW = jax.jit(tasks.sample_operands, static_argnums=(1, 2, 3))(
        jax.random.key(seed), tasks.Sampling.parse(text), SAMPLE_WIDTH, SAMPLE_ROWS)
    a_BxW, b_BxW = np.asarray(a_BxW), np.asarray(b_BxW)
    assert a_BxW.dtype == np.int32 and a_BxW.shape == (SAMPLE_ROWS, SAMPLE_WIDTH)
    assert a_BxW.min() >= 0 and a_BxW.max() <= 9
    return [tasks.digits_to_int(d) for d in a_BxW], [tasks.digits_to_int(d) for d in b_BxW]


def digit_count(x):
    return len(str(x))


def test_exact_gives_exactly_n_digits():
    a, b = sample_values("exact:3")
    assert {digit_count(x) for x in a + b} == {3}
    a, b = sample_values("exact:1")
    assert set(a) == set(range(10))  # one digit includes 0


def test_below_is_uniform_below_ten_to_the_n():
    a, b = sample_values("below:2")
    assert max(a + b) < 100 and min(a + b) < 10  # short values appear (about 10% each)
    assert 40 < np.mean(a + b) < 59


def test_uniform_draws_each_length_in_range_per_operand():
    a, b = sample_values("uniform:2-4")
    lengths_a, lengths_b = [digit_count(x) for x in a], [digit_count(x) for x in b]
    assert set(lengths_a) == set(lengths_b) == {2, 3, 4}
    assert any(la != lb for la, lb in zip(lengths_a, lengths_b))  # independent per operand


def test_dn_has_one_exact_operand_and_one_below():
    a, b = sample_values("dn:3")
    for x, y in zip(a, b):
        assert max(x, y) < 1000 and 3 in (digit_count(x), digit_count(y))
    assert any(digit_count(x) < 3 for x in a) and any(digit_count(y) < 3 for y in b)  # either side


def test_mixture_follows_weights():
    a, b = sample_values("dn:2@0.25,dn:4@0.75")
    share_four = np.mean([max(digit_count(x), digit_count(y)) == 4 for x, y in zip(a, b)])
    assert 0.68 < share_four < 0.82
    assert all(max(digit_count(x), digit_count(y)) in (2, 4) for x, y in zip(a, b))


def test_sampling_parse_normalises_and_reports_max_digits():
    sampling = tasks.Sampling.parse("dn:4@1,uniform:2-7@3")
    assert [c.weight for c in sampling.components] == [0.25, 0.75]
    assert sampling.max_digits == 7
    assert tasks.Sampling.parse("exact:1").num_pairs == 100
    assert tasks.Sampling.parse("dn:2").num_pairs == 100 * 100 - 10 * 10  # minus both below 10


@pytest.mark.parametrize("text, message", [
    ("exact:0", "'exact:0': digit counts must be >= 1"),
    ("below:-2", "'below:-2': digit counts must be >= 1"),
    ("uniform:5-3", "'uniform:5-3': lower length 5 is above upper length 3"),
    ("exact:3@0", "'exact:3@0': the weight after '@' must be a positive number"),
    ("exact:3@heavy", "'exact:3@heavy': the weight after '@' must be a positive number"),
    ("gauss:3", "bad component 'gauss:3' in 'gauss:3'; expected exact:N, below:N, uniform:LO-HI or dn:N"),
])
def test_bad_sampling_names_the_field(text, message):
    with pytest.raises(ConfigError, match="^task.train_sampling: " + re.escape(message)):
        tasks.Sampling.parse(text, field="task.train_sampling")


def test_sampling_wider_than_width_is_rejected():
    with pytest.raises(ConfigError, match=r"^task.width: 3 digits cannot hold the 5-digit operands"):
        tasks.sample_operands(jax.random.key(0), tasks.Sampling.parse("exact:5"), 3, 4)


# ----------------------------------------------------------------------------------------
# Layouts, against strings built by hand from Python integers
# ----------------------------------------------------------------------------------------


def reference_tokens(spec, a, b, c):
    """(prompt tokens, answer tokens) as text pieces, built with str operations only."""
    fmt = spec.format

    def number(x, slots, reverse, padded):
        text = str(x).zfill(slots) if padded else str(x)
        significance = list(range(len(text)))[::-1]
        pieces = list(zip(significance, text))
        if reverse:
            pieces = pieces[::-1]
        if fmt.index_hints:
            return [token for k, d in pieces for token in (f"<{k}>", d)]
        return [d for _, d in pieces]

    operator = "+" if spec.name in ("add", "mod_add") else "*"
    prompt = ["$"] if fmt.bos else []
    prompt += number(a, spec.operand_slots, fmt.reverse_operands, bool(fmt.pad_operands))
    prompt += [operator] if fmt.symbols else []
    prompt += number(b, spec.operand_slots, fmt.reverse_operands, bool(fmt.pad_operands))
    prompt += ["="] if fmt.symbols else []
    answer = number(c, spec.result_slots, fmt.reverse_result, bool(fmt.pad_result)) + ([";"] if fmt.eos else [])
    return prompt, answer


LAYOUT_WIDTH = 4
LAYOUT_ROWS = 5
LAYOUT_MODULUS = 97
LAYOUTS = [  # (task, format): every format, every task, few compiles
    ("add", "plain"),
    ("mul", "reversed"),
    ("mod_add", "reverse_result"),
    ("mod_mul", "reverse_operands,bos"),
    ("add", "acl2025"),
    ("mul", "ijcai2024"),
    ("mod_add", "hints,reversed,eos"),
    ("mul", "plain,hints,bos,no_eos,pad=4/auto"),
    ("add", "pad=0/auto"),
    ("mod_mul", "pad=6/auto,hints,no_symbols"),
]


@pytest.fixture(scope="module")
def layout_programs():
    programs = {}
    for name, text in LAYOUTS:
        spec = tasks.TaskSpec(name, LAYOUT_WIDTH, tasks.Format.parse(text, task=name), 1000)

        def program(a, b, spec=spec):
            batch = tasks.batch_for_operands(spec, a, b, jnp.int32(LAYOUT_MODULUS))
            return batch, tasks.read_result(spec, batch.tokens, batch.answer_start)

        programs[name, text] = spec, jax.jit(program)
    return programs


@pytest.mark.parametrize("name, text", LAYOUTS)
@SETTINGS
@given(pairs=st.lists(st.tuples(numbers_of_up_to(LAYOUT_WIDTH), numbers_of_up_to(LAYOUT_WIDTH)),
                      min_size=LAYOUT_ROWS, max_size=LAYOUT_ROWS))
def test_layout_mask_and_read_back_match_python(layout_programs, name, text, pairs):
    spec, program = layout_programs[name, text]
    a_values, b_values = zip(*pairs)
    batch, (c_read, well_formed) = jax.device_get(
        program(as_digits(a_values, LAYOUT_WIDTH), as_digits(b_values, LAYOUT_WIDTH)))
    assert batch.tokens.shape == (LAYOUT_ROWS, spec.seq_len) and batch.tokens.dtype == np.int32
    assert batch.tokens.max() < spec.vocab_size
    for row, (a, b) in enumerate(pairs):
        c = python_answer(name, a, b, LAYOUT_MODULUS)
        prompt, answer = reference_tokens(spec, a, b, c)
        padding = ["."] * (spec.seq_len - len(prompt) - len(answer))
        assert tasks.detokenize(batch.tokens[row]) == "".join(prompt + answer + padding)
        assert batch.answer_start[row] == len(prompt)
        expected_mask = np.zeros(spec.seq_len, bool)
        expected_mask[len(prompt): len(prompt) + len(answer)] = True
        np.testing.assert_array_equal(batch.answer_mask[row], expected_mask)
        assert tasks.digits_to_int(batch.c[row]) == c
        np.testing.assert_array_equal(c_read[row], batch.c[row])
        assert well_formed[row]


def test_seed_paper_layouts_verbatim():
    ijcai = tasks.TaskSpec("add", 3, tasks.Format.parse("ijcai2024", task="add"))
    a, b = as_digits([349], 3), as_digits([705], 3)
    tokens, mask, start = encode(ijcai, a, b, compute_result("add", a, b))
    assert tasks.detokenize(tokens[0]) == "0034900705450100" and int(start[0]) == 10
    assert tasks.Format.parse("ijcai2024", task="mul").pad_result == 10

    acl = tasks.TaskSpec("add", 20, tasks.Format.parse("acl2025"))
    a, b = as_digits([123], 20), as_digits([45], 20)
    tokens, _, _ = encode(acl, a, b, compute_result("add", a, b))
    expected = "$" + "123".zfill(20) + "+" + "45".zfill(20) + "=" + "168".zfill(21)[::-1] + ";"
    assert tasks.detokenize(tokens[0]) == expected


@pytest.mark.parametrize("text", ["pad=6/3,reverse_result,bos,eos", "pad=5,reverse_operands,no_symbols,no_eos",
                                  "pad=4,hints,bos", "ijcai2024", "acl2025"])
def test_operand_positions_hold_each_place_of_each_operand(text):
    # Every place gets its own digit (a: 1..6, b: 7, 8, 9, 1, ...), so a token at a claimed
    # position can only be that place's.
    spec = tasks.TaskSpec("mod_add", 4, tasks.Format.parse(text), 101)
    slots = spec.operand_slots
    a = np.asarray([[k % 6 + 1 for k in range(slots)]])
    b = np.asarray([[(k + 6) % 9 + 1 for k in range(slots)]])
    tokens, _, _ = encode(spec, a[:, :4], b[:, :4], compute_result("mod_add", a[:, :4], b[:, :4], 101))
    a_positions, b_positions = spec.operand_positions()
    for digits, positions in ((a, a_positions), (b, b_positions)):
        np.testing.assert_array_equal(np.asarray(tokens)[0, positions[:4]], digits[0, :4])
        np.testing.assert_array_equal(np.asarray(tokens)[0, positions[4:]], 0)  # padding
    assert len(set(a_positions) | set(b_positions)) == 2 * slots


def test_operand_positions_need_padded_operands():
    with pytest.raises(ValueError, match="padded operands"):
        tasks.TaskSpec("add", 4, tasks.Format.parse("plain")).operand_positions()


def test_vocab_and_lengths():
    spec = tasks.TaskSpec("mul", 3, tasks.Format.parse("hints,bos"))
    assert spec.result_width == 6 and spec.num_hints == 6 and spec.vocab_size == 22
    assert spec.answer_len == 2 * 6 + 1
    assert spec.seq_len == 1 + 2 * 3 * 2 + 2 + spec.answer_len
    assert tasks.TaskSpec("mod_add", 9, tasks.Format(), 101).result_width == 3
    assert tasks.TaskSpec("mod_add", 9, tasks.Format(), 100).result_width == 2
    assert tasks.TaskSpec("add", 9, tasks.Format()).vocab_size == 16


def test_read_result_rejects_malformed_answers():
    spec = tasks.TaskSpec("add", 3, tasks.Format.parse("plain"))
    a, b = as_digits([12, 999], 3), as_digits([34, 1], 3)
    tokens, _, start = encode(spec, a, b, compute_result("add", a, b))  # 12+34=46; 999+1=1000;
    tokens = np.array(tokens)
    c, ok = read_result(spec, tokens, start)
    assert ok.tolist() == [True, True] and [tasks.digits_to_int(x) for x in c] == [46, 1000]
    no_digit, junk_after, too_long = tokens.copy(), tokens.copy(), tokens.copy()
    no_digit[0, start[0]] = tasks.PLUS
    junk_after[0, start[0] + 2] = tasks.TIMES  # 46* instead of 46;
    too_long[1, start[1] + 4] = 7  # 10007 has more digits than a 3-digit sum can
    for bad in (no_digit, junk_after, too_long):
        assert not read_result(spec, bad, start)[1].all()

    padded = tasks.TaskSpec("add", 3, tasks.Format.parse("acl2025"))
    tokens, _, start = encode(padded, a, b, compute_result("add", a, b))
    tokens = np.array(tokens)
    assert read_result(padded, tokens, start)[1].all()
    tokens[0, start[0] + 5] = tasks.PAD
    tokens[1, start[1] + 20] = 1  # a nonzero 21st digit: wider than any 3-digit sum
    assert read_result(padded, tokens, start)[1].tolist() == [False, False]


# ----------------------------------------------------------------------------------------
# Batches: determinism, examples
# ----------------------------------------------------------------------------------------

BATCH_SAMPLINGS = [  # (task, format, sampling): each sampling end to end
    ("add", "reversed", "exact:4"),
    ("mul", "plain", "below:3"),
    ("mod_add", "acl2025", "uniform:1-4"),
    ("mod_mul", "hints,reverse_result", "dn:3@0.5,dn:4@0.5"),
]


@pytest.mark.parametrize("name, text, sampling_text", BATCH_SAMPLINGS)
def test_make_batch_end_to_end(name, text, sampling_text):
    spec = tasks.TaskSpec(name, 4, tasks.Format.parse(text, task=name), 10**6)
    sampling = tasks.Sampling.parse(sampling_text)
    make = jax.jit(tasks.make_batch, static_argnums=(0, 1, 3))
    batch = jax.device_get(make(spec, sampling, jax.random.key(1), 32, jnp.int32(999983)))
    same = jax.device_get(make(spec, sampling, jax.random.key(1), 32, jnp.int32(999983)))
    other = jax.device_get(make(spec, sampling, jax.random.key(2), 32, jnp.int32(999983)))
    for field in batch._fields:
        np.testing.assert_array_equal(getattr(batch, field), getattr(same, field))
    assert not np.array_equal(batch.tokens, other.tokens)
    for a_W, b_W, c_R, tokens_T, start in zip(batch.a, batch.b, batch.c, batch.tokens, batch.answer_start):
        a, b = tasks.digits_to_int(a_W), tasks.digits_to_int(b_W)
        assert tasks.digits_to_int(c_R) == python_answer(name, a, b, 999983)
        prompt, answer = reference_tokens(spec, a, b, python_answer(name, a, b, 999983))
        assert tasks.detokenize(tokens_T).rstrip(".") == "".join(prompt + answer) and start == len(prompt)


def test_modulus_is_traced_per_member():
    spec = tasks.TaskSpec("mod_add", 3, tasks.Format(), 1000)
    sampling = tasks.Sampling.parse("exact:3")
    moduli = jnp.asarray([2, 101, 1000], jnp.int32)
    per_member = jax.jit(jax.vmap(lambda p: tasks.make_batch(spec, sampling, jax.random.key(0), 8, p)))
    batch = jax.device_get(per_member(moduli))
    for member, p in enumerate([2, 101, 1000]):
        for a_W, b_W, c_R in zip(batch.a[member], batch.b[member], batch.c[member]):
            assert tasks.digits_to_int(c_R) == (tasks.digits_to_int(a_W) + tasks.digits_to_int(b_W)) % p


def test_print_examples_decodes_in_decimal():
    spec = tasks.TaskSpec("mod_mul", 3, tasks.Format.parse("acl2025"), 101)
    lines = printing.print_examples(spec, tasks.Sampling.parse("exact:3"), 4, seed=7, modulus=101, raw=True)
    assert lines == printing.print_examples(spec, tasks.Sampling.parse("exact:3"), 4, seed=7, modulus=101, raw=True)
    assert len(lines) == 4
    for line in lines:
        a, b, p, c, raw = re.fullmatch(r"(\d+) \* (\d+) \(mod (\d+)\) = (\d+) +(\$\d+\*\d+=\d+;)", line).groups()
        assert int(p) == 101 and int(c) == int(a) * int(b) % 101
        assert raw == "$" + a.zfill(20) + "*" + b.zfill(20) + "=" + c.zfill(21)[::-1] + ";"
    with pytest.raises(ConfigError, match=r"^task.moduli: modulus 1 is not allowed"):
        printing.print_examples(spec, tasks.Sampling.parse("exact:3"), 4, seed=7, modulus=1)


def test_describe_and_host_helpers():
    assert printing.describe("add", 3, 4, 7) == "3 + 4 = 7"
    assert printing.describe("mul", 3, 4, 12) == "3 * 4 = 12"
    assert printing.describe("mod_add", 60, 50, 9, 101) == "60 + 50 (mod 101) = 9"
    assert printing.describe("mod_mul", 60, 50, 71, 101) == "60 * 50 (mod 101) = 71"
    assert tasks.detokenize([14, 1, 10, 16, 2, 12, 15]) == "$1+<0>2=."
    assert tasks.int_to_digits(305, 4).tolist() == [5, 0, 3, 0]
    with pytest.raises(ValueError):
        tasks.int_to_digits(10**4, 4)


@settings(max_examples=30, deadline=None)
@given(value=st.integers(0, 10**40))
def test_digits_round_trip(value):
    assert tasks.digits_to_int(tasks.int_to_digits(value, 41)) == value


# ----------------------------------------------------------------------------------------
# Formats and specs: parsing and validation
# ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(fmt=st.builds(tasks.Format, st.booleans(), st.booleans(), st.integers(0, 30),
                     st.sampled_from([0, tasks.AUTO, 7, 31]), st.booleans(), st.booleans(), st.booleans(),
                     st.booleans()))
def test_format_text_round_trips(fmt):
    assert tasks.Format.parse(str(fmt)) == fmt


def test_format_presets_combine_with_flags():
    fmt = tasks.Format.parse("acl2025,hints")
    assert (fmt.pad_operands, fmt.pad_result, fmt.reverse_result, fmt.index_hints, fmt.bos, fmt.eos) == \
           (20, 21, True, True, True, True)
    assert tasks.Format.parse("plain") == tasks.Format()
    assert tasks.Format.parse("hints,reversed,eos") == tasks.Format(True, True, 0, 0, True, True, False, True)
    assert tasks.Format.parse("pad=20/21,reverse_result,bos,eos") == tasks.Format.parse("acl2025")
    assert tasks.Format.parse("pad=5").pad_result == tasks.AUTO
    assert tasks.Format.parse("ijcai2024", task="add").pad_result == 6
    assert not tasks.Format.parse("no_symbols").symbols


def test_unknown_format_flag_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"^task.format: unknown flag 'backwards' in 'plain,backwards'; allowed: "
                                          r"plain, reversed, acl2025, ijcai2024, reverse_result, .*pad=N"):
        tasks.Format.parse("plain,backwards")


@pytest.mark.parametrize("make, message", [
    (lambda: tasks.TaskSpec("div", 3, tasks.Format()),
     "task.name: unknown task 'div'; allowed: add, mul, mod_add, mod_mul"),
    (lambda: tasks.TaskSpec("mod_add", 3, tasks.Format(), 1), "task.moduli: modulus 1 is not allowed; each modulus "
                                                              "must be an integer in [2, 1000000]"),
    (lambda: tasks.TaskSpec("mod_mul", 3, tasks.Format(), 10**6 + 1), "task.moduli: modulus 1000001 is not allowed"),
    (lambda: tasks.TaskSpec("add", 0, tasks.Format()), "task.width: 0 is not allowed; the operand width must be >= 1"),
    (lambda: tasks.TaskSpec("add", 30, tasks.Format.parse("acl2025")),
     "task.format: pad=20/.. is narrower than the 30-digit operands; pad operands to at least 30"),
    (lambda: tasks.TaskSpec("mul", 11, tasks.Format.parse("acl2025")),
     "task.format: result padding 21 is narrower than the 22-digit results of mul; use pad=20/22 or pad=20/auto"),
    (lambda: tasks.TaskSpec("add", 3, tasks.Format.parse("no_symbols")),
     "task.format: no_symbols needs padded operands"),
    (lambda: tasks.TaskSpec("add", 3, tasks.Format.parse("reversed,no_eos")),
     "task.format: an unpadded result needs eos: without it the model is never taught where its answer ends"),
])
def test_bad_specs_name_the_field(make, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        make()


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["add", "mul", "mod_add"]), seed=st.integers(0, 2**16), bos=st.booleans())
def test_pad_common_pads_both_operands_to_the_longer_and_reads_back(name, seed, bos):
    width, modulus = 7, 97
    fmt = tasks.Format.parse(f"pad=common,reverse_result{',bos' if bos else ''},eos", task=name)
    assert tasks.Format.parse(str(fmt)) == fmt
    spec = tasks.TaskSpec(name, width, fmt, modulus if name == "mod_add" else 0)
    key_a, key_b, key_len = jax.random.split(jax.random.key(seed), 3)
    lengths = jax.random.randint(key_len, (2, 16, 1), 1, width + 1)
    a, b = (jax.random.randint(k, (16, width), 0, 10) * (jnp.arange(width) < n)
            for k, n in ((key_a, lengths[0]), (key_b, lengths[1])))
    batch = tasks.batch_for_operands(spec, a, b, modulus)
    c, ok = tasks.read_result(spec, batch.tokens, batch.answer_start)
    assert np.asarray(ok).all()
    for row in range(16):
        x, y = tasks.digits_to_int(np.asarray(a[row])), tasks.digits_to_int(np.asarray(b[row]))
        common = max(len(str(x)), len(str(y)))
        want = {"add": x + y, "mul": x * y, "mod_add": (x + y) % modulus}[name]
        want_width = {"add": common + 1, "mul": 2 * common, "mod_add": 2}[name]
        text = tasks.detokenize(np.asarray(batch.tokens[row])).rstrip(".")
        assert text == ("$" if bos else "") + f"{str(x).zfill(common)}{'*' if name == 'mul' else '+'}" \
                       f"{str(y).zfill(common)}={str(want).zfill(want_width)[::-1]};"
        assert tasks.digits_to_int(np.asarray(c[row])) == want


def test_pad_common_excludes_fixed_padding():
    assert tasks.Format.parse("pad=common,pad=6/7").pad_common is False
    assert tasks.Format.parse("pad=6/7,pad=common") == tasks.Format(pad_common=True)
