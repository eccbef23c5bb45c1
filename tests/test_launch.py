"""`arith-jax launch`: the exact commands of every dry run, the `up` recovery loop against a
scripted gcloud, one-line errors for bad input, and every launcher command of
docs/cloud_tpu.md. No gcloud, sky or JAX runs here."""

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from arith_jax import cli, launch

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = f"gs://my-arith-bucket/code/arith_jax-{COMMIT}.tar.gz"
# What every worker runs before the train command, with --code and with --git_ref.
SETUP_GCS = ("mkdir -p ~/arith_jax_run && cd ~/arith_jax_run && rm -f exit_code && rm -rf src && mkdir src"
             f" && gcloud storage cat {TARBALL} | tar -xzf - -C src"
             " && python3 -m pip install -q uv && rm -rf venv && python3 -m uv venv -q --python 3.12 venv"
             ' && python3 -m uv pip install -q --python venv/bin/python "jax[tpu]" ./src')
SETUP_GIT = ("mkdir -p ~/arith_jax_run && cd ~/arith_jax_run && rm -f exit_code && rm -rf src && mkdir src"
             " && git clone -q https://github.com/me/arith_jax.git src && git -C src checkout -q main"
             " && python3 -m pip install -q uv && rm -rf venv && python3 -m uv venv -q --python 3.12 venv"
             ' && python3 -m uv pip install -q --python venv/bin/python "jax[tpu]" ./src')
TRAIN = "cd ~/arith_jax_run/src && ~/arith_jax_run/venv/bin/python -m arith_jax.cli train --distributed --quiet"
START = ' && (nohup bash -c "{train}; echo \\$? > ~/arith_jax_run/exit_code" > ~/arith_jax_run/train.log 2>&1 < /dev/null &)'


@pytest.fixture(autouse=True)
def checkout(monkeypatch):
    """A fixed HEAD commit, so that the expected tarball names do not change with every commit."""
    monkeypatch.setattr(launch, "local_checkout", lambda: ("checkout", COMMIT))


@pytest.fixture
def no_subprocess(monkeypatch):
    """Dry runs and bad input start no process."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def with_dry_run(argv):
    """--dry-run goes before the `--` that starts the train flags."""
    at = argv.index("--") if "--" in argv else len(argv)
    return [*argv[:at], "--dry-run", *argv[at:]]


def launch_cli(capsys, *argv):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["arith-jax", "launch", *argv])
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


# --- (a) one v5litepod-16 spot slice ---------------------------------------------------------

def test_up_one_spot_slice_prints_create_ship_run_and_the_watch(capsys, no_subprocess):
    code, out, err = launch_cli(
        capsys, "tpu-vm", "up", "--name", "acl-mod", "--zone", "us-west4-a", "--accelerator", "v5litepod-16",
        "--code", "gs://my-arith-bucket/code", "--workdir", "gs://my-arith-bucket/runs/acl_mod", "--dry-run",
        "--", "--config=configs/acl2025_mod_addition.py")
    run = SETUP_GCS + START.format(
        train=f"{TRAIN} --workdir=gs://my-arith-bucket/runs/acl_mod --config=configs/acl2025_mod_addition.py")
    assert (code, err) == (0, "")
    assert out == (
        "gcloud compute tpus queued-resources create acl-mod --node-id=acl-mod --zone=us-west4-a"
        " --accelerator-type=v5litepod-16 --runtime-version=v2-alpha-tpuv5-lite --spot\n"
        f"git archive --format=tar.gz HEAD | gcloud storage cp - {TARBALL}\n"
        "# each run below starts once its queued resource is ACTIVE\n"
        f"gcloud compute tpus tpu-vm ssh acl-mod --zone=us-west4-a --worker=all '--command={run}'\n"
        "# then every 60 s until every train command has exited 0 or 2:\n"
        "# gcloud compute tpus queued-resources describe acl-mod --zone=us-west4-a '--format=value(state.state)'\n"
        "# gcloud compute tpus tpu-vm ssh acl-mod --zone=us-west4-a --worker=0"
        " '--command=cat ~/arith_jax_run/exit_code 2>/dev/null || true'\n"
        "# SUSPENDED (preempted): delete, create, run again; exit 3: run again;"
        " FAILED or another exit code: the same, at most --max_restarts=3 times\n")


def test_the_remote_command_is_one_valid_shell_line(capsys):
    code, out, _ = launch_cli(
        capsys, "tpu-vm", "run", "--zone", "us-west4-a", "--code", "gs://my-arith-bucket/code",
        "--workdir", "gs://my-arith-bucket/runs/x", "--dry-run", "--", "--config.population.seeds=(0,1,2)",
        "--config.task.name=it's $HOME")
    argv = shlex.split(out)
    assert code == 0 and argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "arith-jax"]
    script = argv[-1].removeprefix("--command=")
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    # The flags reach the trainer word for word through both shells.
    inner = re.search(r'nohup bash -c "(.*)" > ', script).group(1)
    inner = re.sub(r"\\([\\\"$`])", r"\1", inner)
    train = shlex.split(inner.split(" && ", 1)[1].split("; echo")[0])
    assert train[-2:] == ["--config.population.seeds=(0,1,2)", "--config.task.name=it's $HOME"]


# --- (b) a 4-way split sweep -----------------------------------------------------------------

def test_up_four_shares_creates_four_slices_and_runs_shard_i_of_4(capsys, no_subprocess):
    code, out, _ = launch_cli(
        capsys, "tpu-vm", "up", "--name", "pe-sweep", "--zone", "us-west4-a", "--accelerator", "v5litepod-16",
        "--shares", "4", "--git_ref", "https://github.com/me/arith_jax.git@main",
        "--workdir", "gs://my-arith-bucket/runs/pe_sweep", "--dry-run", "--", "--config=configs/pe_sweep.py")
    creates = [f"gcloud compute tpus queued-resources create pe-sweep-{i} --node-id=pe-sweep-{i} --zone=us-west4-a"
               " --accelerator-type=v5litepod-16 --runtime-version=v2-alpha-tpuv5-lite --spot" for i in range(4)]
    runs = [f"gcloud compute tpus tpu-vm ssh pe-sweep-{i} --zone=us-west4-a --worker=all '--command="
            + SETUP_GIT + START.format(train=f"{TRAIN} --workdir=gs://my-arith-bucket/runs/pe_sweep --shard={i}/4"
                                             " --config=configs/pe_sweep.py") + "'" for i in range(4)]
    watch = []
    for i in range(4):
        watch += [f"# gcloud compute tpus queued-resources describe pe-sweep-{i} --zone=us-west4-a"
                  " '--format=value(state.state)'",
                  f"# gcloud compute tpus tpu-vm ssh pe-sweep-{i} --zone=us-west4-a --worker=0"
                  " '--command=cat ~/arith_jax_run/exit_code 2>/dev/null || true'"]
    assert code == 0
    assert out.splitlines() == [
        *creates, "# each run below starts once its queued resource is ACTIVE", *runs,
        "# then every 60 s until every train command has exited 0 or 2:", *watch,
        "# SUSPENDED (preempted): delete, create, run again; exit 3: run again;"
        " FAILED or another exit code: the same, at most --max_restarts=3 times"]


# --- (c) teardown and the single actions -----------------------------------------------------

def test_delete_removes_every_share(capsys, no_subprocess):
    code, out, _ = launch_cli(capsys, "tpu-vm", "delete", "--name", "pe-sweep", "--zone", "us-west4-a",
                              "--shares", "4", "--dry-run")
    assert code == 0
    assert out == "".join(f"gcloud compute tpus queued-resources delete pe-sweep-{i} --zone=us-west4-a"
                          " --force --async --quiet\n" for i in range(4))


def test_create_on_demand_in_a_project_with_its_own_runtime(capsys, no_subprocess):
    code, out, _ = launch_cli(capsys, "tpu-vm", "create", "--name", "big", "--zone", "us-central2-b",
                              "--project", "my-project", "--accelerator", "v4-32", "--on_demand",
                              "--runtime_version", "tpu-vm-v4-base", "--dry-run")
    assert code == 0
    assert out == ("gcloud compute tpus queued-resources create big --node-id=big --zone=us-central2-b"
                   " --project=my-project --accelerator-type=v4-32 --runtime-version=tpu-vm-v4-base\n")


@pytest.mark.parametrize("accelerator,runtime", [("v4-8", "tpu-ubuntu2204-base"), ("v5p-8", "v2-alpha-tpuv5"),
                                                 ("v6e-8", "v2-alpha-tpuv6e"), ("tpu-v6e-16", "v2-alpha-tpuv6e")])
def test_runtime_version_defaults_per_generation(capsys, accelerator, runtime):
    code, out, _ = launch_cli(capsys, "tpu-vm", "create", "--zone", "z", "--accelerator", accelerator, "--dry-run")
    assert code == 0 and f"--accelerator-type={accelerator.removeprefix('tpu-')} --runtime-version={runtime} " in out


def test_ship_status_logs_and_run(capsys, no_subprocess):
    where = ["--name", "pe-sweep", "--zone", "us-west4-a", "--shares", "2", "--dry-run"]
    assert launch_cli(capsys, "tpu-vm", "ship", "--code", "gs://my-arith-bucket/code/", *where)[1] == (
        f"git archive --format=tar.gz HEAD | gcloud storage cp - {TARBALL}\n")
    assert launch_cli(capsys, "tpu-vm", "status", *where)[1] == "".join(
        f"gcloud compute tpus queued-resources describe pe-sweep-{i} --zone=us-west4-a"
        " '--format=value(name.basename(),state.state)'\n" for i in range(2))
    assert launch_cli(capsys, "tpu-vm", "logs", "--share", "1", *where)[1] == (
        "gcloud compute tpus tpu-vm ssh pe-sweep-1 --zone=us-west4-a --worker=0"
        " '--command=tail -n +1 -F ~/arith_jax_run/train.log'\n")
    out = launch_cli(capsys, "tpu-vm", "run", "--code", "gs://my-arith-bucket/code",
                     "--workdir", "gs://my-arith-bucket/runs/pe_sweep/", *where)[1]
    assert out == "".join(
        f"gcloud compute tpus tpu-vm ssh pe-sweep-{i} --zone=us-west4-a --worker=all '--command=" + SETUP_GCS
        + START.format(train=f"{TRAIN} --workdir=gs://my-arith-bucket/runs/pe_sweep --shard={i}/2") + "'\n"
        for i in range(2))


# --- (d) SkyPilot ----------------------------------------------------------------------------

SKY_YAML = """\
cat > runs/skypilot/pe-sweep-{i}.yaml <<'EOF'
name: pe-sweep-{i}
resources:
  infra: gcp/*/us-west4-a
  accelerators: tpu-v5litepod-16
  accelerator_args:
    runtime_version: v2-alpha-tpuv5-lite
  use_spot: true
  job_recovery:
    strategy: FAILOVER
    max_restarts_on_errors: 3
    recover_on_exit_codes:
    - 3
setup: |
  set -e
  mkdir -p ~/arith_jax_run
  cd ~/arith_jax_run
  rm -f exit_code
  rm -rf src
  mkdir src
  gcloud storage cat gs://my-arith-bucket/code/arith_jax-{commit}.tar.gz | tar -xzf - -C src
  python3 -m pip install -q uv
  rm -rf venv
  python3 -m uv venv -q --python 3.12 venv
  python3 -m uv pip install -q --python venv/bin/python "jax[tpu]" ./src
run: |
  cd ~/arith_jax_run/src && ~/arith_jax_run/venv/bin/python -m arith_jax.cli train --distributed --quiet \
--workdir=gs://my-arith-bucket/runs/pe_sweep --shard={i}/4 --config=configs/pe_sweep.py
EOF
"""
SKY_LAUNCH = ["skypilot", "--name", "pe-sweep", "--zone", "us-west4-a", "--accelerator", "v5litepod-16",
              "--shares", "4", "--code", "gs://my-arith-bucket/code", "--workdir", "gs://my-arith-bucket/runs/pe_sweep"]


def test_skypilot_prints_four_task_yamls_and_four_launches(capsys, no_subprocess, tmp_path):
    code, out, _ = launch_cli(capsys, *SKY_LAUNCH, "--dry-run", "--", "--config=configs/pe_sweep.py")
    assert code == 0
    assert out == (f"git archive --format=tar.gz HEAD | gcloud storage cp - {TARBALL}\n"
                   "mkdir -p runs/skypilot\n"
                   + "".join(SKY_YAML.format(i=i, commit=COMMIT) for i in range(4))
                   + "".join(f"sky jobs launch -d -y -n pe-sweep-{i} runs/skypilot/pe-sweep-{i}.yaml\n"
                             for i in range(4)))
    # Each heredoc is a SkyPilot task whose run command trains share i.
    tasks = [yaml.safe_load(text) for text in re.findall(r"<<'EOF'\n(.*?)\nEOF", out, re.S)]
    assert [task["resources"]["job_recovery"]["recover_on_exit_codes"] for task in tasks] == [[3]] * 4
    assert [task["run"].split()[-2] for task in tasks] == [f"--shard={i}/4" for i in range(4)]


def test_skypilot_cancel_prints_one_cancel_per_share(capsys, no_subprocess):
    code, out, _ = launch_cli(capsys, "skypilot", "cancel", "--name", "pe-sweep", "--shares", "4", "--dry-run")
    assert code == 0
    assert out == "".join(f"sky jobs cancel -y -n pe-sweep-{i}\n" for i in range(4))


def test_skypilot_dry_run_writes_nothing_and_the_real_run_writes_what_it_printed(capsys, tmp_path):
    yaml_dir = str(tmp_path / "yamls")
    argv = [*SKY_LAUNCH, "--yaml_dir", yaml_dir, "--", "--config=configs/pe_sweep.py"]
    cloud = FakeCloud([], [])
    assert launch.main(["--dry-run", *argv], runner=cloud) == 2  # launch's own flag goes after the backend
    assert launch.main([*argv[:-2], "--dry-run", *argv[-2:]], runner=cloud) == 0
    printed = capsys.readouterr().out
    assert cloud.calls == [] and not os.path.exists(yaml_dir)
    assert launch.main(argv, runner=cloud) == 0
    assert cloud.kinds() == ["archive", "upload"] + ["sky launch"] * 4
    assert cloud.calls[-1] == ["sky", "jobs", "launch", "-d", "-y", "-n", "pe-sweep-3",
                               os.path.join(yaml_dir, "pe-sweep-3.yaml")]
    for i in range(4):
        with open(os.path.join(yaml_dir, f"pe-sweep-{i}.yaml")) as f:
            assert f"<<'EOF'\n{f.read()}EOF\n" in printed


# --- the `up` loop against a scripted gcloud -------------------------------------------------

class FakeCloud:
    """Stands in for subprocess.run: `describe` answers the next of `states` ("" = not found),
    reading the exit code answers the next of `exits`, everything else succeeds."""

    def __init__(self, states, exits, fail=()):
        self.states, self.exits, self.fail, self.calls = list(states), list(exits), set(fail), []

    @staticmethod
    def kind(argv):
        if argv[:2] == ["git", "archive"]:
            return "archive"
        if argv[:3] == ["gcloud", "storage", "cp"]:
            return "upload"
        if argv[0] == "sky":
            return f"sky {argv[2]}"
        if argv[4] == "ssh":
            return "run" if "--worker=all" in argv else "read exit"
        return argv[4]  # queued-resources create, describe, delete

    def kinds(self):
        return [self.kind(argv) for argv in self.calls]

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        kind = self.kind(argv)
        if kind == "describe":
            state = self.states.pop(0)
            return subprocess.CompletedProcess(argv, 0 if state else 1, stdout=state + "\n", stderr="")
        if kind == "read exit":
            return subprocess.CompletedProcess(argv, 0, stdout=self.exits.pop(0), stderr="")
        if kind == "archive":
            return subprocess.CompletedProcess(argv, 0, stdout=b"tarball")
        return subprocess.CompletedProcess(argv, 1 if kind in self.fail else 0)


UP = ["tpu-vm", "up", "--name", "acl-mod", "--zone", "us-west4-a", "--accelerator", "v5litepod-16",
      "--code", "gs://my-arith-bucket/code", "--workdir", "gs://my-arith-bucket/runs/acl_mod"]


def run_up(cloud, *flags):
    sleeps = []
    code = launch.main([*UP, *flags], runner=cloud, sleep=sleeps.append)
    return code, sleeps


def test_up_recreates_a_preempted_slice_runs_again_and_stops_on_exit_0(capsys):
    cloud = FakeCloud(["WAITING_FOR_RESOURCES", "ACTIVE", "ACTIVE", "SUSPENDED", "DELETING", "",
                       "PROVISIONING", "ACTIVE", "ACTIVE"], ["", "0\n"])
    code, sleeps = run_up(cloud)
    assert code == 0 and sleeps == [60] * 8
    assert cloud.kinds() == [
        "create", "archive", "upload",
        "describe",                   # waiting for capacity
        "describe", "run",            # ACTIVE: start training
        "describe", "read exit",      # still training
        "describe", "delete",         # preempted
        "describe",                   # still deleting
        "describe", "create",         # gone: queue it again
        "describe",                   # provisioning
        "describe", "run",            # ACTIVE again: the same command resumes
        "describe", "read exit"]      # exit 0: done
    runs = [argv for argv in cloud.calls if FakeCloud.kind(argv) == "run"]
    assert runs[0] == runs[1]  # the rerun is the same command
    assert "delete the slices with: arith-jax launch tpu-vm delete --name=acl-mod --zone=us-west4-a --shares=1" \
        in capsys.readouterr().out


def test_up_stops_on_exit_2_without_running_again():
    cloud = FakeCloud(["ACTIVE", "ACTIVE"], ["2\n"])
    assert run_up(cloud) == (2, [60])
    assert cloud.kinds() == ["create", "archive", "upload", "describe", "run", "describe", "read exit"]


def test_up_reruns_after_exit_3_without_counting_and_gives_up_after_max_restarts_crashes():
    cloud = FakeCloud(["ACTIVE"] * 6, ["3\n", "1\n", "1\n"])
    code, _ = run_up(cloud, "--max_restarts", "1")
    assert code == 1
    assert cloud.kinds()[3:] == ["describe", "run", "describe", "read exit",   # exit 3: run again, free
                                 "describe", "run", "describe", "read exit",   # crash: restart 1 of 1
                                 "describe", "run", "describe", "read exit"]   # crash again: give up


def test_up_bounds_failed_queued_resources_and_stops_when_the_first_create_fails():
    cloud = FakeCloud(["FAILED", "", "FAILED"], [])
    assert run_up(cloud, "--max_restarts", "1")[0] == 1
    assert cloud.kinds()[3:] == ["describe", "delete", "describe", "create", "describe"]
    cloud = FakeCloud([], [], fail={"create"})
    assert run_up(cloud) == (1, [])
    assert cloud.kinds() == ["create"]


def test_up_watches_every_share_until_each_has_exited():
    cloud = FakeCloud(["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE"], ["0\n", "0\n"])
    assert run_up(cloud, "--shares", "2") == (0, [60])
    runs = [argv[-1] for argv in cloud.calls if FakeCloud.kind(argv) == "run"]
    assert ["--shard=0/2" in runs[0], "--shard=1/2" in runs[1]] == [True, True]


# --- bad input: one line, exit 2, nothing run ------------------------------------------------

GOOD = ["--zone", "us-west4-a", "--accelerator", "v5litepod-16", "--code", "gs://my-arith-bucket/code",
        "--workdir", "gs://my-arith-bucket/runs/x"]


@pytest.mark.parametrize("argv,error", [
    (["tpu-vm", "up", *GOOD, "--accelerator", "v5e16"],
     "--accelerator: 'v5e16' is not a Cloud TPU type; expected <generation>-<size> such as v5litepod-16, v4-32 "
     "or v6e-8"),
    (["tpu-vm", "create", "--zone", "z", "--accelerator", "v9x-8"],
     "--runtime_version: no default for v9x; pass one (defaults exist for v2, v3, v4, v5litepod, v5p, v6e)"),
    (["tpu-vm", "create", "--zone", "z"],
     "--accelerator: required: a Cloud TPU type such as v5litepod-16, v4-32 or v6e-8"),
    (["tpu-vm", "up", *GOOD, "--shares", "0"],
     "--shares: 0 is not allowed; the number of slices must be at least 1"),
    (["tpu-vm", "up", *GOOD, "--shares", "four"], "--shares: invalid int value: 'four'"),
    (["tpu-vm", "up", *GOOD, "--workdir", "runs/acl"],
     "--workdir: runs/acl is not gs://bucket/path; the hosts of a TPU slice share no disk, so checkpoints, "
     "results and TensorBoard must go to Cloud Storage"),
    (["skypilot", *GOOD[2:], "--workdir", "/mnt/runs/acl"],
     "--workdir: /mnt/runs/acl is not gs://bucket/path; the hosts of a TPU slice share no disk, so checkpoints, "
     "results and TensorBoard must go to Cloud Storage"),
    (["tpu-vm", "run", *GOOD, "--workdir", "gs://B/x"],
     "--workdir: gs://B/x is not gs://bucket/path (a bucket name has 3 to 63 lowercase letters, digits, '-', "
     "'_' and '.')"),
    (["tpu-vm", "up", *GOOD[2:]], "--zone: required: the Cloud TPU zone of the slices, e.g. us-central2-b"),
    (["tpu-vm", "up", *GOOD, "--git_ref", "https://github.com/me/arith_jax.git@main"],
     "--code: give --code gs://bucket/prefix or --git_ref URL@REF, not both"),
    (["tpu-vm", "run", "--zone", "z", "--workdir", "gs://my-arith-bucket/x"],
     "--code: required: --code gs://bucket/prefix (ships this checkout's HEAD) or --git_ref URL@REF "
     "(the workers clone)"),
    (["skypilot", "--accelerator", "v6e-8", "--workdir", "gs://my-arith-bucket/x",
      "--git_ref", "git@github.com:me/arith_jax.git"],
     "--git_ref: git@github.com:me/arith_jax.git is not URL@REF, e.g. https://github.com/me/arith_jax.git@main"),
    (["tpu-vm", "ship", "--zone", "z", "--git_ref", "https://github.com/me/arith_jax.git@main"],
     "--code: ship needs --code gs://bucket/prefix (with --git_ref the workers clone)"),
    (["tpu-vm", "up", *GOOD, "--", "--workdir=runs/x"],
     "TRAIN_FLAGS: --workdir is set by the launcher (--workdir, --shard=i/K, --distributed); give --workdir "
     "before the --"),
    (["tpu-vm", "up", *GOOD, "--", "--dry_run"],
     "TRAIN_FLAGS: --dry_run after -- would go to `arith-jax train`; put it before the --"),
    (["tpu-vm", "delete", "--zone", "z", "--", "--config=configs/pe_sweep.py"],
     "TRAIN_FLAGS: flags after -- go to `arith-jax train`; delete runs no training"),
    (["tpu-vm", "logs", "--zone", "z", "--shares", "4", "--share", "4"],
     "--share: 4 is not one of the 4 shares (0 to 3)"),
    (["tpu-vm", "up", *GOOD, "--name", "My_Run"],
     "--name: 'My_Run' is not allowed; use lowercase letters, digits and hyphens, starting with a letter, "
     "at most 50 characters"),
    (["tpu-vm", "up", *GOOD, "--max_restarts", "-1"], "--max_restarts: -1 is not allowed; it must be at least 0"),
    (["tpu-vm", "up", *GOOD, "--frobnicate"], "arith-jax launch: unrecognized arguments: --frobnicate"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(capsys, no_subprocess, argv, error):
    code, out, err = launch_cli(capsys, *with_dry_run(argv))
    assert (code, out, err) == (2, "", f"error: {error}\n")


@pytest.mark.parametrize("argv", [[], ["gke", "up"], ["tpu-vm", "start", "--zone", "z"]])
def test_bad_backend_or_action_is_one_line_too(capsys, no_subprocess, argv):
    code, out, err = launch_cli(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1


# --- reading HEAD without running git --------------------------------------------------------

def _git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_head_commit_reads_loose_and_packed_refs_and_worktrees(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "f").write_text("x")
    _git("add", "f", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    assert launch.head_commit(str(repo)) == head
    _git("pack-refs", "--all", cwd=repo)
    assert launch.head_commit(str(repo)) == head
    _git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"), cwd=repo)
    assert launch.head_commit(str(tmp_path / "wt")) == head
    assert launch.find_checkout(str(tmp_path / "wt")) == str(tmp_path / "wt")


# --- every launcher command of docs/cloud_tpu.md ---------------------------------------------

def doc_commands():
    with open(os.path.join(REPO, "docs", "cloud_tpu.md")) as f:
        blocks = re.findall(r"```bash\n(.*?)```", f.read(), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith("arith-jax launch ")]


def test_the_docs_show_the_walk_through():
    commands = [" ".join(argv[2:4]) for argv in doc_commands()]
    for needed in ("tpu-vm up", "tpu-vm create", "tpu-vm ship", "tpu-vm run", "tpu-vm status", "tpu-vm logs",
                   "tpu-vm delete", "skypilot cancel"):
        assert needed in commands
    assert any("--shares" in argv for argv in doc_commands() if argv[2] == "skypilot" and "cancel" not in argv)


@pytest.mark.parametrize("argv", doc_commands(), ids=lambda argv: " ".join(argv[2:4]))
def test_every_docs_command_runs_in_dry_run(capsys, no_subprocess, argv):
    with pytest.raises(SystemExit) as stopped:
        cli.main(with_dry_run(argv))
    out, err = capsys.readouterr()
    assert (stopped.value.code, err) == (0, "") and out
