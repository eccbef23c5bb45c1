"""Exit codes of `arith-jax train`, the contract between the trainer and whatever restarts it.

A launcher (`arith-jax launch`, SkyPilot's `job_recovery`, a shell loop) decides from the exit
code alone whether running the same command again helps:

- EXIT_OK (0): finished; nothing to rerun.
- EXIT_BAD_CONFIG (2): bad input (a ConfigError, one line on stderr). Rerunning fails the same
  way: never retry.
- EXIT_RETRY (3): stopped by SIGTERM or a preemption notice after saving a checkpoint. Rerun
  the same command: it resumes from that checkpoint.

Any other non-zero code is a crash: retry it a bounded number of times.
"""

EXIT_OK = 0
EXIT_BAD_CONFIG = 2
EXIT_RETRY = 3
