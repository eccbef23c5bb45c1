"""Beyond the records: Abacus embeddings (McLeish et al. 2024: 20 -> 100 digits at ~99%),
trained on up to 20-digit addition, tested to 100 digits. Sized for an accelerator. Zhou et
al.'s FIRE + randomised positions + index hints recipe is configs/fire_randomized_hints.py.

    arith-jax train --config=configs/abacus_100_digits.py --workdir=runs/abacus
"""

from arith_jax.default_config import get_config as base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "uniform:1-20"
    c.task.format = "reversed"
    c.model.preset = "mini"
    c.model.pe = "abacus"
    c.population.seeds = (0, 1, 2, 3)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 50000
    c.train.batch_size = 256
    c.train.steps_per_dispatch = 500
    c.eval.lengths = (5, 10, 20, 30, 50, 75, 100)
    c.eval.examples_per_length = 256
    c.eval.every = 5000
    c.eval.decode = False
    c.checkpoint.every = 5000
    return c
