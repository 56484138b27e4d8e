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


def refuse_foreign_options(task: str, source: object,
                           options: list[tuple[str, bool, tuple[str, ...], str]]) -> None:
    """Refuse the first option given that a ``task`` model does not read (never ignore it).

    Args:
        task: the model's task (``cyclegan``, ``sr`` …).
        source: the model's path, named in the message.
        options: ``(flag, given, tasks that read it, what the message calls those models)``.

    Raises:
        TranslateError: e.g. "--hr is for super-resolution models; RUN holds a 'cyclegan' model".
    """
    for flag, given, tasks, what in options:
        if given and task not in tasks:
            verb = "are" if " and " in flag else "is"
            raise TranslateError(f"{flag} {verb} for {what} models; {source} holds a '{task}' "
                                 "model")
