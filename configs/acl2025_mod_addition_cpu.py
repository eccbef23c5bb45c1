"""CPU size of configs/acl2025_mod_addition.py: the embedded default's recipe (default_config,
nano with two layers, operands below 10^2 zero-padded to 6 digits, the result reversed, 8400
steps at batch 32, an attention sink per head, no decay on the position table, the parameters'
moving average evaluated) for all eight moduli of the ACL-2025 table, 3 seeds, tested on 1..6
digits: every member on its exact theory and its mechanism (98.4% or more at 6 digits). Trained on n = 2
digits instead of the paper's 4, so the theory's limits are gcd(p, 10^2)/p: the same as the
paper's for p in {50, 51, 100, 101, 150, 151, 201}, and 50% instead of 100% for p = 200 (200
does not divide 10^2). Every training sum is below 200, so p = 200 and p = 201 are plain
addition in distribution (docs/results.md, section 2b, which also has the plain recipe of
default_config.base() this config used before: it carried no modulus's mechanism past 3 digits).

    arith-jax train --config=configs/acl2025_mod_addition_cpu.py --workdir=runs/acl_mod_cpu
"""

from arith_jax.config import sibling
from arith_jax.default_config import get_config as default


def get_config():
    c = default()
    paper = sibling(__file__, "acl2025_mod_addition.py")
    c.task.moduli = paper.task.moduli
    c.report.published = paper.report.published + ":-2"  # the paper trains on 4 digits, this on 2
    return c
