"""User-facing errors: each carries a one-line message that names the column or file at fault."""


class DpsynthError(Exception):
    """Base class for errors the CLI prints as one line (no traceback) with exit code 2."""


class SchemaError(DpsynthError):
    """The schema file is malformed, or the data does not fit it."""


class DataError(DpsynthError):
    """A data file is missing, unreadable, or holds values the schema forbids."""


class PrivacyError(DpsynthError):
    """An impossible or unsafe privacy request (epsilon <= 0, delta >= 1/n, budget exhausted)."""


class ConfigError(DpsynthError):
    """A run configuration is malformed (unknown keys, wrong types)."""


class MissingExtraError(DpsynthError):
    """An optional dependency is not installed; the message names the pip extra."""
