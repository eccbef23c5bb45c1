"""arith_jax's vmapped population vs a PyTorch nanoGPT-style loop, on the same model and task.

The PyTorch side is what the seed papers' nanoGPT forks do: Karpathy's GPT (pre-LN blocks,
causal attention through F.scaled_dot_product_attention, GELU MLP, learned absolute
positions), AdamW with decay on matrices only, gradient clipping at 1.0, the learning rate set
in Python every iteration, prompt tokens masked out of the loss with ignore_index=-1, and each
batch made on the host in Python (random ints -> strings -> char ids -> torch tensor). One run
per seed, the runs one after another, so K members cost the sum of K runs.

The arith_jax side is its own training program (train.build_runs + program.chunk, as in
benchmarks/bench_train.py): lax.scan over steps of vmap(step) over K members, with the data
generated inside the step.

Both train the `nano` preset (3 layers, 3 heads, d_model 48, d_ff 192, untied head, 1024-row
learned position table) on the default task layout (mod_add, below:2 operands,
"pad=6/3,reverse_result,eos"), batch 64 per member, float32. The PyTorch token layout is
checked against arith_jax's encoder before anything is timed.

    pip install torch==2.13.0          # CPU wheel; PyTorch is not a project dependency
    python benchmarks/bench_vs_pytorch.py                        # K = 1, 4, 8; 300 timed steps
    python benchmarks/bench_vs_pytorch.py --members=1,16 --steps=500 --batch=32

Reported per K: member-steps/s of each side (PyTorch: K sequential runs, timed one by one
and summed; arith_jax: one program), their ratio, the share of PyTorch's step time spent
making batches on the host, and arith_jax's one-off compile time (not in its steps/s).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from types import SimpleNamespace

try:
    import torch
    import torch.nn as nn
    from torch.nn import functional as F
except ImportError:
    sys.exit("error: PyTorch is not installed; pip install torch==2.13.0 to run this benchmark")

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import bench_train  # noqa: E402  (benchmarks/bench_train.py: its bench_config)
import record  # noqa: E402  (benchmarks/record.py)
from arith_jax import model as model_lib  # noqa: E402
from arith_jax import population, tasks  # noqa: E402

# ----------------------------------------------------------------------------------------
# PyTorch: Karpathy's nanoGPT model (model.py), trimmed to what these runs use.
# ----------------------------------------------------------------------------------------


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                           dropout_p=self.dropout if self.training else 0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd, d_ff, dropout):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, d_ff)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(d_ff, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, d_ff, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, d_ff, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, d_ff, dropout=0.0):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([Block(n_embd, n_head, d_ff, dropout) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        # arith_jax's nano preset has an untied head (nanoGPT ties it; the FLOPs are the same).
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        # nanoGPT asks for fused AdamW only on CUDA; on CPU this is the default (foreach) path.
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    """nanoGPT's train.py schedule: linear warmup, cosine decay to min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


class HostBatches:
    """Batches the way the arithmetic nanoGPT forks make them: Python ints -> strings -> ids.

    Supports arith_jax's padded layouts (pad=A/R with any of reverse_operands, reverse_result,
    bos, eos); the result is checked against tasks.encode in `check_layout`.
    """

    def __init__(self, spec, digits: int, modulus: int, batch: int, seed: int):
        fmt = spec.format
        if not (fmt.pad_operands and fmt.pad_result and fmt.pad_result != tasks.AUTO) or fmt.index_hints:
            raise SystemExit(f"error: --format: this benchmark's PyTorch side supports padded formats "
                             f"(pad=A/R) without hints, got {fmt}")
        self.spec, self.digits, self.modulus, self.batch = spec, digits, modulus, batch
        self.rng = random.Random(seed)
        self.stoi = {ch: i for i, ch in enumerate(tasks.TOKEN_CHARS)}
        self.prompt_len = spec.seq_len - spec.answer_len

    def example(self, a: int, b: int) -> str:
        fmt, op = self.spec.format, "+" if self.spec.name in ("add", "mod_add") else "*"
        c = (a + b) if op == "+" else a * b
        c = c % self.modulus if self.spec.is_modular else c
        sa, sb = str(a).zfill(fmt.pad_operands), str(b).zfill(fmt.pad_operands)
        sc = str(c).zfill(fmt.pad_result)
        if fmt.reverse_operands:
            sa, sb = sa[::-1], sb[::-1]
        if fmt.reverse_result:
            sc = sc[::-1]
        sym = (op, "=") if fmt.symbols else ("", "")
        return ("$" if fmt.bos else "") + sa + sym[0] + sb + sym[1] + sc + (";" if fmt.eos else "")

    def __call__(self):
        bound = 10 ** self.digits  # below:n: each operand uniform in [0, 10^n)
        lines = [self.example(self.rng.randrange(bound), self.rng.randrange(bound)) for _ in range(self.batch)]
        data = torch.tensor([[self.stoi[ch] for ch in line] for line in lines], dtype=torch.long)
        x, y = data[:, :-1], data[:, 1:].clone()
        y[:, : self.prompt_len - 1] = -1  # loss on the answer tokens only
        return x, y

    def check_layout(self):
        a = np.array([0, 7, 23, 99, 61]) % 10 ** self.digits
        b = np.array([0, 98, 16, 99, 1]) % 10 ** self.digits
        width = self.spec.width
        digits = lambda v: np.stack([tasks.int_to_digits(int(x), width) for x in v])
        want = np.asarray(tasks.batch_for_operands(self.spec, digits(a), digits(b), self.modulus).tokens)
        got = np.array([[self.stoi[ch] for ch in self.example(int(x), int(y))] for x, y in zip(a, b)])
        if got.shape != want.shape or not (got == want).all():
            raise SystemExit(f"error: PyTorch token layout differs from arith_jax's:\n{got}\n{want}")


def torch_runs(args, spec, num_runs: int) -> list[dict]:
    """`num_runs` nanoGPT runs one after another (seeds 0..), each timed after its warm-up.

    On a GPU the steps run asynchronously, as in nanoGPT; the clock is read after a device
    synchronisation at the end of the warm-up and at the end of the run, so a run's time is its
    real wall time. `data_seconds` is the host time spent making batches (inside that time)."""
    preset, device = args.model, torch.device(args.torch_device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = []
    for seed in range(num_runs):
        torch.manual_seed(seed)
        get_batch = HostBatches(spec, args.digits, args.modulus, args.batch, seed)
        model = GPT(spec.vocab_size, preset.positional.max_positions, preset.num_layers, preset.num_heads,
                    preset.d_model, preset.d_ff, preset.dropout).to(device)
        model.train()
        optimizer = model.configure_optimizers(args.wd, args.lr, (args.b1, args.b2))
        step_fn = torch.compile(model) if args.torch_compile else model
        data_s = 0.0
        for it in range(args.torch_warmup + args.steps):
            if it == args.torch_warmup:
                sync()
                data_s, start = 0.0, time.perf_counter()
            t0 = time.perf_counter()
            x, y = get_batch()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            data_s += time.perf_counter() - t0
            lr = get_lr(it, args.lr, args.warmup_steps, args.total_steps, args.lr * args.final_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                loss = step_fn(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if it % args.log_every == 0:
                loss.item()  # nanoGPT reads the loss only at log intervals
        sync()
        total_s = time.perf_counter() - start
        if not math.isfinite(loss.item()):
            raise SystemExit(f"error: PyTorch run {seed} diverged (loss {loss.item()})")
        results.append({"seconds": total_s, "data_seconds": data_s, "loss": loss.item()})
    return results


# ----------------------------------------------------------------------------------------
# arith_jax: the population program, as benchmarks/bench_train.py runs it.
# ----------------------------------------------------------------------------------------


def jax_population(args, members: int) -> dict:
    config = bench_train.bench_config(args.jax_args, members)
    train_chunk, state, _ = bench_train.population_chunk(config)
    k = args.spd
    start = time.perf_counter()
    state = train_chunk(state)  # compile + first chunk
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.chunks):
        state = train_chunk(state)
    jax.block_until_ready(state)
    return {"seconds_per_step": (time.perf_counter() - start) / (args.chunks * k), "compile_s": compile_s}


# ----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="1,4,8", help="comma-separated population sizes K")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per run (rounded up to --spd for JAX)")
    parser.add_argument("--batch", type=int, default=64, help="examples per member per step")
    parser.add_argument("--spd", type=int, default=50, help="arith_jax steps per dispatch (chunk length)")
    parser.add_argument("--torch_warmup", type=int, default=20, help="untimed first iterations of each PyTorch run")
    parser.add_argument("--torch_threads", type=int, default=1,
                        help="torch.set_num_threads; 0 keeps PyTorch's default (one per core). Default 1: at this "
                             "model size 2 OpenMP threads gain nothing, and on a shared CPU their spin-waiting "
                             "barriers make steps up to 50x slower, which would flatter arith_jax")
    parser.add_argument("--torch_compile", action="store_true", help="torch.compile the PyTorch model (nanoGPT's "
                        "compile=True; off by default, as the arithmetic forks run it)")
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--format", default="pad=6/3,reverse_result,eos")
    parser.add_argument("--digits", type=int, default=2, help="operand digits (sampling below:N)")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 (PyTorch: autocast, as nanoGPT)")
    parser.add_argument("--torch_device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--torch_runs", type=int, default=0,
                        help="PyTorch runs actually made (0: the largest K). Runs are sequential and alike, so "
                             "K runs cost K x their mean time; fewer runs save time at large K")
    parser.add_argument("--out", default="", help="folder for <name>.json and <name>.md (empty: print only)")
    parser.add_argument("--name", default="", help="file name of this run (default: vs_pytorch_<preset>_<dtype>)")
    args = parser.parse_args()
    members = [int(m) for m in args.members.split(",")]
    if args.steps < 1 or args.batch < 1 or args.spd < 1 or not members or min(members) < 1:
        parser.error("--steps, --batch, --spd and every --members entry must be >= 1")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    # One config describes both sides: the group arith_jax plans gives the model and the layout.
    args.jax_args = SimpleNamespace(task="mod_add", sampling=f"below:{args.digits}", format=args.format,
                                    preset=args.preset, pe="learned", dtype=args.dtype, batch=args.batch, spd=args.spd)
    args.chunks = -(-args.steps // args.spd)
    config = bench_train.bench_config(args.jax_args, 1)
    args.modulus = config.task.moduli[0]  # bench_config's modulus (101): the same on both sides
    group = population.plan(config)[0]
    spec, args.model = group.spec, group.model
    t = config.train
    args.lr, args.wd = config.population.learning_rates[0], config.population.weight_decays[0]
    args.b1, args.b2, args.grad_clip = t.b1, t.b2, t.grad_clip
    args.warmup_steps, args.total_steps, args.final_fraction = t.warmup_steps, t.steps, t.final_lr_fraction
    args.log_every = config.log.every
    HostBatches(spec, args.digits, args.modulus, args.batch, 0).check_layout()
    m = args.model
    jax_params = model_lib.param_count(model_lib.init(m, spec.vocab_size, jax.random.PRNGKey(0))[1])
    torch_params = sum(p.numel() for p in GPT(spec.vocab_size, m.positional.max_positions, m.num_layers, m.num_heads,
                                              m.d_model, m.d_ff).parameters())
    if jax_params != torch_params:
        raise SystemExit(f"error: parameter counts differ: arith_jax {jax_params}, PyTorch {torch_params}")

    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cores; python {platform.python_version()}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads, compile={args.torch_compile}), "
          f"jax {jax.__version__} ({jax.device_count()} x {jax.devices()[0].device_kind}, {jax.default_backend()})")
    print(f"model {args.preset}: {m.num_layers} layers x {m.num_heads} heads, d_model {m.d_model}, d_ff {m.d_ff}, "
          f"learned PE ({m.positional.max_positions} rows), {jax_params} parameters on both sides; task mod_add p={args.modulus} below:{args.digits} "
          f"{args.format!r}: seq_len {spec.seq_len}, vocab {spec.vocab_size}; batch {args.batch}/member, {args.dtype}; "
          f"PyTorch on {args.torch_device}")
    print(f"timed: PyTorch {args.steps} steps per run after {args.torch_warmup} warm-up; arith_jax "
          f"{args.chunks} x {args.spd} steps after the first (compiling) chunk", flush=True)

    runs = torch_runs(args, spec, args.torch_runs or max(members))
    per_run = [r["seconds"] / args.steps for r in runs]
    losses = ", ".join(f"{r['loss']:.3f}" for r in runs)
    print(f"PyTorch per-run ms/step: {', '.join(f'{1e3 * s:.2f}' for s in per_run)}; final losses {losses}",
          flush=True)
    run_seconds = sum(r["seconds"] for r in runs) / len(runs)  # one run's timed steps
    data_share = sum(r["data_seconds"] for r in runs) / sum(r["seconds"] for r in runs)

    settings = {k: v for k, v in vars(args).items() if k in (
        "members", "steps", "batch", "spd", "torch_warmup", "torch_threads", "torch_compile", "preset", "format",
        "digits", "dtype", "torch_device", "torch_runs")}
    settings["torch"] = torch.__version__
    settings["torch_ms_per_step"] = [1e3 * s for s in per_run]
    rows = []
    for k in members:
        torch_s = k * run_seconds / args.steps  # K runs back to back, per step
        j = jax_population(args, k)
        rows.append({"K members": k, "PyTorch member-steps/s": k / torch_s,
                     "arith_jax member-steps/s": k / j["seconds_per_step"],
                     "arith_jax / PyTorch": torch_s / j["seconds_per_step"],
                     "PyTorch data share": data_share, "arith_jax compile s": j["compile_s"]})
        # Written after every row, so a run stopped by a time limit keeps what it measured.
        record.write(args.out, args.name or f"vs_pytorch_{args.preset}_{args.dtype}", settings, rows,
                     echo=k == members[-1])

if __name__ == "__main__":
    main()
