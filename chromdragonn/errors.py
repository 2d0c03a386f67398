"""The one exception type users see for bad input.

Every message is one line and names the file, line or value at fault; the
command-line entry points print it as ``error: <message>`` and exit non-zero.
"""


class ChromDragoNNError(ValueError):
    """Bad input: a file, a record or a value that cannot be used as given."""

    def __init__(self, message: str):
        # One line, whatever the caller built the message from.
        super().__init__(" ".join(str(message).split()))
