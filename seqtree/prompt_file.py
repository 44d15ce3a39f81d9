"""Reading ``design.prompts_file``: the prompts of a multi-prompt design run, with errors naming the line.

Two formats, told apart by the file's suffix (``.jsonl``) or by its first non-blank line starting with ``{``:

- plain text: one prompt per line, exactly as written (only the line break is removed, so a trailing space is part
  of the prompt); blank lines and lines starting with ``#`` are skipped; prompt ``i`` (0-based, in file order) gets
  the id ``i``;
- JSONL: one object per line with ``prompt`` (a string) and an optional ``id`` (a string or integer of letters,
  digits, ``.``, ``_`` and ``-``: it names the prompt's folder; default its 0-based index); blank lines skipped.

Every prompt keeps its 0-based index in the file: the run seeds prompt ``i``'s search with ``seed + i``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from seqtree.config import RecipeError

FIELD = "design.prompts_file"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class PromptItem:
    """One prompt: its id (a folder name), text, 0-based index in the file and line number (1-based)."""

    id: str
    text: str
    index: int
    line: int


def read_prompts(path: str | Path) -> list[PromptItem]:
    """The prompts of ``path``; any problem is a one-line :class:`RecipeError` naming the field, file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{FIELD}: {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise RecipeError(f"{FIELD}: {path}: not UTF-8 text (byte offset {error.start})") from None
    first = next((line for line in lines if line.strip()), "")
    jsonl = path.suffix == ".jsonl" or first.lstrip().startswith("{")
    items = _read_jsonl(path, lines) if jsonl else _read_text(lines)
    if not items:
        raise RecipeError(f"{FIELD}: {path}: no prompts in the file")
    seen: dict[str, int] = {}
    for item in items:
        if item.id in seen:
            raise RecipeError(f"{FIELD}: {path} line {item.line}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = item.line
    return items


def _read_text(lines: list[str]) -> list[PromptItem]:
    items: list[PromptItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        items.append(PromptItem(str(len(items)), line, len(items), number))
    return items


def _read_jsonl(path: Path, lines: list[str]) -> list[PromptItem]:
    items: list[PromptItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{FIELD}: {path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecipeError(f"{where}: not a JSON object: {error.msg} (column {error.colno})") from None
        if not isinstance(record, dict):
            raise RecipeError(f"{where}: expected an object with prompt (and id), got {type(record).__name__}")
        unknown = sorted(set(record) - {"id", "prompt"})
        if unknown:
            raise RecipeError(f"{where}: unknown key {unknown[0]!r} (an object has prompt and an optional id)")
        prompt = record.get("prompt")
        if not isinstance(prompt, str):
            got = "no prompt" if prompt is None else f"prompt of type {type(prompt).__name__}"
            raise RecipeError(f"{where}: {got}; expected a string")
        ident = record.get("id", len(items))
        if isinstance(ident, bool) or not isinstance(ident, (str, int)) or not _ID.match(str(ident)):
            raise RecipeError(
                f"{where}: id {ident!r}: use 1-64 letters, digits, '.', '_' or '-' (it names the prompt's folder)"
            )
        items.append(PromptItem(str(ident), prompt, len(items), number))
    return items


def prompts_jsonl(items: list[PromptItem]) -> str:
    """The prompts as JSONL (id, prompt, index, line): what a run directory keeps, so ``--resume`` does not depend on
    the prompts file still being where it was."""
    return "".join(json.dumps({"id": i.id, "prompt": i.text, "index": i.index, "line": i.line}) + "\n" for i in items)


def load_run_prompts(path: Path) -> list[PromptItem]:
    """The prompts a run directory recorded (:func:`prompts_jsonl`)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [PromptItem(str(r["id"]), r["prompt"], int(r["index"]), int(r["line"])) for r in records]
