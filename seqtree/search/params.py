"""Base class of the per-algorithm parameter models: typed, defaulted, frozen; unknown or ill-typed fields are
errors that name the field (a recipe builds these from YAML)."""

from __future__ import annotations

from pydantic import ConfigDict

from seqtree.config import RecipeModel


class SearchParams(RecipeModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def build_params(cls: type[SearchParams], params: SearchParams | None, overrides: dict) -> SearchParams:
    """``params`` as given, or ``cls(**overrides)``; giving both is an error."""
    if params is not None:
        if overrides:
            raise TypeError(f"give either params= or keyword parameters, not both (got {sorted(overrides)})")
        if not isinstance(params, cls):
            raise TypeError(f"params must be {cls.__name__}, got {type(params).__name__}")
        return params
    return cls(**overrides)
