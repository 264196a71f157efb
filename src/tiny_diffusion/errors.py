"""The one exception type for bad user input: the CLI prints its message and exits with code 2."""


class InputError(Exception):
    """Bad input from the user (a file, a flag, a config value). The message says what and how to fix it."""


class TrainingStopped(Exception):
    """Training stopped early on purpose (a signal, a NaN/Inf loss): the message says why and how to go on;
    the last good checkpoint stays in the run folder. The CLI exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class SamplingStopped(Exception):
    """Sampling ended early because its `stop` callable asked (sampling.trajectory): training's stop signals."""
