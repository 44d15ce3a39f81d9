"""Reading recipe YAML files: includes, command-line overrides, and errors that name the field.

A recipe may name a base recipe with ``include: base.yaml`` (a path relative to the including file, or a list of
them); the including file's keys override the base's, merging nested mappings. ``--set a.b=value`` overrides
are applied last; the value is parsed as YAML (``--set budget.nfe=2000`` gives an int).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class RecipeError(ValueError):
    """A recipe cannot be read or is invalid; the message is one line naming the file and field."""


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
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    resolved = path.resolve()
    if resolved in _seen:
        raise RecipeError(f"{path}: include cycle through {' -> '.join(str(p) for p in _seen)}")
    try:
        data = yaml.safe_load(path.read_text())
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
