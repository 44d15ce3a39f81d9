"""Reading recipe YAML files: includes, command-line overrides, and errors that name the field.

A recipe may name a base recipe with ``include: base.yaml`` (a path relative to the including file, or a list of
them); the including file's keys override the base's, merging nested mappings. ``--set a.b=value`` overrides
are applied last; the value is parsed as YAML (``--set budget.nfe=2000`` gives an int).
"""

from __future__ import annotations

import copy
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

ModelT = TypeVar("ModelT", bound=BaseModel)


class RecipeError(ValueError):
    """A recipe cannot be read or is invalid; the message is one line naming the file and field."""


class RecipeModel(BaseModel):
    """Base of the recipe sections: unknown fields are errors, and a number written exactly as one of a text field's
    choices is that choice (``precision: 32`` in YAML or ``--set training.precision=32`` is ``"32"``), since YAML
    reads it as a number before the schema is known. Only an exact match is taken: ``32.0`` stays refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _numbers_as_text_choices(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for name, field in cls.model_fields.items():
            key = field.alias or name
            value = data.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if str(value) in _text_choices(field.annotation):
                    fixed[key] = str(value)
        return fixed


def _text_choices(annotation: Any) -> set[str]:
    """The string values of a ``Literal`` annotation, also inside ``X | None`` and unions; empty for other types."""
    origin = get_origin(annotation)
    if origin is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    if origin is Union or origin is types.UnionType:
        return set().union(*(_text_choices(a) for a in get_args(annotation)))
    return set()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping in ``path`` with its ``include`` chain resolved."""
    path = Path(path)
    if path.is_dir():
        raise RecipeError(f"{path}: is a directory, not a recipe file (give the recipe's .yaml file)")
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    resolved = path.resolve()
    if resolved in _seen:
        raise RecipeError(f"{path}: include cycle through {' -> '.join(str(p) for p in _seen)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RecipeError(
            f"{path}: not a text recipe (YAML in UTF-8): byte 0x{error.object[error.start]:02x} at offset {error.start}"
        ) from None
    except OSError as error:
        raise RecipeError(f"{path}: cannot read the recipe file: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"{path}:{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of fields, got {type(data).__name__}")
    includes = data.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise RecipeError(f"{path}: include must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for include in includes:
        merged = deep_merge(merged, read_yaml(path.parent / include, (*_seen, resolved)))
    return deep_merge(merged, data)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings; the value is parsed as YAML."""
    data = dict(data)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {override!r}: expected key=value, e.g. --set search.algorithm=dts")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {override!r}: {part!r} is not an index of a {len(node)}-item list")
                index: Any = int(part)
            elif isinstance(node, dict):
                index = part
            else:
                raise RecipeError(f"--set {override!r}: {'.'.join(parts[:depth])} is not a section")
            if last:
                node[index] = value
            else:
                child = node[index] if (isinstance(node, list) or part in node) else None
                node[index] = copy.copy(child) if isinstance(child, (dict, list)) else ({} if child is None else child)
                node = node[index]
    return data


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message (got value)``; the first line leads."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        got = problem.get("input")
        shown = "" if problem["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {field}: {message}{shown}")
    return "; ".join(lines)


def load_recipe(model: type[ModelT], path: str | Path, overrides: list[str] | None = None) -> ModelT:
    """Read, merge, override and validate a recipe; any problem is a :class:`RecipeError` naming the field."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return validate_recipe(model, data, str(path))


def validate_recipe(model: type[ModelT], data: dict[str, Any], source: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, source)) from None
