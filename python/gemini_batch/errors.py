"""One base exception for everything the package raises on purpose.

Messages say what was wrong, where (model, table, row, field) and what to do: the CLI
prints them as they are, without a traceback.
"""


class GeminiBatchError(Exception):
    """Base class: an error the user can act on."""


class ConfigError(GeminiBatchError):
    """A model config, profile, flag or environment variable is missing or wrong."""


class LocalStackError(GeminiBatchError):
    """The local BigQuery or Vertex AI emulator could not be started, reached or stopped."""
