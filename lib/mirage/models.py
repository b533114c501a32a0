"""Model names: a shipped testbed model ("dial-90"), a local folder, or a Hugging Face hub id.

``resolve`` is the one place a model name becomes what a backend loads: shipped names
and local folders become absolute paths (verl and vLLM need absolute paths), an
``org/name`` hub id passes through. Shipped models are looked up in
``$MIRAGE_MODELS``, ``<data root>/models`` and the checkout's ``data/models``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mirage.tasks import data_root

CHECKOUT_MODELS = Path(__file__).resolve().parents[2] / "data" / "models"


def models_dirs() -> list[Path]:
    """Where model names are looked up: $MIRAGE_MODELS, <data root>/models, the checkout's data/models."""
    dirs = [Path(os.environ["MIRAGE_MODELS"]).expanduser()] if os.environ.get("MIRAGE_MODELS") else []
    dirs += [data_root() / "models", CHECKOUT_MODELS]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def resolve_model(name: str | os.PathLike, strict: bool = True) -> str:
    """Resolve a shipped model name ("dial-30"), a local path, or a Hugging Face id ("org/model").

    ``strict=False`` (a command built here to run on another machine, whose paths may not
    exist here) returns an unresolvable name unchanged instead of raising.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and strict:
            raise FileNotFoundError(f"{path}: a folder without config.json is not a model folder")
        return str(path.resolve())
    for d in models_dirs():
        if (d / str(name) / "config.json").exists():
            return str((d / str(name)).resolve())
    text = str(name)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text  # a hub id; transformers resolves (or refuses) it
    if not strict:
        return text
    known = ", ".join(m["name"] for m in list_models()) or "none"
    raise FileNotFoundError(f"no model {text!r}: not a folder, not in {[str(d) for d in models_dirs()]} "
                            f"(known: {known}), not an org/name hub id")


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / "card.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def list_models() -> list[dict[str, Any]]:
    """Every model folder in ``models_dirs()``, with its card (empty dict if it has none)."""
    found: dict[str, dict[str, Any]] = {}
    for d in models_dirs():
        if not d.is_dir():
            continue
        for folder in sorted(d.iterdir()):
            if (folder / "config.json").exists() and folder.name not in found:
                card = read_card(folder) if (folder / "card.json").exists() else {}
                found[folder.name] = {"name": folder.name, "path": str(folder), "card": card}
    return list(found.values())


def load(name: str | os.PathLike):
    """(model, tokenizer) from a name, path or hub id, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    return model.eval(), tokenizer
