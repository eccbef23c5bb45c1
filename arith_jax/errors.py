"""The one exception type users see for bad input.

Every check on user input raises ConfigError with a single line that starts with the
config field (``task.moduli: ...``) and says what is allowed, before anything compiles.
"""


class ConfigError(ValueError):
    """Bad user input: a config field, a CLI flag or a data file."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
