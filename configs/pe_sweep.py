"""Every positional encoding on the same task, one group each in one invocation: reversed
addition trained on 1..8 digits, tested to 16. Sized for an accelerator;
configs/pe_comparison_cpu.py is the CPU size.

    arith-jax train --config=configs/pe_sweep.py --workdir=runs/pe_sweep
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "uniform:1-8"
    c.task.format = "reversed"
    c.model.preset = "micro"
    c.population.pe = ("none", "learned", "sinusoidal", "rope", "alibi", "t5", "fire", "abacus", "coupled")
    # Position coupling reads operands in written order, zero-padded to the longer, the result reversed.
    c.population.group_overrides = {"coupled": {"format": ("pad=common,reverse_result",)}}
    c.population.seeds = (0, 1)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.eval.lengths = (1, 4, 8, 10, 12, 16)
    c.eval.every = 2000
    c.checkpoint.every = 2000
    return c
