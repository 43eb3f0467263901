"""The one exception type that user-facing commands turn into a clear message and exit code 2."""


class NeumatError(Exception):
    """An error caused by the user's input or machine, with a message that says what to do.

    The CLI prints it without a traceback and exits with code 2; programmer errors stay ordinary
    exceptions so their tracebacks remain visible.
    """
