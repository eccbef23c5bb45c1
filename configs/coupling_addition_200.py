"""Position coupling at the paper's scale (Cho et al., NeurIPS 2024: a 1-layer model trained on
1-30 digit addition, >95% median exact match up to 200 digits): operands of 1..30 digits each,
evaluated to 200. Sized for an accelerator; not yet run. Model shape from the paper (one block,
d_model 512); the optimiser settings are arith_jax's, not tuned. The CPU size is
configs/coupling_addition_cpu.py.

    arith-jax train --config=configs/coupling_addition_200.py --workdir=runs/coupling_200
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "coupling_addition_cpu.py")  # the layout, encoding and evaluation
    c.task.train_sampling = "uniform:1-30"
    c.model.num_layers = 1
    c.model.num_heads = 8
    c.model.d_model = 512
    c.model.d_ff = 2048
    c.model.max_positions = 1024
    c.model.coupling_max_offset = 400  # eval ids reach 202; trained at offsets >= 172
    c.population.seeds = (0, 1, 2, 3, 4)
    c.train.steps = 50000
    c.train.batch_size = 512
    c.train.steps_per_dispatch = 500
    c.eval.lengths = (10, 30, 50, 100, 150, 200)
    c.eval.select_lengths = (30, 50)  # held-out lengths that pick each member's checkpoint
    c.eval.every = 5000
    c.checkpoint.every = 5000
    return c
