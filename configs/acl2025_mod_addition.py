"""Xu et al. (ACL 2025), modular addition table: trained on 4-digit operands (D_4), tested on
i = 1..9 digits, for p in {50, 51, 100, 101, 150, 151, 200, 201}; APE (learned absolute), the
paper's 6x6x384 nanoGPT, operands padded to 20 digits and the result reversed. Sized for an
accelerator; configs/acl2025_mod_addition_cpu.py is the CPU size. `report` prints the
published table beside the run's.

    arith-jax train --config=configs/acl2025_mod_addition.py --workdir=runs/acl_mod
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.task.name = "mod_add"
    c.task.moduli = (50, 51, 100, 101, 150, 151, 200, 201)
    c.task.train_sampling = "dn:4"
    c.task.format = "acl2025"
    c.model.preset = "acl2025"
    c.model.pe = "learned"
    c.model.dropout = 0.2
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 20000
    c.train.batch_size = 64
    c.train.warmup_steps = 100
    c.train.final_lr_fraction = 0.1
    c.train.b2 = 0.99
    c.train.steps_per_dispatch = 200
    c.data.source = "finite"
    c.data.size = 100000  # the paper's training files hold 100k examples
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    c.eval.every = 2000
    c.eval.examples_per_length = 1000
    c.checkpoint.every = 2000
    c.report.published = "acl2025_mod_addition"
    return c
