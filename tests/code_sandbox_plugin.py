"""A plugin for tests/test_code_sandbox.py: routes its data source to the code checker in the
processes ``compute_scores`` starts (named in $MIRAGE_PLUGINS there)."""

from mirage.rewards.checkers import register_source

register_source("test-code-sandbox", "code")
