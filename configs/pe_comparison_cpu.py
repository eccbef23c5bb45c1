"""CPU size of configs/pe_sweep.py: nine positional encodings on reversed addition, each a
group of 3 seeds in one invocation, trained on 1..4 digits, tested on 1..6 digits.

Every encoding must have learned the task in distribution on every seed before its
extrapolation says anything, and at one shared learning rate some do not (docs/results.md 4b):
FIRE needs a higher one and Abacus a lower one. `population.group_overrides` gives each its
own. Position coupling reads its own layout (operands in written order, zero-padded to the
longer; the result reversed), the others the reversed layout of the rest of the table.

Measured (docs/results.md 4; 35 min 50 s on the 2-core CPU, over the 20-minute CPU target
because the relative encodings, NoPE and FIRE need 6000 steps to leave their plateaus): 25 of
27 members learned (APE seed 1 misses 3-digit operands, Abacus seed 2 stalled). At 5 digits
Abacus (88-96% on its learned seeds) and coupling (58% mean) lead, then ALiBi, NoPE and FIRE;
APE, sinusoidal and RoPE score 0.

    arith-jax train --config=configs/pe_comparison_cpu.py --workdir=runs/pe_cpu
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "pe_sweep.py")
    c.model.preset = "nano"
    c.task.train_sampling = "uniform:1-4"
    c.population.pe = ("none", "learned", "sinusoidal", "rope", "alibi", "t5", "fire", "abacus", "coupled")
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (3e-3,)
    # Beside pe_sweep.py's layout for coupling: FIRE's and Abacus's own learning rates.
    c.population.group_overrides.fire = {"learning_rates": (5e-3,)}
    c.population.group_overrides.abacus = {"learning_rates": (1e-3,)}
    c.train.b2 = 0.95  # leaves the loss plateaus sooner (docs/recipe_search.md 8e)
    c.train.steps = 6000
    c.train.steps_per_dispatch = 100
    c.eval.lengths = (1, 2, 3, 4, 5, 6)
    c.eval.every = 3000
    c.eval.examples_per_length = 512
    c.checkpoint.every = 3000
    return c
