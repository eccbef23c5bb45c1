"""Xu et al. (ACL 2025), APE multiplication by training set: D12, D2, D3, D34 and D234,
members of one program, tested on 1..4 digits (the paper's 4x4x128 "micro" size), dropout
0.1. Sized for an accelerator; no CPU size is written yet.

The paper trains on files of 100k examples. D12 and D2 hold fewer than 10^4 distinct pairs, so
such a file repeats each pair about ten times: training draws each step's batch afresh from
the set's distribution instead (online data), which is the same distribution; for D3, D34 and
D234 the paper's 100k examples are a finite sample, which online data is not.

    arith-jax train --config=configs/acl2025_multiplication.py --workdir=runs/acl_mul
"""

from arith_jax.default_config import base

# D12, D2, D3, D34, D234 (even mixtures of D_n).
ACL2025_MULTIPLICATION_SETS = ("dn:1@0.5,dn:2@0.5", "dn:2", "dn:3", "dn:3@0.5,dn:4@0.5", "dn:2@1,dn:3@1,dn:4@1")


def get_config():
    c = base()
    c.task.name = "mul"
    c.task.train_sampling = "dn:2"
    c.task.format = "acl2025"
    c.model.preset = "micro"
    c.model.pe = "learned"
    c.model.dropout = 0.1
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.population.train_sampling = ACL2025_MULTIPLICATION_SETS
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.source = "online"
    c.eval.lengths = (1, 2, 3, 4)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    c.report.published = "acl2025_multiplication"
    return c
