"""The one exception a user sees as a one-line message (exit code 2) rather than a traceback."""


class NasError(Exception):
    """A mistake in what the user asked for or handed in: a bad name, file, value or combination."""
