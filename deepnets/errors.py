"""Errors that mean "the input is wrong": the CLI prints them as one line and exits with 2."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError


class InputError(ValueError):
    """Bad user input, detected before any cluster work; the message is one line."""


class ConfigError(InputError):
    """A configuration value, key or file is invalid."""


class DataError(InputError):
    """A dataset is missing, unreadable or does not fit the model."""


class SweepInterrupted(RuntimeError):
    """Tune stopped on a signal (Ctrl-C) with trials unfinished; its state is saved."""


def _field_path(loc: tuple) -> str:
    # An empty loc means a model-level validator failed: its message names the fields itself.
    return "".join(f"{part}: " if i == len(loc) - 1 else f"{part}." for i, part in enumerate(loc))


def _allowed_keys(root: type[BaseModel] | None, parents: tuple) -> str:
    """The field names of the section that holds `parents + (key,)`, for unknown-key errors."""
    section = root
    for part in parents:
        field = section.model_fields.get(str(part)) if section else None
        annotation = field.annotation if field else None
        section = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return f"; allowed: {', '.join(section.model_fields)}" if section else ""


def format_validation_error(
    err: ValidationError, source: str, root: type[BaseModel] | None = None
) -> str:
    """One line: `source: field.path: what is wrong (got VALUE)`, first error first."""
    first = err.errors()[0]
    field = _field_path(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key" + _allowed_keys(root, first["loc"][:-1])
    shown = first.get("input")
    got = (
        "" if isinstance(shown, dict) or first["type"] == "extra_forbidden" else f" (got {shown!r})"
    )
    more = f" [+{err.error_count() - 1} more]" if err.error_count() > 1 else ""
    return f"{source}: {field}{message}{got}{more}".replace("\n", " ")
