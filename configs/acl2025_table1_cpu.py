"""CPU size of configs/acl2025_table1.py (APE vs RoPE, trained on 4-digit operands, tested on
1..8 digits): the nano model, 3 seeds per encoding, 6000 steps on fresh examples. One task per
run, as in the paper-size config:

    arith-jax train --config=configs/acl2025_table1_cpu.py --workdir=runs/table1_add_cpu
    arith-jax train --config=configs/acl2025_table1_cpu.py --workdir=runs/table1_mod_cpu --config.task.name=mod_add
Mod 101 on 4 digits is not learned at this size (docs/results.md 2d): configs/acl2025_table1_mod_cpu.py
trains the mod column on 2 digits, and configs/acl2025_table1_mul_cpu.py the multiplication column.
"""

from arith_jax.config import sibling
from arith_jax.default_config import base


def get_config():
    c = base()
    paper = sibling(__file__, "acl2025_table1.py")
    c.task.name = paper.task.name
    c.task.moduli = paper.task.moduli
    c.task.train_sampling = "dn:4"
    c.task.format = "pad=8/auto,reverse_operands,reverse_result,bos,eos"
    c.population.pe = paper.population.pe
    c.population.learning_rates = (1e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 6000
    c.eval.lengths = paper.eval.lengths
    c.eval.every = 3000
    c.checkpoint.every = 3000
    return c
