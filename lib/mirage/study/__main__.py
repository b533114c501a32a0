"""The study's own step processes: ``python -m mirage.study measure|history PARAMS.json``.

``measure``: one model x task alignment measurement (``cell.measure_pair``);
``history``: the ground-truth run one-shot selection ranks (``cell.ensure_history``).
The runner writes PARAMS.json (the step's parameters) and starts these.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mirage.study.cell import ensure_history, measure_pair


def measure(params: dict) -> None:
    measure_pair(params["model"], params["task"], params["out_dir"], params["eval"], params["backend"])


def history(params: dict) -> None:
    if params["backend"] != "local":
        raise NotImplementedError("history runs are for the CPU testbed; on verl the paper's published history "
                                  "(mirage data one-shot --history ...) selects the example")
    ensure_history(params["model"], params["task"], params["run_dir"], recipe=params["recipe"],
                   recipe_overrides=params["recipe_overrides"], pool=params["pool"], epochs=params["epochs"],
                   seed=params["seed"])


ENTRY = {"measure": measure, "history": history}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ENTRY:
        print(f"usage: python -m mirage.study {{{'|'.join(ENTRY)}}} PARAMS.json", file=sys.stderr)
        return 2
    ENTRY[argv[0]](json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
