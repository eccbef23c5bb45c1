"""Position coupling (Cho et al., NeurIPS 2024) on addition at CPU size: trained on operands of
1..10 digits (each operand's length drawn independently), evaluated to 100 digits.

Layout: operands in written order, zero-padded to the longer one; the result reversed and
padded to one more digit (`pad=common,reverse_result`). Tokens of equal significance share a
position id (arith_jax/positional.py `coupled_ids`), shifted by a random offset per training
example so that the ids of 100-digit operands have been trained. Exact match is teacher-forced
(decode off): for addition it equals greedy decoding's exact match (every prediction right given
the right prefix <=> greedy writes the right answer), at one forward pass per example.

Measured (docs/sweeps/coupling-cpu-2026-11-26.md, 3 seeds, 6000 steps, 1595 s wall on the
2-core CPU while another process's tests shared it): 100% exact match at 5 and 10 digits on
every seed, median 6.2% at 20 and at 30 digits, 0% at 50 and 100 on every seed. It does not
reach the issue's target (95% at 50 digits): the learned table never sees ids more than 11
apart in one training sequence and scores some far ids nearly as high as the right ones.

    arith-jax train --config=configs/coupling_addition_cpu.py --workdir=runs/coupling_cpu
"""

from arith_jax.default_config import get_config as base


def get_config():
    c = base()
    c.task.name = "add"
    c.task.train_sampling = "uniform:1-10"
    c.task.format = "pad=common,reverse_result,bos,eos"
    c.model.pe = "coupled"
    c.model.num_layers = 1
    c.model.num_heads = 4
    c.model.d_model = 128
    c.model.d_ff = 512
    c.model.max_positions = 512
    c.model.coupling_max_offset = 100  # eval ids reach 102: every one is trained at offsets >= 90
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (3e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 6000
    c.train.batch_size = 64
    c.train.warmup_steps = 100
    c.eval.lengths = (5, 10, 20, 30, 50, 100)
    c.eval.examples_per_length = 256
    c.eval.decode = False
    c.eval.every = 1000
    c.eval.select_lengths = (20, 30)  # held-out lengths that pick each member's checkpoint in the report
    c.checkpoint.every = 1000
    return c
