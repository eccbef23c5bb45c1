"""IJCAI 2024 addition at CPU size: the nano model of configs/ijcai2024_addition.py (3 x 3 x 48),
3 seeds, trained on the paper's data (a fixed set of 10k examples of operands below 1000, the
ijcai2024 layout) and tested on 1..5 digits with equivalence accuracy against
(a mod 1000) + (b mod 1000), with the embedded default's recipe instead of the paper's
(default_config: lr 3e-3, 8400 steps at batch 32, embedding tables at std 0.3, the gated
decay on every matrix and the token table but not the position table, an attention sink per
head, the parameters' moving average evaluated; no dropout), keeping nano's three layers. About
2-3 minutes on a 2-core CPU. With it every seed answers 4- and 5-digit operands with the
truncated sum on 100% of pairs, the paper's ~100%; with the paper's
recipe at lr 1e-3 (and at its 5e-4 one seed in three does not learn) 78-92% (docs/results.md
section 3).

    arith-jax train --config=configs/ijcai2024_addition_cpu.py --workdir=runs/ijcai_add_cpu
"""

from arith_jax.config import sibling
from arith_jax.default_config import get_config as default


def get_config():
    c = default()
    paper = sibling(__file__, "ijcai2024_addition.py")
    c.model.num_layers = 3  # the paper's nano, not the default's two layers
    c.task.name = paper.task.name
    c.task.train_sampling = paper.task.train_sampling
    c.task.format = paper.task.format
    c.data.source = paper.data.source
    c.data.size = paper.data.size
    c.eval.lengths = paper.eval.lengths
    c.report.published = paper.report.published
    return c
