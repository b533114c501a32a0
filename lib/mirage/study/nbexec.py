"""``python -m mirage.study.nbexec NOTEBOOK OUTPUT [papermill options]``: papermill's command line
(the study runs every notebook step through it), without a second of imports it never uses.

papermill reads and writes notebooks with nbformat, which imports jsonschema; where
rfc3987-syntax is installed (jupyterlab's jupyter-events pulls it in), jsonschema compiles
38 lark grammars at import to check the ``iri`` string format: ~1.1 s of CPU in every
notebook step. No nbformat schema has a ``format`` keyword and nbformat passes no format
checker, so validation (and every byte papermill writes) is the same without it. Blocking
that one module is all this does; the rest is ``python -m papermill``.
"""

from __future__ import annotations

import sys

UNUSED = ("rfc3987_syntax",)


def block_unused() -> None:
    """Make ``import rfc3987_syntax`` fail (jsonschema then leaves out its iri checkers)."""
    for name in UNUSED:
        sys.modules.setdefault(name, None)


def main() -> None:
    block_unused()
    from papermill.cli import papermill

    papermill(prog_name="papermill")


if __name__ == "__main__":
    main()
