"""Xu et al. (IJCAI 2024), "It ain't that bad": 3-digit multiplication from a fixed set of 50k
examples in the paper's layout (operands padded to 5 digits, the reversed result to 10, no
'+'/'=' tokens), minGPT sizes nano / micro / mini as three groups; tested on 1..5 digits with
equivalence accuracy against (a mod 1000) * (b mod 1000). Sized for an accelerator;
configs/ijcai2024_multiplication_cpu.py is the CPU size.

    arith-jax train --config=configs/ijcai2024_multiplication.py --workdir=runs/ijcai_mul
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "ijcai2024_addition.py")
    c.task.name = "mul"
    c.task.format = "ijcai2024"
    c.population.preset = ("nano", "micro", "mini")
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.size = 50000
    c.eval.every = 2000
    c.checkpoint.every = 2000
    c.report.published = "ijcai2024_multiplication,ijcai2024_multiplication_equivalence"
    return c
