"""CPU size of configs/acl2025_mod_addition.py: the plain recipe of default_config.base() (nano, operands
below 10^2 zero-padded to 6 digits, the result reversed) for all eight moduli of the ACL-2025
table, 3 seeds, tested on 1..6 digits. Trained on n = 2 digits instead of the paper's 4, so
the theory's limits are gcd(p, 10^2)/p: the same as the paper's for p in {50, 51, 100, 101,
150, 151, 201}, and 50% instead of 100% for p = 200 (200 does not divide 10^2). Every
training sum is below 200, so p = 200 and p = 201 are plain addition in distribution and
their members of one seed train to the same model (docs/results.md, section 2b: 17 minutes).

    arith-jax train --config=configs/acl2025_mod_addition_cpu.py --workdir=runs/acl_mod_cpu
"""

from arith_jax.config import sibling
from arith_jax.default_config import base


def get_config():
    c = base()
    paper = sibling(__file__, "acl2025_mod_addition.py")
    c.task.moduli = paper.task.moduli
    c.report.published = paper.report.published + ":-2"  # the paper trains on 4 digits, this on 2
    c.train.steps = 2500  # 24 members: fits 20 minutes on a 2-core CPU
    c.eval.every = c.train.steps  # one evaluation, at the end: 24 members decode on 6 lengths
    return c
