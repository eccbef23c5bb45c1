"""Xu et al. (ACL 2025), Table 1: a learned absolute encoding (APE) against a relative one
(RoPE) on addition, multiplication and modular addition (mod 100 vs mod 101), trained on
4-digit operands (D_4), tested on shorter, equal and longer operands (1..8 digits). The
paper's finding: APE fails addition beyond 4 digits, RPE generalises it; both fail
multiplication; both generalise mod 100 and fail mod 101. Each task is one run:

    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_add
    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_mul --config.task.name=mul
    arith-jax train --config=configs/acl2025_table1.py --workdir=runs/table1_mod --config.task.name=mod_add

Operands and result are reversed (units first) and zero-padded: digit i of both operands and
of the result then sits at one relative offset for every i, the translation invariance a
relative encoding can use. Sized for an accelerator; configs/acl2025_table1_cpu.py is the CPU
size.
"""

from arith_jax.config import sibling


def get_config():
    c = sibling(__file__, "acl2025_mod_addition.py")  # the paper's model, data and schedule
    c.task.name = "add"
    c.task.moduli = (100, 101)  # mod_add only
    c.task.format = "pad=20/auto,reverse_operands,reverse_result,bos,eos"
    c.population.pe = ("learned", "rope")
    c.eval.lengths = (1, 2, 3, 4, 5, 6, 7, 8)
    c.report.published = ""  # Table 1 is qualitative; the console tables carry it
    return c
