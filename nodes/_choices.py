"""Choice inputs whose saved values are stable identifiers, with the labels older versions saved.

A workflow stores a choice input's value as it is, so the values are short snake_case identifiers
(``terminal``, ``crop_to_fill``) and each tooltip explains them. Earlier versions stored prose
labels (``"terminal (reference)"``); ``Choices`` keeps those workflows loading:

* ComfyUI checks a saved value with ``value in choices`` before it runs a node. ``Choices`` is the list
  ComfyUI shows (identifiers only, no duplicates in the menu) and also answers True for a renamed
  label, so the check passes;
* ``translate_renamed`` wraps each node's function so a renamed label arrives as its identifier.
"""

from __future__ import annotations

import functools
import inspect
import re


def snake_case(label: str) -> str:
    """The identifier for a prose label: its words before any '(…)', lower case, joined by '_'."""
    return re.sub(r"[^0-9a-z]+", "_", label.split("(")[0].lower()).strip("_")


class Choices(list):
    """The identifiers of a choice input, in menu order; ``renamed`` maps old saved values to them."""

    def __init__(self, identifiers, renamed: dict[str, str] | None = None):
        super().__init__(identifiers)
        self.renamed = dict(renamed or {})
        unknown = set(self.renamed.values()) - set(self)
        if unknown:
            raise ValueError(f"renamed values point at unknown identifiers {sorted(unknown)}")

    @classmethod
    def for_names(cls, names) -> "Choices":
        """Identifiers for a library's prose names (``snake_case`` of each); the names stay accepted as
        renamed values, and ``library_name`` turns an identifier back into the name the library takes."""
        identifiers = {snake_case(name): name for name in names}
        if len(identifiers) != len(names):
            raise ValueError(f"two of {list(names)} have the same identifier")
        choices = cls(identifiers, renamed={name: i for i, name in identifiers.items() if name != i})
        choices._library_names = identifiers
        return choices

    def library_name(self, identifier: str) -> str:
        """The library's name for ``identifier`` (from ``for_names``)."""
        return self._library_names[self.identifier(identifier)]

    def __contains__(self, value) -> bool:
        return list.__contains__(self, value) or (isinstance(value, str) and value in self.renamed)

    def identifier(self, value):
        """``value`` as an identifier (an old label translated; anything else unchanged)."""
        return self.renamed.get(value, value) if isinstance(value, str) else value


def renamed_inputs(cls) -> dict[str, Choices]:
    """Input name → Choices for every choice input of node class ``cls`` that has renamed values."""
    sections = cls.INPUT_TYPES()
    return {name: spec[0] for section in ("required", "optional") for name, spec in sections.get(section, {}).items()
            if isinstance(spec[0], Choices) and spec[0].renamed}


def translate_renamed(cls) -> None:
    """Wrap ``cls``'s FUNCTION so its choice inputs arrive as identifiers, whatever version saved them."""
    inputs = renamed_inputs(cls)
    if not inputs:
        return
    function = getattr(cls, cls.FUNCTION)
    signature = inspect.signature(function)

    @functools.wraps(function)
    def run(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        for name, choices in inputs.items():
            if name in bound.arguments:
                bound.arguments[name] = choices.identifier(bound.arguments[name])
        return function(*bound.args, **bound.kwargs)

    setattr(cls, cls.FUNCTION, run)
