"""`arith-jax launch`: train on Cloud TPU slices through Google Cloud's queued resources or
SkyPilot managed jobs.

    arith-jax launch tpu-vm {create,ship,run,logs,status,delete,up} [flags] [-- TRAIN_FLAGS...]
    arith-jax launch skypilot [{launch,cancel}] [flags] [-- TRAIN_FLAGS...]

Nothing here schedules. `gcloud compute tpus queued-resources` queues and provisions the
slices and SkyPilot's managed jobs recover their own jobs; this module only builds their
command lines (small functions that return argv lists) and runs them with subprocess.run.
`--dry-run` prints every command instead, one per line (shlex.join), and every generated
file in full as a heredoc, so the output reads as a shell script; it runs nothing and
writes nothing.

A sweep over K slices (`--shares K`) is K jobs that differ only in `--shard=i/K`: job i
trains the i-th of K disjoint shares of the config's member grid into W/share-i-of-K/ of
the one gs:// workdir W, and `arith-jax report --workdir=W` merges the shares.

Exit codes of `arith-jax train` decide what is rerun (constants in arith_jax/exit_codes.py):

    EXIT_OK = 0          finished: stop.
    EXIT_BAD_CONFIG = 2  bad input, one line on stderr: stop, never retry.
    EXIT_RETRY = 3       stopped by SIGTERM/preemption after saving a checkpoint: run the
                         same command again, which resumes from that checkpoint.
    anything else        a crash: run again, at most --max_restarts times.

The launcher's own bad input (an accelerator type it cannot read, --shares below 1, a
workdir that is not gs://, a missing --zone, ...) is a ConfigError: one line
`error: <field>: <message>` on stderr and exit 2, before any command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import time

from arith_jax.errors import ConfigError, print_error
from arith_jax.exit_codes import EXIT_BAD_CONFIG, EXIT_OK, EXIT_RETRY

# Default TPU software version per generation: the images Cloud TPU's "TPU software versions"
# page names for JAX. --runtime_version overrides it (and is required for other generations).
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
ACCELERATOR = re.compile(r"(v\d+[a-z]*)-(\d+)")
# Queued resource and node ids: lowercase, digits and hyphens; room is left for "-<share>".
NAME = re.compile(r"[a-z]([-a-z0-9]{0,48}[a-z0-9])?")
GCS = re.compile(r"gs://[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9](/.*)?")
# On every worker: src/ (the code), venv/, train.log and exit_code (the train command's status).
RUN_DIR = "~/arith_jax_run"
POLL_SECONDS = 60
# Queued resource states after which `up` deletes the slice and creates it again.
PREEMPTED, FAILED = "SUSPENDED", "FAILED"
# Flags of `arith-jax train` that the launcher sets itself, so TRAIN_FLAGS may not.
LAUNCHER_FLAGS = ("--workdir", "--shard", "--distributed", "--coordinator", "--num_processes", "--process_id")
TPU_ACTIONS = ("create", "ship", "run", "logs", "status", "delete", "up")
SKYPILOT_ACTIONS = ("launch", "cancel")


# ---------------------------------------------------------------------------------------------
# Steps: what the launcher runs, and how --dry-run prints it.

@dataclasses.dataclass
class Command:
    argv: list[str]
    cwd: str | None = None  # not printed, so that dry-run output is the same on every machine


@dataclasses.dataclass
class Pipeline:
    """`first | second`, for streaming `git archive` into `gcloud storage cp -`."""
    first: list[str]
    second: list[str]
    cwd: str | None = None


@dataclasses.dataclass
class MakeDirs:
    path: str


@dataclasses.dataclass
class WriteFile:
    path: str
    text: str


@dataclasses.dataclass
class Note:
    """A line that explains what the dry-run cannot show as a command (the `up` loop)."""
    text: str


def render(step) -> str:
    if isinstance(step, Command):
        return shlex.join(step.argv)
    if isinstance(step, Pipeline):
        return f"{shlex.join(step.first)} | {shlex.join(step.second)}"
    if isinstance(step, MakeDirs):
        return shlex.join(["mkdir", "-p", step.path])
    if isinstance(step, WriteFile):
        body = step.text.rstrip("\n")
        return f"cat > {shlex.quote(step.path)} <<'EOF'\n{body}\nEOF"
    return f"# {step.text}"


def execute(step, runner) -> int:
    """Run one step; the runner has subprocess.run's signature (tests pass a fake)."""
    if isinstance(step, Command):
        return runner(step.argv, cwd=step.cwd, check=False).returncode
    if isinstance(step, Pipeline):
        # The tarball of a checkout is small: hold it in memory rather than in a temp file.
        archive = runner(step.first, cwd=step.cwd, stdout=subprocess.PIPE, check=False)
        if archive.returncode:
            return archive.returncode
        return runner(step.second, input=archive.stdout, check=False).returncode
    if isinstance(step, MakeDirs):
        os.makedirs(step.path, exist_ok=True)
    elif isinstance(step, WriteFile):
        with open(step.path, "w") as f:
            f.write(step.text)
    return 0


def perform(steps, dry_run: bool, runner, keep_going: bool = False) -> int:
    """Print the steps (dry run) or run them in order, stopping at the first failure unless
    keep_going (delete and cancel try every share)."""
    if dry_run:
        print("\n".join(render(step) for step in steps))
        return EXIT_OK
    status = EXIT_OK
    for step in steps:
        if isinstance(step, Note):
            continue
        print(f"+ {render(step)}", flush=True)
        code = execute(step, runner)
        if code:
            status = status or code
            if not keep_going:
                return code
    return status


# ---------------------------------------------------------------------------------------------
# The code the workers run: a gs:// tarball of this checkout's HEAD, or a git clone.

def find_checkout(start: str) -> str | None:
    path = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def head_commit(root: str) -> str:
    """HEAD's commit, read from .git without running git: --dry-run starts no process."""
    git_dir = os.path.join(root, ".git")
    if os.path.isfile(git_dir):  # a worktree or submodule: ".git" names the real directory
        with open(git_dir) as f:
            git_dir = os.path.join(root, f.read().split(":", 1)[1].strip())
    common = git_dir
    if os.path.isfile(os.path.join(git_dir, "commondir")):  # worktrees share refs with the main one
        with open(os.path.join(git_dir, "commondir")) as f:
            common = os.path.join(git_dir, f.read().strip())
    with open(os.path.join(git_dir, "HEAD")) as f:
        head = f.read().strip()
    if not head.startswith("ref: "):
        return head  # detached HEAD
    ref = head[len("ref: "):]
    for directory in (git_dir, common):
        if os.path.isfile(os.path.join(directory, ref)):
            with open(os.path.join(directory, ref)) as f:
                return f.read().strip()
    packed = os.path.join(common, "packed-refs")
    if os.path.isfile(packed):
        with open(packed) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    raise ConfigError("--code", f"{ref} of the checkout at {root} has no commit yet; commit first")


def local_checkout() -> tuple[str, str]:
    """(root, HEAD commit) of the git checkout around the working directory."""
    root = find_checkout(os.getcwd())
    if root is None:
        raise ConfigError("--code", "the working directory is not in a git checkout; run the launcher from "
                                    "your arith_jax checkout (ship archives its HEAD) or use --git_ref URL@REF")
    return root, head_commit(root)


def code_url(args) -> str:
    return f"{args.code.rstrip('/')}/arith_jax-{args.commit}.tar.gz"


def ship_step(args) -> Pipeline:
    # Committed files only: uncommitted edits are not shipped, and the name says which commit ran.
    return Pipeline(["git", "archive", "--format=tar.gz", "HEAD"],
                    ["gcloud", "storage", "cp", "-", code_url(args)], cwd=args.checkout)


def setup_lines(args) -> list[str]:
    """Shell lines that put the code in RUN_DIR/src and install it into RUN_DIR/venv."""
    if args.code:
        fetch = [f"gcloud storage cat {shlex.quote(code_url(args))} | tar -xzf - -C src"]
    else:
        url, ref = args.git_url, args.git_ref_name
        fetch = [f"git clone -q {shlex.quote(url)} src", f"git -C src checkout -q {shlex.quote(ref)}"]
    return [
        f"mkdir -p {RUN_DIR}", f"cd {RUN_DIR}", "rm -f exit_code", "rm -rf src", "mkdir src", *fetch,
        # The TPU images ship Python 3.10 and jax >= 0.7 needs 3.11: uv brings a Python 3.12 venv.
        "python3 -m pip install -q uv", "rm -rf venv", "python3 -m uv venv -q --python 3.12 venv",
        'python3 -m uv pip install -q --python venv/bin/python "jax[tpu]" ./src',
    ]


def train_command(args, share: int) -> str:
    argv = ["-m", "arith_jax.cli", "train", "--distributed", "--quiet", f"--workdir={args.workdir}"]
    if args.shares > 1:
        argv.append(f"--shard={share}/{args.shares}")
    # From src/, so that relative --config paths name the shipped configs.
    return f"cd {RUN_DIR}/src && {RUN_DIR}/venv/bin/python {shlex.join(argv + args.train_flags)}"


def _double_quoted(text: str) -> str:
    """`text` as one double-quoted shell word (keeps the remote command free of nested '...')."""
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def tpu_run_script(args, share: int) -> str:
    """One line for `ssh --command`: set up, then start training under nohup, detached, so the
    ssh session ends; the train command's exit code lands in RUN_DIR/exit_code for `up`."""
    train = f"{train_command(args, share)}; echo $? > {RUN_DIR}/exit_code"
    start = f"(nohup bash -c {_double_quoted(train)} > {RUN_DIR}/train.log 2>&1 < /dev/null &)"
    return " && ".join([*setup_lines(args), start])


# ---------------------------------------------------------------------------------------------
# Backend 1: TPU VMs through queued resources.

def share_names(name: str, shares: int) -> list[str]:
    return [name] if shares == 1 else [f"{name}-{i}" for i in range(shares)]


def _where(args) -> list[str]:
    return [f"--zone={args.zone}"] + ([f"--project={args.project}"] if args.project else [])


def qr_create(args, node: str) -> list[str]:
    argv = ["gcloud", "compute", "tpus", "queued-resources", "create", node, f"--node-id={node}", *_where(args),
            f"--accelerator-type={args.accelerator}", f"--runtime-version={args.runtime_version}"]
    return argv + (["--spot"] if args.spot else [])


def qr_describe(args, node: str, fields: str = "state.state") -> list[str]:
    return ["gcloud", "compute", "tpus", "queued-resources", "describe", node, *_where(args),
            f"--format=value({fields})"]


def qr_delete(args, node: str) -> list[str]:
    # --force also deletes the TPU VM the queued resource holds.
    return ["gcloud", "compute", "tpus", "queued-resources", "delete", node, *_where(args),
            "--force", "--async", "--quiet"]


def tpu_ssh(args, node: str, worker: str, command: str) -> list[str]:
    return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", node, *_where(args), f"--worker={worker}",
            f"--command={command}"]


def read_exit_code(args, node: str) -> list[str]:
    return tpu_ssh(args, node, "0", f"cat {RUN_DIR}/exit_code 2>/dev/null || true")


def tpu_vm_steps(args, nodes: list[str]) -> list:
    action = args.action
    if action == "create":
        return [Command(qr_create(args, node)) for node in nodes]
    if action == "ship":
        return [ship_step(args)]
    if action == "run":
        return [Command(tpu_ssh(args, node, "all", tpu_run_script(args, i))) for i, node in enumerate(nodes)]
    if action == "logs":
        return [Command(tpu_ssh(args, nodes[args.share], "0", f"tail -n +1 -F {RUN_DIR}/train.log"))]
    if action == "status":
        return [Command(qr_describe(args, node, "name.basename(),state.state")) for node in nodes]
    if action == "delete":
        return [Command(qr_delete(args, node)) for node in nodes]
    # up: what runs before the watch loop, then what the loop runs.
    steps = up_start_steps(args, nodes)
    steps.append(Note("each run below starts once its queued resource is ACTIVE"))
    steps += [Command(tpu_ssh(args, node, "all", tpu_run_script(args, i))) for i, node in enumerate(nodes)]
    steps.append(Note(f"then every {POLL_SECONDS} s until every train command has exited 0 or 2:"))
    for node in nodes:
        steps += [Note(shlex.join(qr_describe(args, node))), Note(shlex.join(read_exit_code(args, node)))]
    steps.append(Note(f"{PREEMPTED} (preempted): delete, create, run again; exit {EXIT_RETRY}: run again; "
                      f"{FAILED} or another exit code: the same, at most --max_restarts={args.max_restarts} times"))
    return steps


def up_start_steps(args, nodes: list[str]) -> list:
    # Queue the slices first: capacity can take hours to come, shipping takes seconds.
    return [Command(qr_create(args, node)) for node in nodes] + ([ship_step(args)] if args.code else [])


@dataclasses.dataclass
class Share:
    """What `up` knows of one slice between polls."""
    index: int
    node: str
    state: str = ""
    running: bool = False   # our train command was started on the current slice
    deleting: bool = False  # we deleted the slice and create it again once it is gone
    restarts: int = 0       # reruns after crashes, FAILED slices and failed starts
    result: int | None = None


def up(args, nodes: list[str], runner, sleep) -> int:
    """create, ship, then watch: run the train command once a slice is ACTIVE, re-create a
    preempted slice and run again (the command resumes from the last checkpoint in the gs://
    workdir), until every share's train command exits 0 or 2."""
    if args.dry_run:
        return perform(tpu_vm_steps(args, nodes), True, runner)
    code = perform(up_start_steps(args, nodes), False, runner)
    if code:
        return code
    shares = [Share(i, node) for i, node in enumerate(nodes)]
    while True:
        for share in shares:
            if share.result is None:
                advance(args, share, runner)
        if all(share.result is not None for share in shares):
            break
        sleep(POLL_SECONDS)
    results = [share.result for share in shares]
    teardown = ["arith-jax", "launch", "tpu-vm", "delete", f"--name={args.name}", *_where(args),
                f"--shares={args.shares}"]
    print(f"done: exit codes {results}; delete the slices with: {shlex.join(teardown)}")
    if all(result == EXIT_OK for result in results):
        return EXIT_OK
    return EXIT_BAD_CONFIG if EXIT_BAD_CONFIG in results else 1


def advance(args, share: Share, runner) -> None:
    """One poll of one slice: act on its queued resource state and its train command's exit."""
    described = runner(qr_describe(args, share.node), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=False)
    state = described.stdout.strip() if described.returncode == 0 else ""
    if state != share.state:
        print(f"{share.node}: {state or 'gone'}", flush=True)
        share.state = state
    if state == "ACTIVE":
        if share.running:
            code = exit_code(args, share.node, runner)
            if code is None:
                return  # still training (or the VM does not answer this time)
            share.running = False  # the next poll runs it again, if it must be
            if code in (EXIT_OK, EXIT_BAD_CONFIG):
                share.result = code
                print(f"{share.node}: train exited {code}", flush=True)
            elif code == EXIT_RETRY:
                print(f"{share.node}: train stopped after a checkpoint (exit {code}); it runs again", flush=True)
            elif not count_restart(args, share, f"train exited {code}"):
                share.result = code
            return
        code = perform([Command(tpu_ssh(args, share.node, "all", tpu_run_script(args, share.index)))], False, runner)
        if code == 0:
            share.running = True
        elif not count_restart(args, share, f"starting the train command failed ({code})"):
            share.result = code
    elif state in (PREEMPTED, FAILED):
        # A preemption is what spot slices are for: always recovered. FAILED may be permanent.
        if state == FAILED and not count_restart(args, share, "the queued resource FAILED"):
            share.result = 1
            return
        perform([Command(qr_delete(args, share.node))], False, runner)
        share.deleting, share.running = True, False
    elif state == "":
        if not share.deleting:
            print(f"{share.node}: not found, deleted outside `up`?; no longer watched", flush=True)
            share.result = 1
        elif perform([Command(qr_create(args, share.node))], False, runner) == 0:
            share.deleting = False
        elif not count_restart(args, share, "creating the queued resource again failed"):
            share.result = 1
    # Any other state (WAITING_FOR_RESOURCES, PROVISIONING, SUSPENDING, DELETING, ...): wait.


def exit_code(args, node: str, runner) -> int | None:
    read = runner(read_exit_code(args, node), stdout=subprocess.PIPE, text=True, check=False)
    text = read.stdout.strip() if read.returncode == 0 else ""
    return int(text) if text.isdigit() else None


def count_restart(args, share: Share, why: str) -> bool:
    if share.restarts >= args.max_restarts:
        print(f"{share.node}: {why}; --max_restarts={args.max_restarts} reached, giving up", flush=True)
        return False
    share.restarts += 1
    print(f"{share.node}: {why}; restart {share.restarts} of {args.max_restarts}", flush=True)
    return True


# ---------------------------------------------------------------------------------------------
# Backend 2: SkyPilot managed jobs.

def skypilot_task(args, share: int, job: str) -> dict:
    resources = {
        # gcp/*/<zone>: any region, this zone (SkyPilot's infra syntax).
        "infra": f"gcp/*/{args.zone}" if args.zone else "gcp",
        "accelerators": f"tpu-{args.accelerator}",
        "accelerator_args": {"runtime_version": args.runtime_version},
        "use_spot": args.spot,
        # Preemptions are recovered without limit; crashes at most max_restarts_on_errors
        # times; exit 3 (stopped after a checkpoint) always, without counting.
        "job_recovery": {"strategy": "FAILOVER", "max_restarts_on_errors": args.max_restarts,
                         "recover_on_exit_codes": [EXIT_RETRY]},
    }
    # SkyPilot runs setup and run on every host of a TPU pod slice, as a multi-host JAX run needs.
    return {"name": job, "resources": resources,
            "setup": "\n".join(["set -e", *setup_lines(args)]) + "\n",
            "run": train_command(args, share) + "\n"}


def to_yaml(task: dict) -> str:
    import yaml  # PyYAML comes with flax and orbax-checkpoint

    class BlockDumper(yaml.SafeDumper):
        """SafeDumper that writes multi-line scripts as `|` blocks, readable in the YAML."""

    def represent_str(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    BlockDumper.add_representer(str, represent_str)
    return yaml.dump(task, Dumper=BlockDumper, sort_keys=False, default_flow_style=False, width=4096)


def skypilot_steps(args, jobs: list[str]) -> list:
    if args.action == "cancel":
        return [Command(["sky", "jobs", "cancel", "-y", "-n", job]) for job in jobs]
    paths = [os.path.join(args.yaml_dir, f"{job}.yaml") for job in jobs]
    steps = [ship_step(args)] if args.code else []
    steps.append(MakeDirs(args.yaml_dir))
    steps += [WriteFile(path, to_yaml(skypilot_task(args, i, job))) for i, (job, path) in enumerate(zip(jobs, paths))]
    # -d: submit and return (the controller runs the job); without it each launch would stream
    # its job's logs until the job ends, and the shares would start one after another.
    steps += [Command(["sky", "jobs", "launch", "-d", "-y", "-n", job, path]) for job, path in zip(jobs, paths)]
    return steps


# ---------------------------------------------------------------------------------------------
# Flags and their checks.

class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line ConfigErrors instead of usage + exit."""

    def error(self, message):
        match = re.match(r"argument ([^:]+): (.*)", message)
        if match:
            raise ConfigError(match.group(1).split("/")[0], match.group(2))
        raise ConfigError(self.prog, message)


def _add_shared_flags(parser) -> None:
    parser.add_argument("--name", default="arith-jax", help="queued resource / job name; shares add -<i>")
    parser.add_argument("--accelerator", default="", help="TPU type: v5litepod-16, v4-32, v6e-8, ...")
    parser.add_argument("--runtime_version", default="", help="TPU software version (default: per generation)")
    spot = parser.add_mutually_exclusive_group()
    spot.add_argument("--spot", dest="spot", action="store_true", default=True, help="spot capacity (default)")
    spot.add_argument("--on_demand", dest="spot", action="store_false", help="on-demand capacity")
    parser.add_argument("--code", default="", help="gs://bucket/prefix: ship this checkout's HEAD there")
    parser.add_argument("--git_ref", default="", help="URL@REF: the workers clone URL and check out REF")
    parser.add_argument("--workdir", default="", help="gs://bucket/path shared by every share and host")
    parser.add_argument("--shares", type=int, default=1, help="K slices, job i runs --shard=i/K")
    parser.add_argument("--max_restarts", type=int, default=3, help="reruns after crashes (preemptions: unbounded)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print what would run; run nothing, write nothing")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arith-jax launch", allow_abbrev=False,
                     description="Train on Cloud TPU: queued-resource TPU VMs (tpu-vm) or SkyPilot managed jobs.",
                     epilog="Flags after -- go to `arith-jax train`. See docs/cloud_tpu.md.")
    backends = parser.add_subparsers(dest="backend", required=True, metavar="{tpu-vm,skypilot}")
    tpu = backends.add_parser(
        "tpu-vm", allow_abbrev=False, help="gcloud compute tpus queued-resources + tpu-vm ssh",
        description="create: queue the slices; ship: upload this checkout's HEAD to --code; run: start training "
                    "on every host; logs: follow worker 0's log; status: the queued resources' states; delete: "
                    "delete the slices; up: create, ship, run, then re-create preempted slices and run again "
                    "until training exits 0 or 2.")
    tpu.add_argument("action", choices=TPU_ACTIONS)
    _add_shared_flags(tpu)
    tpu.add_argument("--zone", default="", help="Cloud TPU zone, e.g. us-central2-b")
    tpu.add_argument("--project", default="", help="GCP project (default: gcloud's)")
    tpu.add_argument("--share", type=int, default=0, help="logs: which share's worker 0 to follow")
    sky = backends.add_parser(
        "skypilot", allow_abbrev=False, help="sky jobs launch / cancel",
        description="launch (the default): ship, write one task YAML per share to --yaml_dir and submit each "
                    "with sky jobs launch; cancel: sky jobs cancel every share.")
    sky.add_argument("action", nargs="?", default="launch", choices=SKYPILOT_ACTIONS)
    _add_shared_flags(sky)
    sky.add_argument("--zone", default="", help="optional: keep the jobs in this zone")
    sky.add_argument("--yaml_dir", default="runs/skypilot", help="where the task YAMLs are written")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    own, train_flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = make_parser().parse_args(own)
    args.train_flags = train_flags
    return args


def check_common(args) -> None:
    if not NAME.fullmatch(args.name):
        raise ConfigError("--name", f"{args.name!r} is not allowed; use lowercase letters, digits and hyphens, "
                                    "starting with a letter, at most 50 characters")
    if args.shares < 1:
        raise ConfigError("--shares", f"{args.shares} is not allowed; the number of slices must be at least 1")
    if args.max_restarts < 0:
        raise ConfigError("--max_restarts", f"{args.max_restarts} is not allowed; it must be at least 0")


def check_accelerator(args) -> None:
    """Sets args.accelerator (without SkyPilot's tpu- prefix) and args.runtime_version."""
    if not args.accelerator:
        raise ConfigError("--accelerator", "required: a Cloud TPU type such as v5litepod-16, v4-32 or v6e-8")
    args.accelerator = args.accelerator.removeprefix("tpu-")
    match = ACCELERATOR.fullmatch(args.accelerator)
    if not match:
        raise ConfigError("--accelerator", f"{args.accelerator!r} is not a Cloud TPU type; expected "
                                           "<generation>-<size> such as v5litepod-16, v4-32 or v6e-8")
    if not args.runtime_version:
        if match.group(1) not in RUNTIME_VERSIONS:
            raise ConfigError("--runtime_version", f"no default for {match.group(1)}; pass one (defaults exist for "
                                                   f"{', '.join(RUNTIME_VERSIONS)})")
        args.runtime_version = RUNTIME_VERSIONS[match.group(1)]


def check_code(args) -> None:
    """Exactly one code source; sets args.checkout and args.commit (--code) or args.git_url and
    args.git_ref_name (--git_ref)."""
    if args.code and args.git_ref:
        raise ConfigError("--code", "give --code gs://bucket/prefix or --git_ref URL@REF, not both")
    if not args.code and not args.git_ref:
        raise ConfigError("--code", "required: --code gs://bucket/prefix (ships this checkout's HEAD) "
                                    "or --git_ref URL@REF (the workers clone)")
    if args.code:
        check_gcs("--code", args.code)
        args.checkout, args.commit = local_checkout()
        return
    url, _, ref = args.git_ref.rpartition("@")
    # "git@host:owner/repo" alone splits into url "git" and ref "host:owner/repo": refs hold no ':'.
    if not url or not ref or ":" in ref:
        raise ConfigError("--git_ref", f"{args.git_ref} is not URL@REF, e.g. "
                                       "https://github.com/me/arith_jax.git@main")
    args.git_url, args.git_ref_name = url, ref


def check_gcs(field: str, url: str) -> None:
    if not GCS.fullmatch(url):
        raise ConfigError(field, f"{url} is not gs://bucket/path (a bucket name has 3 to 63 lowercase letters, "
                                 "digits, '-', '_' and '.')")


def check_workdir(args) -> None:
    if not args.workdir:
        raise ConfigError("--workdir", "required: a gs://bucket/path that every host of every slice writes to")
    if not args.workdir.startswith("gs://"):
        raise ConfigError("--workdir", f"{args.workdir} is not gs://bucket/path; the hosts of a TPU slice share no "
                                       "disk, so checkpoints, results and TensorBoard must go to Cloud Storage")
    check_gcs("--workdir", args.workdir)
    args.workdir = args.workdir.rstrip("/")


def check_train_flags(args, takes_them: bool) -> None:
    if args.train_flags and not takes_them:
        raise ConfigError("TRAIN_FLAGS", f"flags after -- go to `arith-jax train`; {args.action} runs no training")
    for flag in args.train_flags:
        name = flag.split("=", 1)[0]
        if name in ("--dry-run", "--dry_run"):  # would launch for real, passing the flag to train
            raise ConfigError("TRAIN_FLAGS", f"{name} after -- would go to `arith-jax train`; put it before the --")
        if name in LAUNCHER_FLAGS:
            raise ConfigError("TRAIN_FLAGS", f"{name} is set by the launcher (--workdir, --shard=i/K, "
                                             "--distributed); give --workdir before the --")


def check_tpu_vm(args) -> None:
    check_common(args)
    if not args.zone:
        raise ConfigError("--zone", "required: the Cloud TPU zone of the slices, e.g. us-central2-b")
    action = args.action
    if action in ("create", "up"):
        check_accelerator(args)
    if action == "ship" and not args.code:
        raise ConfigError("--code", "ship needs --code gs://bucket/prefix (with --git_ref the workers clone)")
    if action in ("ship", "run", "up"):
        check_code(args)
    if action in ("run", "up"):
        check_workdir(args)
    if action == "logs" and not 0 <= args.share < args.shares:
        raise ConfigError("--share", f"{args.share} is not one of the {args.shares} shares (0 to {args.shares - 1})")
    check_train_flags(args, action in ("run", "up"))


def check_skypilot(args) -> None:
    check_common(args)
    if args.action == "launch":
        check_accelerator(args)
        check_code(args)
        check_workdir(args)
    check_train_flags(args, args.action == "launch")


def main(argv: list[str], runner=None, sleep=None) -> int:
    """Returns the exit code. `runner` (default subprocess.run) and `sleep` (time.sleep) are the
    only ways out of this module, so tests replace them."""
    runner, sleep = runner or subprocess.run, sleep or time.sleep  # looked up now: tests patch them
    try:
        args = parse(list(argv))
        if args.backend == "tpu-vm":
            check_tpu_vm(args)
            nodes = share_names(args.name, args.shares)
            if args.action == "up":
                return up(args, nodes, runner, sleep)
            return perform(tpu_vm_steps(args, nodes), args.dry_run, runner,
                           keep_going=args.action in ("delete", "status"))
        check_skypilot(args)
        jobs = share_names(args.name, args.shares)
        return perform(skypilot_steps(args, jobs), args.dry_run, runner, keep_going=args.action == "cancel")
    except ConfigError as error:
        return print_error(error)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
