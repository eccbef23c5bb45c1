"""The smallest config that still exercises everything: shared by the trainer's tests."""

from arith_jax import config as config_lib


def tiny_config(**overrides):
    c = config_lib.base()
    c.task.moduli = (7, 11)
    c.task.train_sampling = "below:2"
    c.task.format = "pad=4/2,reverse_result,eos"
    # Pinned here, not taken from the embedded default, whose recipe may change.
    c.population.seeds = (0,)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (1.0,)
    c.model.num_layers = 1
    c.model.num_heads = 2
    c.model.d_model = 16
    c.model.d_ff = 32
    c.model.max_positions = 64
    c.train.steps = 20
    c.train.batch_size = 8
    c.train.warmup_steps = 2
    c.train.steps_per_dispatch = 5
    c.eval.lengths = (1, 2, 3)
    c.eval.every = 10
    c.eval.examples_per_length = 16
    c.checkpoint.every = 10
    c.log.every = 5
    for dotted, value in overrides.items():
        section, field = dotted.split("__")
        with c.ignore_type():
            c[section][field] = value
    return c


def get_config():
    """For the command line: `arith-jax train --config=tests/tiny_config.py`."""
    return tiny_config()
