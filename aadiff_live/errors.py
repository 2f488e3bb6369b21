"""User-facing errors: one line that says what is wrong and how to fix it, exit code 2."""


class UserError(Exception):
    """A problem with what the user asked for. The CLI prints ``aadiff-live: error: <msg>`` and exits 2."""

    exit_code = 2
