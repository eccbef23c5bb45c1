"""The default with four attention heads instead of three: mod 101's mechanism further, p = 50
and 150 less far (docs/recipe_search.md 18-20). A trade-off, not the default.

Same two layers of width 48 (four heads of 12 instead of three of 16), same recipe, same
members; about 4 min 25 s on the 2-core CPU against the default's 3 min 50 s. Over 27 members
per modulus (seeds 0-8 x data seeds 0-2) it carries mod 101's equivalence accuracy (the answer
equals ((a mod 100) + (b mod 100)) mod 101, the theory's mechanism) to 98.9 / 96.3 / 92.2 /
82.4% at 3-6 digits, against the default's 96.7 / 91.2 / 80.3 / 63.2%; but two of its 27 mod 100
members fall below 90% at 6 digits (none of the default's), and over nine members each it costs
p = 50 and 150 seven to eight points at 6 digits. The numbers are in docs/recipe_search.md 19-20.

    arith-jax train --config=configs/default_four_heads.py --workdir=runs/four_heads
"""

from arith_jax.default_config import get_config as default


def get_config():
    c = default()
    c.model.num_heads = 4
    return c
