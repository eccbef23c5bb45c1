"""The one exception type users see for bad input.

Every check on user input raises ConfigError with a single line that starts with the
config field (``task.moduli: ...``) and says what is allowed, before anything compiles.
"""

import sys

from arith_jax.exit_codes import EXIT_BAD_CONFIG


class ConfigError(ValueError):
    """Bad user input: a config field, a CLI flag or a data file."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def under(self, field: str, context: str = "") -> "ConfigError":
        """The same complaint named by `field`, the setting the user actually wrote (e.g. a
        population's list entry rather than the single field it fills in)."""
        return ConfigError(field, context + self.message)


def print_error(error: ConfigError) -> int:
    """Print bad input the one way every command does (``error: <field>: ...`` on stderr) and
    return the exit code that tells a launcher not to retry."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_CONFIG
