"""Beyond the records: Abacus embeddings with a looped transformer (McLeish et al. 2024: 20 ->
100 digits at ~99%): one decoder block applied 16 times with input injection, trained on up to
20-digit reversed addition, tested to 100 digits. Sized for an accelerator; not yet run.
Zhou et al.'s FIRE + randomised positions + index hints recipe is
configs/fire_randomized_hints.py; position coupling's is configs/coupling_addition_200.py.

    arith-jax train --config=configs/abacus_100_digits.py --workdir=runs/abacus
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "uniform:1-20"
    c.task.format = "reversed"
    c.model.pe = "abacus"
    c.model.num_layers = 1  # looped: 1 block x 16 recurrences, the input re-added before each
    c.model.recurrences = 16
    c.model.input_injection = True
    c.model.num_heads = 16
    c.model.d_model = 1024
    c.model.d_ff = 2048
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
