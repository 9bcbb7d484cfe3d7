"""The one place a model file is read: JSON configs and safetensors weights, checked before use.

Every failure is an ``InverseDVSError`` that names the file, says what is wrong with it and what
to do (``hint``), instead of a traceback from json, safetensors or transformers deep in a load.
"""

from __future__ import annotations

import glob
import hashlib
import os

from ..errors import InverseDVSError, decode_json

# A safetensors file: 8-byte little-endian header length, a JSON header, then the tensor data.
SAFETENSORS_PREFIX_BYTES = 8
SAFETENSORS_MAX_HEADER = 100 * 1024**2
ONLY_SAFETENSORS = "Only .safetensors weights are loaded (pickled weights can run code)"
NOT_SAFETENSORS = ("is not in safetensors format (it may be a renamed pickle .bin/.pt/.ckpt file). "
                   + ONLY_SAFETENSORS)
WRONG_EXTENSION = "is not a .safetensors file. " + ONLY_SAFETENSORS


def read_json(path: str, what: str, hint: str) -> dict:
    """The JSON object in ``path`` (a config file), or InverseDVSError naming ``what`` and the ``hint``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InverseDVSError(f"{what} '{path}' is missing. {hint}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InverseDVSError(f"{what} '{path}' cannot be read ({err.__class__.__name__}). {hint}") from None
    if not text.strip():
        raise InverseDVSError(f"{what} '{path}' is empty. {hint}")
    value = decode_json(text, f"{what} '{path}'", hint)
    if not isinstance(value, dict):
        raise InverseDVSError(f"{what} '{path}' holds a JSON {type(value).__name__}, not an object of settings. {hint}")
    return value


def safetensors_header(path: str, what: str, hint: str) -> dict:
    """The JSON header of a safetensors file, after checking the file holds all the data it declares.

    Reads only the header (never unpickles anything); a truncated download or a renamed pickle
    file is refused here, before any weights are loaded.
    """
    name = os.path.basename(path)
    if not name.lower().endswith(".safetensors"):
        raise InverseDVSError(f"{what} '{name}' {WRONG_EXTENSION}; {hint}")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(SAFETENSORS_PREFIX_BYTES)
            length = int.from_bytes(prefix, "little") if len(prefix) == SAFETENSORS_PREFIX_BYTES else 0
            if not 2 <= length <= min(SAFETENSORS_MAX_HEADER, size - SAFETENSORS_PREFIX_BYTES):
                raise InverseDVSError(f"{what} '{name}' {NOT_SAFETENSORS}; {hint}")
            raw = f.read(length)
    except OSError as err:
        raise InverseDVSError(f"{what} '{path}' cannot be read ({err.__class__.__name__}). {hint}") from None
    try:
        header = decode_json(raw, name)
    except InverseDVSError:
        raise InverseDVSError(f"{what} '{name}' {NOT_SAFETENSORS}; {hint}") from None
    if not isinstance(header, dict):
        raise InverseDVSError(f"{what} '{name}' {NOT_SAFETENSORS}; {hint}")
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    declared = max(ends, default=0)
    present = size - SAFETENSORS_PREFIX_BYTES - length
    if present < declared:
        raise InverseDVSError(
            f"{what} '{path}' is truncated: it declares {declared} bytes of tensors but holds {present} "
            f"(an interrupted download or copy). {hint}"
        )
    return header


def check_weight_folder(folder: str, what: str, hint: str) -> list[str]:
    """Every ``*.safetensors`` in ``folder`` complete (``safetensors_header``); returns their paths, sorted."""
    paths = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    for path in paths:
        safetensors_header(path, what, hint)
    return paths


def weights_fingerprint(paths: list[str], *extra) -> str:
    """A short id of a set of weight files (real path, size, modification time) and ``extra`` settings.

    Cheap (no weights are read) and different for other files, another copy's edits, another LoRA
    or strength; LATENTs carry it so noise inverted with other weights is refused.
    """
    digest = hashlib.sha1()
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(repr(extra).encode())
    return digest.hexdigest()[:16]
