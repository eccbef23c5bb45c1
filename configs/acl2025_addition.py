"""Xu et al. (ACL 2025), APE addition by training set: D4, D_ab4 (both operands exactly 4
digits), D5, D45 and D67, members of one program, tested on i = 1..9 digits; equivalence
accuracy measures the truncated target (a mod 10^n) + (b mod 10^n). Sized for an
accelerator; configs/acl2025_addition_cpu.py is the CPU size.

    arith-jax train --config=configs/acl2025_addition.py --workdir=runs/acl_add
"""

from arith_jax.default_config import base

# D4, D_ab4, D5, D45, D67 (D45: half D4, half D5).
ACL2025_ADDITION_SETS = ("dn:4", "exact:4", "dn:5", "dn:4@0.5,dn:5@0.5", "dn:6@0.5,dn:7@0.5")


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "dn:4"
    c.task.format = "acl2025"
    c.model.preset = "acl2025"
    c.model.pe = "learned"
    c.model.dropout = 0.2
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.population.train_sampling = ACL2025_ADDITION_SETS
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.source = "finite"
    c.data.size = 100000
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    c.report.published = "acl2025_addition,acl2025_addition_truncated"
    return c
