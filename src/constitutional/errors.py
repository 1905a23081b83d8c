"""The one exception type for mistakes a user can fix.

The CLI prints a `UserError` as a single line and exits 2; anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """Bad input: a malformed file, an unknown model, an out-of-range option."""
