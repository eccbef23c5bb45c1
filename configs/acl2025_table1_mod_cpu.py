"""CPU size of the mod 100 / mod 101 column of configs/acl2025_table1.py, trained on n = 2 digits:
the embedded default's recipe (default_config: mod 100 and mod 101, operands below 10^2
zero-padded to 6 digits, the result reversed, BOS/EOS, two layers, 8400 steps at batch 32, an
attention sink per head, no decay on the position table, the parameters' moving average
evaluated, 3 seeds) with learned
absolute positions (APE) against RoPE as two compiled programs. configs/acl2025_table1_cpu.py
with --config.task.name=mod_add trains on 4 digits as the paper does, but mod 101 is not
learned there at CPU size (docs/results.md section 2d). The paper's finding: both encodings
generalise mod 100 and fail mod 101.
    arith-jax train --config=configs/acl2025_table1_mod_cpu.py --workdir=runs/table1_mod_n2_cpu
"""

from arith_jax.default_config import get_config as default


def get_config():
    c = default()
    c.population.pe = ("learned", "rope")
    return c
