"""Xu et al. (ACL 2025), Table 1: a learned absolute encoding (APE) against a relative one
(RoPE) on addition, multiplication and modular addition (mod 100 vs mod 101), trained on
4-digit operands (D_4), tested on shorter, equal and longer operands (1..8 digits). The
paper's finding: APE fails addition beyond 4 digits, RPE generalises it; both fail
multiplication; both generalise mod 100 and fail mod 101. Each task is one run:

    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_add
    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_mul --config.task.name=mul
    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_mod --config.task.name=mod_add

Operands and result are reversed (units first) and zero-padded: digit i of both operands and
of the result then sits at one relative offset for every i, the translation invariance a
relative encoding can use. Sized for an accelerator; configs/acl2025_table1_cpu.py is the CPU
size.
"""

from arith_jax.default_config import get_config as base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.moduli = (100, 101)  # mod_add only
    c.task.train_sampling = "dn:4"
    c.task.format = "pad=20/auto,reverse_operands,reverse_result,bos,eos"
    c.model.preset = "acl2025"
    c.population.pe = ("learned", "rope")
    c.model.dropout = 0.2
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 20000
    c.train.steps_per_dispatch = 200
    c.data.source = "finite"
    c.data.size = 100000
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 7, 8)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    return c
