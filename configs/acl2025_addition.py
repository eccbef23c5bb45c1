"""Xu et al. (ACL 2025), APE addition by training set: D_n for n in {4, 5} as two groups
(one compiled program each), tested on i = 1..9 digits; equivalence accuracy measures the
truncated target (a mod 10^n) + (b mod 10^n). Mixtures such as D45 are one sampling string:
--config.task.train_sampling="dn:4@0.5,dn:5@0.5" --config.population.train_digits="()".

    arith-jax train --config=configs/acl2025_addition.py --workdir=runs/acl_add
"""

from arith_jax.default_config import get_config as base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "dn:{n}"
    c.task.format = "acl2025"
    c.model.preset = "acl2025"
    c.model.pe = "learned"
    c.model.dropout = 0.2
    c.population.seeds = (0, 1, 2)
    c.population.weight_decays = (0.1,)
    c.population.train_digits = (4, 5)
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.source = "finite"
    c.data.size = 100000
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    return c
