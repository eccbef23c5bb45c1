"""Xu et al. (ACL 2025), modular multiplication trained on 3-digit operands (D_3), tested on
i = 1..6 digits, for p in {50, 51, 100, 150, 200, 201}: the theory predicts gcd(p, 10^3)/p-like
limits (exactly: the chance that the truncated product is right; `report` prints it per
length). APE (learned absolute), the paper's 6x6x384 nanoGPT, operands padded to 20 digits and
the result reversed. Sized for an accelerator; configs/acl2025_mod_multiplication_cpu.py is
the CPU size.

    arith-jax train --config=configs/acl2025_mod_multiplication.py --workdir=runs/acl_modmul
"""

from arith_jax.default_config import get_config as base


def get_config():
    c = base()
    c.task.name = "mod_mul"
    c.task.moduli = (50, 51, 100, 150, 200, 201)
    c.task.train_sampling = "dn:3"
    c.task.format = "acl2025"
    c.model.preset = "acl2025"
    c.model.pe = "learned"
    c.model.dropout = 0.1
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.source = "finite"
    c.data.size = 100000
    c.eval.lengths = (1, 2, 3, 4, 5, 6)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    return c
