"""CPU size of the mod 100 / mod 101 column of configs/acl2025_table1.py, trained on n = 2 digits:
the plain recipe of default_config.base() (mod 100 and mod 101, operands below 10^2 zero-padded to 6 digits, the
result reversed, BOS/EOS, lr 3e-3, 3000 steps, 3 seeds) with learned absolute positions (APE)
against RoPE as two compiled programs. configs/acl2025_table1_cpu.py with
--config.task.name=mod_add trains on 4 digits as the paper does, but mod 101 is not learned
there at CPU size (docs/results.md section 2d). The paper's finding: both encodings generalise
mod 100 and fail mod 101.
    arith-jax train --config=configs/acl2025_table1_mod_cpu.py --workdir=runs/table1_mod_n2_cpu
"""

from arith_jax.default_config import base


def get_config():
    c = base()
    c.population.pe = ("learned", "rope")
    return c
