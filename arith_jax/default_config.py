"""The embedded default experiment: what `arith-jax train` runs with no arguments.

A CPU-sized population that shows the seed papers' headline contrast (Xu et al., ACL 2025):
modular addition mod 100 generalises to operands longer than those trained on, mod 101 does
not, whatever the model learns in distribution.

`base()` holds every field (this file is the reference for each) with the plain recipe every
config in `configs/` starts from: BOS token, learning rate 3e-3, weight decay 0.1, Adam's
b2 0.99, 3000 steps, 3 seeds per modulus. `get_config()`, the default, adds
the recipe that carries the task furthest in about 5 minutes on a 2-core CPU (`DEFAULT_RECIPE`):
two layers instead of nano's three and batch 32 instead of 64, so that the 5 minutes buy 8400
steps; token and position tables that start at std 0.3 instead of GPT-2's 0.02, so that no
member waits on a loss plateau; a little weight decay (0.1) while a member is still learning and
a hard decay (1.0) once its own training loss is below 0.2, with b2 0.95, on every matrix and
the token table but not the position table; a learning rate that decays to 0.3 of its peak
instead of 0.1; an attention sink per head; evaluation of the parameters' moving average
(decay 0.999) instead of the last step's; one evaluation and one checkpoint, at the end. The
sweeps behind it, and how far it is from the targets of a robust demo, are in
docs/recipe_search.md (sections 10-19, 25-26, 30-31 and 33; 20-24 and 27-29 measured four heads,
per-layer heads, batch 16, randomised positions, twice the steps, a stronger decay once
learned, a decay that rises as the loss falls and a decay gated on the batch's accuracy, none
adopted).
"""

import ml_collections

# The default's recipe on top of base(): learn first under a little decay, then decay hard.
DEFAULT_RECIPE = {
    # Two layers at batch 32: 8400 steps in about 4 minutes. Twice the steps at half the batch
    # carry both moduli further than 4200 at batch 64 (docs/recipe_search.md 15, 16); halving
    # it again (batch 16, 15,000 steps) left seven of 27 mod 100 members below 90% at 6 digits
    # and one mod 101 member unlearned (section 22b).
    ("model", "num_layers"): 2,
    ("train", "batch_size"): 32,
    # Tables at GPT-2's 0.02 are ~3% of the residual stream after one block, and a member waits
    # on a loss plateau until it grows them (docs/recipe_search.md 12); at 0.3 all 36 members
    # of six moduli learned, on a CPU and on a GPU (section 13).
    ("model", "token_init_std"): 0.3,
    ("model", "position_init_std"): 0.3,
    ("train", "steps"): 8400,
    ("train", "b2"): 0.95,
    # The cosine schedule ends at 0.3 of the peak learning rate, not base()'s 0.1: the late,
    # larger steps under the hard decay carry mod 101's mechanism 4-7 points further at 5-6
    # digits over 27 members (and its worst member from 24 to 51% at 6 digits), while on one
    # machine as many mod 100 members fall below 90% at 6 digits as with 0.1: 3 of 36 each
    # (docs/recipe_search.md 25, 26).
    ("train", "final_lr_fraction"): 0.3,
    # Decay 1.0 once a member's own training loss is below 0.2 (the earlier gate at 0.05
    # carried mod 101's mechanism less far, section 13) and 0.1 while it is above: at batch 32
    # without it, three of 27 mod 100 members did not learn the task (section 15); with
    # it every one of 27 learned and 24 of 27 kept 90% at 6 digits (section 16).
    ("train", "weight_decay_below_loss"): 0.2,
    ("train", "weight_decay_while_gated"): 0.1,
    ("population", "weight_decays"): (1.0,),
    # The decay acts on the token table but not on the position table. The rows of the places
    # that hold only padding zeros in training carry nothing the task needs, so decayed they
    # shrink to about twice a digit's token row, and a digit there weighs as much in the
    # normalised input as at a place that matters. Undecayed they keep their start (norm ~2.5,
    # twelve times a digit's): a digit there moves the input little, and mod 101's equivalence
    # at 6 digits rises from 78.5 to 99.9% over 27 members (docs/recipe_search.md 33). Decaying
    # neither table keeps the ratio at about 2 and gains little; decaying only the positions
    # drops it to 0.4 and the mechanism to 40%.
    ("train", "decayed_tables"): ("token",),
    # Each head may put weight on a learned sink with a zero value instead of on a key. Without
    # it the answer positions park a quarter of their attention on the unseen places' zero
    # padding, which longer operands then fill (docs/recipe_search.md 30). With it every one of
    # 36 mod 100 member-runs (27 members and the default's three runs) keeps 96.5% or more at 6
    # digits (without: three below 90%), mod 101's equivalence is where it was, and with other
    # moduli p = 51, 150 and 151's mechanisms go 4-9 points further at 6 digits; p = 50 keeps
    # two of nine members below 90% there instead of one (section 31).
    ("model", "attention_sink"): True,
    # Evaluate the average of the parameters over about the last tenth of training, not the
    # last step's: the average keeps fewer answers near a decision boundary, so a digit at a
    # place never seen varying flips fewer of them (docs/recipe_search.md 19). In 8400 steps
    # the average's warm-up ramp, (1 + t) / (10 + t) <= 0.99893, stays below 0.999 and sets it.
    ("train", "ema_decay"): 0.999,
    # Cadence, not recipe: one evaluation and one checkpoint, at the end, and 100 steps per
    # device call take the run under 5 minutes; every member trains exactly as with base()'s
    # cadence (docs/results.md section 1).
    ("eval", "every"): 8400,
    ("checkpoint", "every"): 8400,
    ("train", "steps_per_dispatch"): 100,
}


def get_config() -> ml_collections.ConfigDict:
    """The embedded default: base() with DEFAULT_RECIPE."""
    c = base()
    for (section, field), value in DEFAULT_RECIPE.items():
        c[section][field] = value
    return c


def base() -> ml_collections.ConfigDict:
    """Every field, with the plain recipe that the configs in configs/ build on."""
    c = ml_collections.ConfigDict()

    # What to learn. The population spans `moduli` for modular tasks.
    c.task = ml_collections.ConfigDict()
    c.task.name = "mod_add"  # add | mul | mod_add | mod_mul
    c.task.moduli = (100, 101)  # each in [2, 10**6]; ignored by add and mul
    # Lists are tuples so that they can be overridden: --config.task.moduli="(7, 11)".
    # Operand lengths seen in training: exact:n | below:n | uniform:lo-hi | dn:n, mixtures
    # "dn:4@0.5,dn:5@0.5". A "{n}" is filled from population.train_digits when that is set.
    c.task.train_sampling = "below:2"
    # Token layout: presets plain | reversed | acl2025 | ijcai2024, combinable with flags
    # reverse_result, reverse_operands, pad=A/R, hints, no_symbols, bos, eos.
    c.task.format = "pad=6/3,reverse_result,bos,eos"
    c.task.width = 0  # operand digit capacity; 0 = the longest train or eval length

    # The model (defaults of the preset unless a size field is > 0).
    c.model = ml_collections.ConfigDict()
    c.model.preset = "nano"  # nano | micro | mini | acl2025
    c.model.pe = "learned"  # none | learned | sinusoidal | rope | alibi | t5 | fire | abacus | coupled | coupled_rope
    c.model.num_layers = 0
    c.model.num_heads = 0
    c.model.layer_heads = ()  # heads of each layer, e.g. (4, 3); empty = num_heads in every layer
    # A learned attention sink per head: a head can weigh nothing instead of parking its weight
    # on positions that never vary in training (arith_jax/model.py, ModelConfig).
    c.model.attention_sink = False
    c.model.d_model = 0
    c.model.d_ff = 0
    c.model.dropout = 0.0
    # Training: Gaussian noise on each input embedding, std = this fraction of its RMS.
    c.model.embedding_noise = 0.0
    # Linear layers' init: 0 = LeCun normal; > 0 = GPT-2's normal(std), residual writes scaled.
    c.model.init_std = 0.0
    # Std of the token table and of the learned/abacus/coupled position tables (0.02: GPT-2's).
    c.model.token_init_std = 0.02
    c.model.position_init_std = 0.02
    c.model.tied_embeddings = False
    c.model.max_positions = 1024  # rows of the learned/abacus table; range of randomised positions
    c.model.randomized_positions = False
    c.model.compute_dtype = "float32"  # bfloat16 on accelerators
    c.model.attention_impl = "auto"  # auto | xla | cudnn (fused GPU kernel: bfloat16, no learned bias)
    # The encodings' own knobs (defaults from their papers).
    c.model.rope_base = 10000.0
    c.model.t5_num_buckets = 32
    c.model.t5_max_distance = 128
    c.model.fire_mlp_width = 32
    c.model.fire_init_c = 0.1
    c.model.fire_init_threshold = 512.0
    c.model.abacus_max_offset = 100  # random offset range of Abacus digit positions in training
    c.model.coupling_max_offset = 100  # random start offset of coupled position ids in training
    c.model.coupling_window = 0  # coupled encodings: attend only within this id distance; 0 = all
    # Looped transformer: the blocks applied this many times with shared weights; input
    # injection adds the embedded input back before each pass after the first.
    c.model.recurrences = 1
    c.model.input_injection = False

    # The population: the product of these lists. Members differing only in these values
    # train in one compiled program, and so do members differing in `train_sampling` or
    # `train_digits` (one sampler each); entries of `pe`, `preset`, `format` and `dropout`
    # form separate groups (one compiled program each) in the same invocation.
    c.population = ml_collections.ConfigDict()
    c.population.seeds = (0, 1, 2)  # every configuration is reported as mean ± std over seeds
    c.population.data_seeds = (0,)
    c.population.learning_rates = (3e-3,)
    c.population.weight_decays = (0.1,)
    c.population.pe = ()  # e.g. ("learned", "rope"); empty = (model.pe,)
    c.population.preset = ()  # empty = (model.preset,)
    c.population.format = ()  # token layouts, e.g. ("pad=6/3,eos", "acl2025"); empty = (task.format,)
    c.population.dropout = ()  # e.g. (0.0, 0.1); empty = (model.dropout,)
    # A group's own lists, keyed by a `pe` or `preset` of the population: its entries
    # (learning_rates, weight_decays, format) replace the population's for those groups, e.g.
    # {"fire": {"learning_rates": (5e-3,)}, "coupled": {"format": ("pad=common,reverse_result",)}}
    # gives FIRE its own learning rate and position coupling the layout it reads. Set it in a
    # config file (the command line can only change keys a config already has).
    c.population.group_overrides = ml_collections.ConfigDict()
    # Training distributions, one member each, in one program (e.g. the ACL-2025 training
    # sets ("dn:4", "exact:4", "dn:4@0.5,dn:5@0.5")); empty = (task.train_sampling,).
    c.population.train_sampling = ()
    c.population.train_digits = ()  # fills "{n}" in the training sampling; empty = as written
    # "i/K": train only the i-th of K disjoint shares of the member grid (a sweep split over
    # slices; `arith-jax train --shard=i/K` sets it and writes into <workdir>/share-i-of-K).
    c.population.shard = ""

    # Optimisation: AdamW, linear warmup, cosine decay to lr * final_lr_fraction.
    c.train = ml_collections.ConfigDict()
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.warmup_steps = 100
    c.train.final_lr_fraction = 0.1
    c.train.b1 = 0.9
    c.train.b2 = 0.99
    c.train.eps = 1e-8  # Adam's epsilon
    # Weight decay is off before this step and population.weight_decays from it on: learn the
    # task first, then let decay remove what the task does not use.
    c.train.weight_decay_from_step = 0
    # > 0: a member is decayed only at steps where its training loss is below this, so a member
    # still on a loss plateau learns undecayed while those that have learned are decayed.
    c.train.weight_decay_below_loss = 0.0
    # The weight decay a member gets while either gate above holds its own off (a little decay
    # helps a member leave a loss plateau); 0 = none.
    c.train.weight_decay_while_gated = 0.0
    # > 0 (below the gate): the decay rises with falling loss instead of switching at the gate,
    # linearly from weight_decay_while_gated at the gate's loss to the member's own decay at
    # this loss and below, so a member whose rarer cases the full decay would erode settles
    # where its decay is weaker; 0 = the member's own decay as soon as it is below the gate.
    c.train.weight_decay_full_at_loss = 0.0
    # > 0: a member is decayed only at steps where at least this share of its training batch is
    # answered exactly (teacher forced), the loss gate's test on a scale that does not depend on
    # how many of the answer's tokens are easy; weight_decay_while_gated below it.
    c.train.weight_decay_above_accuracy = 0.0
    # > 0 (above that gate): the decay rises linearly from weight_decay_while_gated at the gate's
    # accuracy to the member's own at this accuracy and above; 0 = the switch.
    c.train.weight_decay_full_at_accuracy = 0.0
    c.train.grad_clip = 1.0
    # The embedding tables weight decay acts on, beside every other matrix: "token" and/or
    # "position" (the positional encoding's table); () = neither.
    c.train.decayed_tables = ("token", "position")
    # > 0: evaluate (and analyse) an exponential moving average of the parameters with this
    # decay instead of the last iterate; the average is part of the checkpoint. The ramp below
    # caps it early on: with its default, a decay above 0.999 acts only after step 8991, 0.9999
    # after step 89991.
    c.train.ema_decay = 0.0
    # The average's warm-up: the decay at step t is min(ema_decay, (1 + t) / (1 + ema_ramp + t)),
    # so until ema_decay caps it the average after T steps weighs step s about as
    # (s / T)^(ema_ramp - 1): 9 (TensorFlow's rule) averages about the last tenth of training,
    # 1 all of it equally.
    c.train.ema_ramp = 9.0
    c.train.steps_per_dispatch = 50  # steps fused into one lax.scan per device call

    # Where examples come from: online (fresh each step) | finite (fixed set) | files (grain).
    c.data = ml_collections.ConfigDict()
    c.data.source = "online"
    c.data.size = 10000  # finite: examples per member
    c.data.exclude_eval = True  # finite: keep the training set disjoint from the eval sets
    c.data.files = ()  # files: text files of `a+b=c;` records in task.format

    c.eval = ml_collections.ConfigDict()
    c.eval.lengths = (1, 2, 3, 4, 5, 6)  # operand digits to measure exact match at
    c.eval.every = 1500  # steps; at the first chunk end at or after each multiple, and at the end
    c.eval.examples_per_length = 512
    c.eval.decode = True  # greedy decoding for equivalence accuracy (slower)
    c.eval.seed = 1234
    # Model selection: each member's parameters at its evaluation with the best mean exact match
    # over these (held-out) lengths, e.g. (20, 30), are kept beside the last (`eval --best`
    # reads them), and report shows that evaluation beside the last; empty = last only.
    c.eval.select_lengths = ()

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 1000  # steps (same rule); 0 = only at the end and on preemption
    c.checkpoint.keep = 2

    # The published table(s) this experiment reproduces (arith_jax/published.py), e.g.
    # "acl2025_mod_addition": `report` then prints measured vs published vs theory.
    c.report = ml_collections.ConfigDict()
    c.report.published = ""

    c.log = ml_collections.ConfigDict()
    c.log.every = 50  # steps between TensorBoard training scalars (progress prints every chunk)
    c.log.tensorboard = True
    return c
