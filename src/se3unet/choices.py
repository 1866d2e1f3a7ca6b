"""Validation of a config dataclass's string options against the ``Literal`` types that
declare them, so every option is checked when a config is built, with the allowed values in the
message, and the allowed values are written in one place: the annotation."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any, Tuple


def literal_values(annotation: Any) -> Tuple[Any, ...]:
    """The values a ``Literal[...]`` (or ``Optional[Literal[...]]``) admits; () for other types."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union:
        return tuple(v for arg in typing.get_args(annotation) for v in literal_values(arg))
    return ()


def check_choices(instance: Any, section: str) -> None:
    """Raises ValueError naming ``section.field`` for any field whose value its Literal type does not admit."""
    hints = typing.get_type_hints(type(instance))
    for f in fields(instance):
        allowed = literal_values(hints[f.name])
        value = getattr(instance, f.name)
        if allowed and value not in allowed and not (value is None and type(None) in typing.get_args(hints[f.name])):
            raise ValueError(f"{section}.{f.name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
