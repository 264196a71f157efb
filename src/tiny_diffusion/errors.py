"""The one exception type for bad user input: the CLI prints its message and exits with code 2."""


class InputError(Exception):
    """Bad input from the user (a file, a flag, a config value). The message says what and how to fix it."""
