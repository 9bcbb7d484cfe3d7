"""The one exception type the pack raises for bad input.

Every message says what was wrong and what to do about it. ComfyUI shows the message of an
exception raised by a node in its error dialog, so the text is written for the artist.
"""


class InverseDVSError(ValueError):
    """Bad input to an InverseDVS node or library function (message: what was wrong, what to do)."""
