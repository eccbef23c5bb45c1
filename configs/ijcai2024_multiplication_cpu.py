"""CPU size of configs/ijcai2024_multiplication.py: the nano model alone, 3 seeds, trained on
2-digit multiplication (the paper: 3 digits from 50k examples, nano / micro / mini; those sizes
are for an accelerator) from a fixed set of 8,000 of the 10^4 operand pairs below 100 (the
evaluation pairs held out), in the paper's layout (operands padded to 5 digits, the reversed
result to 10, no '+'/'='); tested on 1..4 digits with equivalence accuracy against
(a mod 100) * (b mod 100). `report` puts the paper's 3-digit rows beside these, moved by one
digit.
    arith-jax train --config=configs/ijcai2024_multiplication_cpu.py --workdir=runs/ijcai_mul_cpu
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "ijcai2024_multiplication.py")
    c.task.train_sampling = "below:2"
    c.population.preset = ("nano",)
    c.population.learning_rates = (2e-3,)  # 1e-3 had learned 2-digit products to 35% by step 2500 (Table 1 CPU run)
    c.train.steps = 8000
    c.train.steps_per_dispatch = 100
    c.data.size = 8000  # of the 10^4 pairs below 100, after the evaluation pairs are held out
    c.eval.lengths = (1, 2, 3, 4)
    c.eval.every = 4000
    c.checkpoint.every = 4000
    c.report.published = "ijcai2024_multiplication:-1,ijcai2024_multiplication_equivalence:-1"
    return c
