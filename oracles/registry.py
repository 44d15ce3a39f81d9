"""The oracle registry: names that recipes use, with parameters read from typed constructor signatures.

``@register_oracle("qed", family="molecules")`` on an :class:`Oracle` subclass (or on a factory function that
returns one) makes it buildable by name. Parameters are validated by a pydantic model derived from the
signature, so ``build_oracle("gc_content", lo="x")`` fails with an error naming ``lo``; unknown parameters are
errors too. The first line of the docstring is the one-line description shown by ``seqtree oracles list``.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from seqtree.oracles.base import Oracle

# Modules holding registered oracles; imported on first use so optional libraries stay lazy.
_FAMILY_MODULES = (
    "seqtree.oracles.ehrlich",
    "seqtree.oracles.protein",
    "seqtree.oracles.dna",
    "seqtree.oracles.molecules",
    "seqtree.oracles.text",
    "seqtree.oracles.learned",
    "seqtree.oracles.custom",
)


@dataclass(frozen=True)
class ParamInfo:
    """One constructor parameter."""

    name: str
    type: str
    default: Any
    required: bool


@dataclass(frozen=True)
class OracleInfo:
    """What ``seqtree oracles list`` shows for one registered oracle."""

    name: str
    family: str
    description: str
    domain: str
    parameters: list[ParamInfo]
    requires: str | None  # optional extra or resource needed, None when the core install suffices


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Oracle]
    family: str
    domain: str
    requires: str | None
    model: type[pydantic.BaseModel]


_REGISTRY: dict[str, _Entry] = {}
_loaded = False


def register_oracle(
    name: str, *, family: str, domain: str = "any", requires: str | None = None
) -> Callable[[Callable[..., Oracle]], Callable[..., Oracle]]:
    """Class or factory decorator adding an oracle to the registry under ``name``."""

    def wrap(factory: Callable[..., Oracle]) -> Callable[..., Oracle]:
        old = _REGISTRY.get(name)
        # The same definition seen twice (a module run with ``python -m`` or reloaded) is not a clash.
        if old is not None and old.factory.__qualname__ != factory.__qualname__:
            raise ValueError(f"oracle name {name!r} is already registered")
        _REGISTRY[name] = _Entry(factory, family, domain, requires, _params_model(name, factory))
        return factory

    return wrap


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for mod in _FAMILY_MODULES:
            importlib.import_module(mod)
        _loaded = True


def _signature(factory: Callable[..., Oracle]) -> tuple[inspect.Signature, dict[str, Any]]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    hints = typing.get_type_hints(target)
    return sig, hints


def _params_model(name: str, factory: Callable[..., Oracle]) -> type[pydantic.BaseModel]:
    sig, hints = _signature(factory)
    fields: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(p.name, Any)
        fields[p.name] = (ann, ... if p.default is p.empty else p.default)
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{name}_params", __config__=config, **fields)


def _type_name(ann: Any) -> str:
    if ann is None or ann is type(None):
        return "None"
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    return str(ann).replace("typing.", "")


def available_oracles() -> list[OracleInfo]:
    """Every registered oracle with its family, description and parameters, sorted by family then name."""
    _load_families()
    infos = []
    for name, e in _REGISTRY.items():
        params = [
            ParamInfo(
                name=f,
                type=_type_name(info.annotation),
                default=None if info.is_required() else info.default,
                required=info.is_required(),
            )
            for f, info in e.model.model_fields.items()
        ]
        doc = inspect.getdoc(e.factory) or ""
        infos.append(OracleInfo(name, e.family, doc.splitlines()[0] if doc else "", e.domain, params, e.requires))
    return sorted(infos, key=lambda i: (i.family, i.name))


def oracle_info(name: str) -> OracleInfo:
    """The :class:`OracleInfo` of one registered name."""
    for info in available_oracles():
        if info.name == name:
            return info
    raise KeyError(_unknown(name))


def _unknown(name: str) -> str:
    return f"unknown oracle {name!r}; registered: {', '.join(sorted(_REGISTRY))}"


def build_oracle(name: str, **params: Any) -> Oracle:
    """Build a registered oracle by name; parameters are validated against its constructor signature."""
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(_unknown(name))
    entry = _REGISTRY[name]
    try:
        checked = entry.model(**params)
    except pydantic.ValidationError as err:
        raise ValueError(f"oracle {name!r}: invalid parameters\n{err}") from err
    kwargs = {f: getattr(checked, f) for f in entry.model.model_fields if f in params}
    oracle = entry.factory(**kwargs)
    if not isinstance(oracle, Oracle):
        raise TypeError(f"oracle {name!r}: factory returned {type(oracle).__name__}, not an Oracle")
    return oracle
