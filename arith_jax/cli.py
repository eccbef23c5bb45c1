"""`arith-jax train | eval | report | analyze | data`.

absl/ml-collections flags: `--config=configs/x.py --config.train.steps=2000 --workdir=runs/x`.
With no --config the embedded default (arith_jax/default_config.py) runs.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from arith_jax import default_config
from arith_jax.errors import ConfigError, print_error
from arith_jax.exit_codes import EXIT_RETRY

COMMANDS = ("train", "eval", "report", "analyze", "data", "launch")
USAGE = f"""usage: arith-jax {{{'|'.join(COMMANDS)}}} [--flags]

  train    train a population (default: the embedded mod 100 vs mod 101 experiment)
  eval     evaluate the latest checkpoint of --workdir at --lengths (--best: each member's best)
  report   Markdown tables and PNG plots from the results in --workdir (every share of a split sweep)
  analyze  the IJCAI-2024 mechanistic plots for the members of --workdir
  data     print --n decoded examples of the configured task (--raw shows the tokens)
  launch   train on Cloud TPU slices (tpu-vm) or SkyPilot jobs; `arith-jax launch --help`

Run `arith-jax COMMAND --helpfull` for every flag."""

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Where checkpoints, TensorBoard runs, results and the report go (a directory or gs://bucket/path).")
flags.DEFINE_string("coordinator", "", "host:port of process 0 for multi-process runs off Cloud TPU.")
flags.DEFINE_integer("num_processes", 1, "Number of processes (with --coordinator).")
flags.DEFINE_integer("process_id", 0, "This process's index (with --coordinator).")
flags.DEFINE_bool("distributed", False, "Join a multi-host run that JAX detects by itself (Cloud TPU VMs).")
flags.DEFINE_list("lengths", [], "eval: operand lengths to evaluate (default: the config's eval.lengths).")
flags.DEFINE_bool("best", False, "eval: each member's best checkpoint by eval.select_lengths (kept in training), "
                                 "not the last.")
flags.DEFINE_integer("n", 10, "data: number of examples to print.")
flags.DEFINE_bool("raw", False, "data: show the raw token sequence beside each example.")
flags.DEFINE_integer("modulus", 0, "data: modulus to use (default: the config's first).")
flags.DEFINE_integer("seed", 0, "data: sampling seed.")
flags.DEFINE_string("member", "", "analyze: only the member with this name (default: every member).")
flags.DEFINE_bool("quiet", False, "train: no progress display.")
flags.DEFINE_string("shard", "", "train: i/K trains the i-th of K disjoint shares of the member grid into "
                                 "<workdir>/share-i-of-K (a sweep split over slices; report merges them).")


def _fail(error: ConfigError) -> None:
    sys.exit(print_error(error))


def _saved_config(workdir: str):
    from arith_jax import config as config_lib
    from arith_jax import workdir as workdir_lib
    try:
        return config_lib.from_json(workdir_lib.read_text(workdir_lib.join(workdir, workdir_lib.CONFIG_FILE)))
    except FileNotFoundError:
        raise ConfigError("--workdir", f"{workdir} holds no config.json; train there first") from None


def cmd_train() -> None:
    from arith_jax import report, sharding, train
    from arith_jax import workdir as workdir_lib
    from arith_jax import writers
    config, workdir = FLAGS.config, FLAGS.workdir
    shard = workdir_lib.parse_shard(FLAGS.shard)
    if shard is not None:
        config.population.shard = f"{shard[0]}/{shard[1]}"
        workdir = workdir_lib.join(workdir, workdir_lib.share_name(*shard))
    sharding.initialize_distributed(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id, FLAGS.distributed)
    try:
        result = train.train(config, workdir, console=not FLAGS.quiet)
    except train.Interrupted as stopped:
        import jax
        if jax.process_index() == 0:
            print(stopped, file=sys.stderr)
        sys.exit(EXIT_RETRY)
    import jax
    if jax.process_index() == 0:
        # A rerun of a finished workdir trains nothing new: show what it measured then.
        records = result.records or report.latest_records(writers.read_results(workdir))
        print(report.format_table(records))
        equivalence = report.format_table(records, "equiv_acc")  # the mechanism, when decoded
        if equivalence:
            print(f"\n{equivalence}")
        _print_published(workdir)
        print(f"report: {report.write_report(workdir)}")


def _print_published(workdir: str) -> None:
    from arith_jax import report
    comparison = report.format_published(workdir)
    if comparison:
        print(f"\n{comparison}")


def cmd_eval() -> None:
    from arith_jax import evaluate_checkpoint, report
    from arith_jax import workdir as workdir_lib
    lengths = [int(x) for x in FLAGS.lengths] if FLAGS.lengths else None
    for workdir in workdir_lib.shares(FLAGS.workdir):
        records, path = evaluate_checkpoint.run(_saved_config(workdir), workdir, lengths, best=FLAGS.best)
        print(report.format_table(records))
        print(f"results: {path}")


def cmd_report() -> None:
    from arith_jax import report
    path = report.write_report(FLAGS.workdir)
    _print_published(FLAGS.workdir)
    print(f"report: {path}")


def cmd_analyze() -> None:
    from arith_jax import evaluate_checkpoint
    from arith_jax import workdir as workdir_lib
    workdirs, found = workdir_lib.shares(FLAGS.workdir), False
    for workdir in workdirs:
        try:
            paths = evaluate_checkpoint.analyze_members(_saved_config(workdir), workdir, FLAGS.member)
        except ConfigError as error:
            if error.field == "--member" and len(workdirs) > 1:
                continue  # the member trained in another share
            raise
        found = True
        for path in paths:
            print(path)
    if not found:
        raise ConfigError("--member", f"{FLAGS.member!r} is not a member of any share of {FLAGS.workdir}")


def cmd_data() -> None:
    from arith_jax import population, printing
    config = FLAGS.config
    group = population.plan(config)[0]
    moduli = [m.get("p", 0) for m in group.members]
    modulus = FLAGS.modulus or moduli[0]
    if modulus and modulus not in moduli:
        raise ConfigError("--modulus", f"{modulus} is not one of the config's task.moduli {sorted(set(moduli))}")
    for line in printing.print_examples(group.spec, group.sampling_of(group.members[0]), FLAGS.n, FLAGS.seed, modulus, raw=FLAGS.raw):
        print(line)


def _run(argv) -> None:
    del argv
    # orbax and grain log every save and read at INFO through absl; a user wants warnings.
    logging.set_verbosity(logging.WARNING)
    handler = globals()[f"cmd_{_run.command}"]
    try:
        handler()
    except ConfigError as error:
        _fail(error)


def check_config_flags(args: list[str]) -> None:
    """A missing --config file, or a --config.a.b override that names no field, as one-line
    ConfigErrors (absl and ml-collections would print tracebacks), before anything loads JAX."""
    path, overrides = default_config.__file__, []
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config."):
            overrides.append(arg[len("--config."):].split("=", 1)[0])
    path = path.split(":", 1)[0]  # ml-collections' "file.py:argument" form
    if not os.path.isfile(path):
        raise ConfigError("--config", f"{path}: no such file")
    if not overrides:
        return
    config = _load_config_file(path)
    for dotted in overrides:
        node = config
        for depth, name in enumerate(dotted.split(".")):
            fields = list(node.keys()) if hasattr(node, "keys") else []
            if name not in fields:
                where = ".".join(dotted.split(".")[:depth]) or "the config"
                nearest = difflib.get_close_matches(name, fields, n=3, cutoff=0.5)
                hint = f"; nearest: {', '.join(nearest)}" if nearest else f"; {where} has {', '.join(fields)}"
                raise ConfigError(f"--config.{dotted}", f"{name!r} is not a field of {where}{hint}")
            node = node[name]


def _load_config_file(path: str):
    spec = importlib.util.spec_from_file_location("_arith_jax_checked_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        sys.exit(0 if len(argv) >= 2 and argv[1] in ("-h", "--help", "help") else 2)
    if argv[1] == "launch":  # its own argparse flags: no absl parsing, no config file
        from arith_jax import launch
        sys.exit(launch.main(argv[2:]))
    _run.command = argv[1]
    try:
        check_config_flags(argv[2:])
        if "config" not in FLAGS:
            # Defined here, not at import: ml-collections applies the --config.* overrides of
            # sys.argv as soon as the flag is defined, before they could be checked.
            config_flags.DEFINE_config_file("config", default_config.__file__, "Experiment config file (get_config()).")
        app.run(_run, argv=[argv[0]] + argv[2:])
    except ConfigError as error:  # raised while absl parses the config file
        _fail(error)


if __name__ == "__main__":
    main()
