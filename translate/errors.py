"""The one error type the CLI turns into a one-line message and a non-zero exit."""


class TranslateError(Exception):
    """A problem with the user's input (config, files, checkpoints) that has a clear message.

    The CLI prints ``error: <message>`` on one line and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
