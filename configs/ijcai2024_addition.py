"""Xu et al. (IJCAI 2024), "It ain't that bad": minGPT nano (3x3x48), micro (4x4x128) and
mini (6x6x192) as three groups, 3-digit addition from a fixed set of 10k examples, no '+'/'='
tokens, operands padded to 5 digits and the reversed result to 6; tested on 1..5 digits with
equivalence accuracy against (a mod 1000) + (b mod 1000). Sized for an accelerator;
configs/ijcai2024_addition_cpu.py is the CPU size.

    arith-jax train --config=configs/ijcai2024_addition.py --workdir=runs/ijcai_add
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "below:3"
    c.task.format = "ijcai2024"
    c.model.preset = "nano"
    c.population.preset = ("nano", "micro", "mini")
    c.model.pe = "learned"
    c.model.dropout = 0.1
    c.population.seeds = (0, 1, 2)
    c.population.weight_decays = (0.1,)
    c.population.learning_rates = (5e-4,)
    c.train.b1 = 0.9
    c.train.b2 = 0.95
    c.train.steps = 10000
    c.train.steps_per_dispatch = 100
    c.data.source = "finite"
    c.data.size = 10000
    c.eval.lengths = (1, 2, 3, 4, 5)
    c.eval.every = 1000
    c.checkpoint.every = 1000
    c.report.published = "ijcai2024_addition,ijcai2024_addition_equivalence"
    return c
