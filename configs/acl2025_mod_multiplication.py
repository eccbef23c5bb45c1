"""Xu et al. (ACL 2025), modular multiplication trained on 3-digit operands (D_3), tested on
i = 1..6 digits, for p in {50, 51, 100, 150, 200, 201}: the theory predicts gcd(p, 10^3)/p-like
limits (exactly: the chance that the truncated product is right; `report` prints it per
length). APE (learned absolute), the paper's 6x6x384 nanoGPT, operands padded to 20 digits and
the result reversed. Sized for an accelerator;
configs/acl2025_mod_multiplication_cpu.py is the CPU size.

    arith-jax train --config=configs/acl2025_mod_multiplication.py --workdir=runs/acl_modmul
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "acl2025_mod_addition.py")  # the paper's model, data and schedule
    c.task.name = "mod_mul"
    c.task.moduli = (50, 51, 100, 150, 200, 201)
    c.task.train_sampling = "dn:3"
    c.model.dropout = 0.1  # the paper's multiplication runs
    c.eval.lengths = (1, 2, 3, 4, 5, 6)
    c.report.published = ""  # the paper gives no table for it: theory only
    return c
