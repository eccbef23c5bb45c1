"""Position coupling (Cho et al., NeurIPS 2024) on addition at CPU size: trained on operands of
1..10 digits (each operand's length drawn independently), evaluated to 100 digits.

Layout: operands in written order, zero-padded to the longer one; the result reversed and
padded to one more digit (`pad=common,reverse_result`). Tokens of equal significance share a
position id (arith_jax/positional.py `coupled_ids`), shifted by a random offset per training
example so that the ids of 100-digit operands have been trained. Exact match is teacher-forced
(decode off): for addition it equals greedy decoding's exact match (every prediction right given
the right prefix <=> greedy writes the right answer), at one forward pass per example.

Attention is limited to tokens at most 2 significances apart (`model.coupling_window`): without
that limit the learned table never sees ids more than 11 apart in one training sequence, scores
some far ids nearly as high as the right ones, and 50-digit sums fail (0-4%, section 6 of
docs/results.md, at any number of steps measured).

Measured (docs/results.md 6c; 3 seeds, 3000 steps, 10 min 21 s on the 2-core CPU): 100% exact
match on every seed at 5, 10, 30, 50 and 100 digits, 99.6-100% at 20.

    arith-jax train --config=configs/coupling_addition_cpu.py --workdir=runs/coupling_cpu
"""

from arith_jax.default_config import base


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
    # Attend only between tokens at most 2 significances apart: a 100-digit sum then shows each
    # token the same id distances as a 10-digit one (docs/results.md 6c).
    c.model.coupling_window = 2
    c.population.seeds = (0, 1, 2)
    c.population.learning_rates = (3e-3,)
    c.population.weight_decays = (0.1,)
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.warmup_steps = 100
    c.eval.lengths = (5, 10, 20, 30, 50, 100)
    c.eval.examples_per_length = 256
    c.eval.decode = False
    c.eval.every = 1000
    c.eval.select_lengths = (20, 30)  # held-out lengths that pick each member's checkpoint in the report
    c.checkpoint.every = 1000
    return c
