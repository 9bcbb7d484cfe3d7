"""The one exception type the pack raises for bad input.

Every message says what was wrong and what to do about it. ComfyUI shows the message of an
exception raised by a node in its error dialog, so the text is written for the artist.
"""

# ComfyUI titles its error dialog with the exception's module and qualified name, and a custom node's
# module is named after its folder path ("/…/custom_nodes/ComfyUI-InverseDVS.errors"). Presented as a
# built-in, the class reads as this title alone, in the dialog and in a printed traceback.
ERROR_TITLE = "InverseDVS error"


class InverseDVSError(ValueError):
    """Bad input to an InverseDVS node or library function (message: what was wrong, what to do)."""

    __module__ = "builtins"
    __qualname__ = ERROR_TITLE
