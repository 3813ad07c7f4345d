"""The one error type a user sees: a problem with their input or configuration, reported in one line.

Every stage raises :class:`UserError` for bad usage or bad data it cannot quarantine; the command line prints
its message and exits with code 2, never a traceback.
"""


class UserError(Exception):
    """A problem with the user's input or configuration: reported in one line, never as a traceback."""

    exit_code = 2  # bad usage; DataError says the data is at fault


class DataError(UserError):
    """A problem with the data or the state of an output folder (exit code 1)."""

    exit_code = 1
