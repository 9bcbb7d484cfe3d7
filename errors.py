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


def decode_json(text, source: str, hint: str = ""):
    """The value of JSON ``text`` (str or bytes), or an InverseDVSError saying where ``source`` breaks,
    also for what the decoder refuses beyond syntax: an integer too long to convert, nesting too deep."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        reason = f"line {err.lineno}, column {err.colno}: {err.msg}"
    except UnicodeDecodeError as err:
        reason = f"byte {err.start} is not UTF-8"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        reason = str(err).split(";")[0]
    raise InverseDVSError(f"{source} is not valid JSON ({reason}). {hint}".strip())
