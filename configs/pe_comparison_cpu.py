"""CPU size of configs/pe_sweep.py: six positional encodings on reversed addition (operands and
result units first, no padding), each a group of 3 seeds in one invocation, trained on 1..4
digits, tested on 1..8 digits. Measured (docs/results.md section 4, 12 minutes): at step 3000
APE and RoPE have learned the task on every seed, ALiBi, T5, FIRE and Abacus on two seeds of
three. At 6000 steps the first four learn on every seed; FIRE does at lr 5e-3 and Abacus at
lr 1e-3 (with --config.train.b2=0.95, run as their own invocations with
--config.population.pe='("fire",)' and the learning rate). The menu's `none`,
`sinusoidal` and the coupled encodings are left to the accelerator sweep (configs/pe_sweep.py)
to keep this under 20 CPU minutes.
    arith-jax train --config=configs/pe_comparison_cpu.py --workdir=runs/pe_cpu
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "pe_sweep.py")
    c.model.preset = "nano"
    c.task.train_sampling = "uniform:1-4"
    c.population.pe = ("learned", "rope", "alibi", "t5", "fire", "abacus")
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (2e-3,)
    c.train.steps = 3000
    c.train.steps_per_dispatch = 100
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 8)
    c.eval.every = 1500
    c.eval.examples_per_length = 512
    c.checkpoint.every = 1500
    return c
