"""Zhou et al. (2024)'s recipe for length generalisation of addition: FIRE relative
attention bias + randomised positions (Ruoss et al. 2023) + reversed operands and result +
index hints, trained on 1..40 digits, tested to 100. Sized for an accelerator.

The eval lengths are part of the config from the start: with index hints the vocabulary has
one hint token per digit place, so the operand width (the longest train or eval length) must
already cover 100 digits when training begins.

    arith-jax train --config=configs/fire_randomized_hints.py --workdir=runs/fire
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "uniform:1-40"
    c.task.format = "reversed,hints,eos"
    c.model.preset = "mini"
    c.model.pe = "fire"
    c.model.randomized_positions = True
    c.model.max_positions = 2048
    c.population.seeds = (0, 1, 2, 3, 4, 5, 6, 7)  # results vary a lot by seed in the paper
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 50000
    c.train.batch_size = 256
    c.train.steps_per_dispatch = 500
    c.eval.lengths = (10, 20, 40, 50, 60, 80, 100)
    c.eval.examples_per_length = 256
    c.eval.every = 5000
    c.eval.decode = False
    c.checkpoint.every = 5000
    return c
