"""Validation of a config dataclass against the types that declare its fields: string options
against their ``Literal`` values, numbers and flags against int, float and bool (``--set
optim.epochs=ten`` is refused when the config is built, before a run folder exists), with the
allowed values in the message, written in one place: the annotation. Ranges, which no
annotation says, are checked by ``check_ranges``."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any, Dict, Optional, Tuple


def literal_values(annotation: Any) -> Tuple[Any, ...]:
    """The values a ``Literal[...]`` (or ``Optional[Literal[...]]``) admits; () for other types."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union:
        return tuple(v for arg in typing.get_args(annotation) for v in literal_values(arg))
    return ()


def _type_name(annotation: Any) -> Optional[str]:
    """What a value of a plain annotation must be, in words; None where the value fits it or the
    annotation is not one this module checks (dicts, Literals)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        names = [_type_name(a) for a in args if a is not type(None)]
        return names[0] if len(names) == 1 else None
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        plural = {"a whole number": "whole numbers", "a number": "numbers", "a string": "strings",
                  "true or false": "true or false values"}
        inner = _type_name(args[0])
        return f"a list of {plural[inner]}" if inner else None
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(annotation)


def _fits(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return any(_fits(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return isinstance(value, (tuple, list)) and all(_fits(v, args[0]) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:  # 1 is a fine learning rate; true is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True  # Literal (checked by value), Dict, ...: not this check's


def check_choices(instance: Any, section: str) -> None:
    """Raises ValueError naming ``section.field`` for any field whose value its Literal type does
    not admit or whose type is not the annotated bool, int, float, str (or a tuple of them)."""
    hints = typing.get_type_hints(type(instance))
    for f in fields(instance):
        annotation, value = hints[f.name], getattr(instance, f.name)
        allowed = literal_values(annotation)
        if allowed:
            if value not in allowed and not (value is None and type(None) in typing.get_args(annotation)):
                raise ValueError(f"{section}.{f.name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        elif not _fits(value, annotation):
            optional = type(None) in typing.get_args(annotation)
            raise ValueError(f"{section}.{f.name} must be {_type_name(annotation)}{' or null' if optional else ''}; "
                             f"got {value!r}")


def check_ranges(instance: Any, section: str, least: Dict[str, float] = {}, above: Dict[str, float] = {},
                 most: Dict[str, float] = {}) -> None:
    """Raises ValueError naming ``section.field`` for a value below ``least``, not above
    ``above`` or above ``most`` (None, for optional fields, passes)."""
    for name, bound in least.items():
        value = getattr(instance, name)
        if value is not None and value < bound:
            raise ValueError(f"{section}.{name} must be at least {bound}; got {value!r}")
    for name, bound in above.items():
        value = getattr(instance, name)
        if value is not None and not value > bound:
            raise ValueError(f"{section}.{name} must be greater than {bound}; got {value!r}")
    for name, bound in most.items():
        value = getattr(instance, name)
        if value is not None and value > bound:
            raise ValueError(f"{section}.{name} must be at most {bound}; got {value!r}")
