"""Moved to :mod:`mixing.input_files` (the one reader of untrusted input files); kept so that
existing imports keep working."""

from .input_files import (  # noqa: F401
    MAX_JSON_DEPTH, BadLine, decode_utf8, iter_jsonl, load_json_file, parse_json, read_bytes, read_text,
)
