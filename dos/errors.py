"""The error type for messages meant for the user (bad input, bad config): `dos` prints it as one line."""


class DosError(Exception):
    """An error with a message meant for the user: printed as `dos: error: ...`, without a traceback."""
