"""Bad input gets one line naming the field, before anything compiles."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arith_jax import default_config, population
from arith_jax.errors import ConfigError
from tiny_config import tiny_config

BAD = [
    ({"task__name": "division"}, r"^task\.name: unknown task 'division'; allowed: add, mul, mod_add, mod_mul$"),
    ({"task__moduli": [1]}, r"^task\.moduli: modulus 1 is not allowed; each modulus must be an integer in \[2, 1000000\]$"),
    ({"task__moduli": [1000001]}, r"^task\.moduli: modulus 1000001 is not allowed"),
    ({"task__moduli": []}, r"^task\.moduli: is empty"),
    ({"task__moduli": [7, 7]}, r"^task\.moduli: \[7, 7\] repeats a value"),
    ({"task__width": 2}, r"^task\.width: 2 is smaller than the longest train or eval operand \(3 digits\)"),
    ({"population__seeds": []}, r"^population\.seeds: must list at least one value$"),
    ({"population__learning_rates": [-1.0]}, r"^population\.learning_rates: -1\.0 is not allowed"),
    ({"population__learning_rates": [float("nan")]}, r"^population\.learning_rates: nan is not allowed"),
    ({"population__weight_decays": [-0.1]}, r"^population\.weight_decays: -0\.1 is not allowed"),
    ({"train__weight_decay_from_step": -1}, r"^train\.weight_decay_from_step: -1 is not allowed; must be an integer >= 0$"),
    ({"train__weight_decay_below_loss": -0.1},
     r"^train\.weight_decay_below_loss: -0\.1 is not allowed; must be a loss >= 0 \(0 = decay at any loss\)$"),
    ({"train__weight_decay_while_gated": -1.0},
     r"^train\.weight_decay_while_gated: -1\.0 is not allowed; must be a weight decay >= 0$"),
    ({"train__weight_decay_full_at_loss": -1.0}, r"^train\.weight_decay_full_at_loss: -1\.0 is not allowed; must be a "
                                                 r"loss >= 0 \(0 = the full decay as soon as the loss is below the gate\)$"),
    ({"train__weight_decay_below_loss": 0.2, "train__weight_decay_full_at_loss": 0.3},
     r"^train\.weight_decay_full_at_loss: 0\.3 is not allowed; must be 0 or below train\.weight_decay_below_loss "
     r"\(0\.2\), where the decay starts to rise$"),
    ({"train__weight_decay_above_accuracy": 1.5}, r"^train\.weight_decay_above_accuracy: 1\.5 is not allowed; must be "
                                                  r"a share in \[0, 1\] \(0 = decay at any accuracy\)$"),
    ({"train__weight_decay_above_accuracy": 0.6, "train__weight_decay_full_at_accuracy": 0.5},
     r"^train\.weight_decay_full_at_accuracy: 0\.5 is not allowed; must be 0 or above "
     r"train\.weight_decay_above_accuracy \(0\.6\), where the decay starts to rise$"),
    ({"population__train_digits": [3]}, r'^population\.train_digits: is set, so task\.train_sampling must contain "\{n\}"'),
    ({"population__dropout": [0.1, 1.0]}, r"^population\.dropout: 1\.0 is not allowed; must be a dropout rate in \[0, 1\)$"),
    ({"population__dropout": [0.1, 0.1]}, r"^population\.dropout: \[0\.1, 0\.1\] repeats a value"),
    ({"population__format": ["reversed", "pad=2/2"]}, r"^population\.format: pad=2/\.\. is narrower than the 3-digit operands"),
    ({"population__format": ["reversed", 3]}, r"^population\.format: 3 is not allowed; each entry is a task\.format string$"),
    ({"population__format": ["reversed", "upside_down"]}, r"^population\.format: unknown flag 'upside_down'"),
    ({"population__train_sampling": ["dn:2", "dn:x"]}, r"^population\.train_sampling: bad component 'dn:x'"),
    ({"population__train_sampling": ["dn:{n}", "exact:2"], "population__train_digits": [1, 2]},
     r'^population\.train_digits: is set, so population\.train_sampling must contain "\{n\}" \(e\.g\. "dn:\{n\}"\), not \'exact:2\'$'),
    ({"population__group_overrides": {"fier": {"learning_rates": [5e-3]}}},
     r"^population\.group_overrides\.fier: names no positional encoding or preset; use one of none, learned, "),
    ({"population__group_overrides": {"learned": {"lr": [5e-3]}}},
     r"^population\.group_overrides\.learned: 'lr' cannot be set per group; allowed: learning_rates, "
     r"weight_decays, format$"),
    ({"population__group_overrides": {"learned": 3}},
     r"^population\.group_overrides\.learned: 3 is not allowed; give a dict of learning_rates, weight_decays, format$"),
    ({"population__group_overrides": {"learned": {"learning_rates": [-1.0]}}},
     r"^population\.group_overrides\.learned\.learning_rates: -1\.0 is not allowed"),
    ({"population__group_overrides": {"learned": {"format": []}}},
     r"^population\.group_overrides\.learned\.format: must list at least one value$"),
    ({"population__group_overrides": {"learned": {"format": ["pad=2/2"]}}},
     r"^population\.group_overrides\.learned\.format: pad=2/\.\. is narrower than the 3-digit operands"),
    ({"population__preset": ["nano"],
      "population__group_overrides": {"learned": {"weight_decays": [0.1]}, "nano": {"weight_decays": [1.0]}}},
     r"^population\.group_overrides: 'learned' and 'nano' both set weight_decays for pe=learned, preset=nano; "
     r"set it once$"),
    ({"train__steps": 0}, r"^train\.steps: 0 is not allowed; must be an integer >= 1$"),
    ({"train__batch_size": -4}, r"^train\.batch_size: -4 is not allowed"),
    ({"train__grad_clip": 0.0}, r"^train\.grad_clip: 0\.0 is not allowed; must be a number > 0$"),
    ({"train__ema_ramp": 0.0}, r"^train\.ema_ramp: 0\.0 is not allowed; must be a number in \[0\.001, 1e6\]$"),
    ({"train__decayed_tables": ("tokens",)},
     r"^train\.decayed_tables: 'tokens' is not allowed; each entry is one of position, token$"),
    ({"train__decayed_tables": ("token", "token")},
     r"^train\.decayed_tables: \['token', 'token'\] repeats a value; list each once$"),
    ({"data__source": "s3"}, r"^data\.source: 's3' is not allowed; use one of online, finite, files$"),
    ({"data__source": "files"}, r"^data\.files: is empty"),
    ({"population__shard": "0/3"}, r"^population\.shard: 0/3: 3 shares of 2 members would leave some empty; use at most 2 shares$"),
    ({"population__shard": "2"}, r"^population\.shard: '2' is not i/K with 0 <= i < K"),
    ({"eval__lengths": [0, 3]}, r"^eval\.lengths: 0 is not allowed; each entry must be a positive integer$"),
    ({"eval__select_lengths": [3, 9]}, r"^eval\.select_lengths: \[9\] are not evaluated; choose from eval\.lengths \(1, 2, 3\)$"),
    ({"model__pe": "xpos"}, r"^model\.pe: "),
    ({"model__num_heads": 3}, r"^model\.num_heads: must divide d_model = 16"),
    ({"task__format": "pad=2/2"}, r"^task\.format: "),
    ({"task__train_sampling": "exact:0"}, r"^task\.train_sampling: "),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[str(o) for o, _ in BAD])
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        population.plan(tiny_config(**overrides))
    assert "\n" not in str(error.value)


def test_population_is_the_product_of_the_lists_grouped_by_static_shape():
    config = tiny_config(population__seeds=[0, 1], population__learning_rates=[1e-3, 3e-3],
                         population__pe=["learned", "rope"])
    groups = population.plan(config)
    assert [g.name for g in groups] == ["pe=learned", "pe=rope"]
    for g in groups:
        assert g.size == 2 * 2 * 2  # seeds x moduli x learning rates
        assert {(m["seed"], m["p"], m["lr"]) for m in g.members} == {
            (s, p, lr) for s in (0, 1) for p in (7, 11) for lr in (1e-3, 3e-3)}


def test_layouts_and_dropout_rates_are_groups_of_one_invocation():
    config = tiny_config(population__format=["pad=4/2,reverse_result,eos", "pad=4/2,reverse_result,bos,eos"],
                         population__dropout=[0.0, 0.1])
    groups = population.plan(config)
    assert [g.name for g in groups] == [
        "format=pad=4_2,reverse_result,eos,dropout=0.0", "format=pad=4_2,reverse_result,eos,dropout=0.1",
        "format=pad=4_2,reverse_result,bos,eos,dropout=0.0", "format=pad=4_2,reverse_result,bos,eos,dropout=0.1"]
    assert [(g.spec.format.bos, g.model.dropout) for g in groups] == [
        (False, 0.0), (False, 0.1), (True, 0.0), (True, 0.1)]
    assert [g.spec.seq_len for g in groups] == [13, 13, 14, 14]  # BOS adds one token
    for g in groups:
        assert {(m["format"], m["dropout"]) for m in g.members} == {(str(config.population.format[
            int(g.spec.format.bos)]), g.model.dropout)}


def test_a_group_can_have_its_own_learning_rates_and_layout():
    config = tiny_config(population__pe=["learned", "rope", "coupled"], model__coupling_max_offset=10,
                         population__group_overrides={"rope": {"learning_rates": [5e-3, 1e-2]},
                                                      "coupled": {"format": ["pad=common,reverse_result"]},
                                                      "fire": {"learning_rates": [5e-3]}})  # not trained: kept
    groups = population.plan(config)
    assert [g.name for g in groups] == ["pe=learned,format=pad=4_2,reverse_result,eos",
                                        "pe=rope,format=pad=4_2,reverse_result,eos",
                                        "pe=coupled,format=pad=common,reverse_result"]
    learned, rope, coupled = groups
    assert {(m["p"], m["lr"]) for m in learned.members} == {(7, 1e-3), (11, 1e-3)}
    assert {(m["p"], m["lr"]) for m in rope.members} == {(p, lr) for p in (7, 11) for lr in (5e-3, 1e-2)}
    assert learned.spec.format.pad_operands and not coupled.spec.format.pad_operands
    assert coupled.spec.format.pad_common and {m["format"] for m in coupled.members} == {"pad=common,reverse_result"}
    names = [n for g in groups for n in g.names]
    assert len(set(names)) == len(names) and "lr=0.005" in rope.names[0]


def test_training_lengths_fill_the_sampling_template_within_one_group():
    config = tiny_config(task__train_sampling="dn:{n}", population__train_digits=[2, 1])
    (group,) = population.plan(config)
    assert [str(s) for s in group.samplings] == ["dn:1@1", "dn:2@1"]
    assert sorted((m["p"], m["train_digits"], group.n_train(m), group.sampling_index(m)) for m in group.members) == [
        (7, 1, 1, 0), (7, 2, 2, 1), (11, 1, 1, 0), (11, 2, 2, 1)]


def test_training_distributions_are_members_of_one_group():
    config = tiny_config(population__train_sampling=["dn:{n}", "exact:{n}"], population__train_digits=[1, 2],
                         task__moduli=[7])
    (group,) = population.plan(config)
    assert [str(s) for s in group.samplings] == ["dn:1@1", "dn:2@1", "exact:1@1", "exact:2@1"]
    assert sorted((m["train_sampling"], m["train_digits"], group.sampling_index(m), group.n_train(m))
                  for m in group.members) == [
        ("dn:{n}", 1, 0, 1), ("dn:{n}", 2, 1, 2), ("exact:{n}", 1, 2, 1), ("exact:{n}", 2, 3, 2)]
    mixtures = tiny_config(population__train_sampling=["dn:2", "dn:1@0.5,dn:2@0.5"], task__moduli=[7])
    (group,) = population.plan(mixtures)
    assert [(m["train_sampling"], str(group.sampling_of(m)), group.n_train(m)) for m in group.members] == [
        ("dn:2", "dn:2@1", 2), ("dn:1@0.5,dn:2@0.5", "dn:1@0.5,dn:2@0.5", 2)]


def test_cli_reports_a_bad_override_in_one_line_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "arith_jax.cli", "train", "--config.task.moduli=(1,)", f"--workdir={workdir}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: task.moduli: modulus 1 is not allowed; each modulus must be an integer in [2, 1000000]")
    assert not workdir.exists()


SHIPPED_CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.py"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[p.name for p in SHIPPED_CONFIGS])
def test_every_shipped_config_plans_and_names_real_published_tables(path):
    spec = importlib.util.spec_from_file_location(f"shipped_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    groups = population.plan(config)  # validates every field, as `train` does before compiling
    assert groups and all(g.size >= 1 for g in groups)
    if config.data.source == "finite":  # the set of distinct pairs fits every member's sampling
        for g in groups:
            for m in g.members:
                assert g.sampling_of(m).num_pairs >= config.data.size, (path.name, str(g.sampling_of(m)))
    if path.stem.startswith(("acl2025_", "ijcai2024_")) and "mod_multiplication" not in path.stem \
            and "table1" not in path.stem:
        assert config.report.published, f"{path.name} reproduces a published table; name it in report.published"



@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.sampled_from([("learned",), ("learned", "rope"), ("none", "learned", "rope")]),
       st.data())
def test_shares_split_the_member_grid_disjointly_and_keep_its_names(seeds, encodings, data):
    config = tiny_config(population__seeds=list(range(seeds)), population__pe=list(encodings))
    whole = population.plan(config)
    everyone = [(g.name, name, member) for g in whole for name, member in zip(g.names, g.members)]
    count = data.draw(st.integers(1, len(everyone)))
    shares = []
    for index in range(count):
        config.population.shard = f"{index}/{count}"
        groups = population.plan(config)
        shares.append([(g.name, name, member) for g in groups for name, member in zip(g.names, g.members)])
        for g in groups:  # each member keeps its own training distribution
            assert [g.sampling_of(m) for m in g.members] == [
                next(w for w in whole if w.name == g.name).sampling_of(m) for m in g.members]
    assert [m for share in shares for m in share] == everyone  # contiguous, in order, each once
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_the_default_is_the_plain_base_with_its_recipe_and_nothing_else():
    """configs/ build on default_config.base(); the embedded default differs from it exactly in
    DEFAULT_RECIPE's fields, so the default's recipe never leaks into a shipped config."""
    default, plain = default_config.get_config().to_dict(), default_config.base().to_dict()
    differing = {(section, field) for section in plain for field in plain[section]
                 if plain[section][field] != default[section][field]}
    assert differing == set(default_config.DEFAULT_RECIPE)


def test_per_layer_heads_survive_the_workdirs_json():
    # JSON writes the tuple as a list; read back over base() (whose field is a tuple) the model
    # must still get the (hashable) tuple, or a resumed or evaluated run would build another
    # model than it trained.
    from arith_jax import config as config_lib

    c = tiny_config(model__num_layers=2)
    c.model.layer_heads = (4, 2)
    (planned,) = population.plan(c)
    (restored,) = population.plan(config_lib.from_json(config_lib.to_json(c)))
    assert planned.model == restored.model
    assert restored.model.layer_heads == (4, 2)
    assert [restored.model.heads(i) for i in range(restored.model.num_layers)] == [4, 2]
