"""CPU size of configs/acl2025_mod_multiplication.py: the plain recipe of default_config.base() (nano,
operands below 10^2 zero-padded to 6 digits, the result reversed, BOS/EOS) for modular
multiplication with p in {50, 51, 100, 150, 200, 201}, 3 seeds each in one program, tested on
1..6 digits. Trained on n = 2 digits instead of the paper's 3; the theory (the chance that
the truncated operands' product is right, printed per length by `report`) is for n = 2.
    arith-jax train --config=configs/acl2025_mod_multiplication_cpu.py --workdir=runs/acl_modmul_cpu
"""

from arith_jax.config import sibling
from arith_jax.default_config import base


def get_config():
    c = base()
    paper = sibling(__file__, "acl2025_mod_multiplication.py")
    c.task.name = paper.task.name
    c.task.moduli = paper.task.moduli
    c.train.steps = 3000
    c.eval.every = c.train.steps  # one evaluation, at the end: 18 members decode on 6 lengths
    return c
