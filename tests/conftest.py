"""Suite-wide fixtures."""

import os
import re
import time
from pathlib import Path

import pytest

# ../shared/data exists on developer machines and in CI, not on a user's machine.
SHARED_DATA = Path(os.environ.get("MIRAGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# The fast tier (`make test-fast`: `pytest -m "fast and not slow"`, < 2 min on 2 cores): every test of these
# modules is marked `fast` (a slow one stays out through `not slow`). They cover the registries, rewards and
# checkers, estimators, pass@k, the run / evaluation / study configurations and the CLIs' input checks.
# When the marker expression selects `fast`, the other modules are not even imported (collection stays cheap).
FAST_MODULES = frozenset({
    "test_import_graph", "test_settings", "test_registries", "test_rewards", "test_rewards_fuzz", "test_rewards_korbench",
    "test_rewards_synlogic", "test_objectives", "test_passk", "test_runs", "test_format_free", "test_study_estimate",
    "test_study_executors", "test_study", "test_doctor", "test_doctor_stack", "test_gpu_layout", "test_predictors",
    "test_cli_fuzz", "test_hostile_inputs", "test_inputs", "test_data_one_shot", "test_install_venv",
})


def _fast_only(config) -> bool:
    expr = config.getoption("markexpr", "") or ""
    return re.search(r"(?<!not )\bfast\b", expr) is not None


def pytest_ignore_collect(collection_path, config):
    if (_fast_only(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and collection_path.stem not in FAST_MODULES):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    """Tests of FAST_MODULES are marked fast; tests marked shared_data are skipped, with the reason, where the
    shared data is absent."""
    for item in items:
        if item.path.stem in FAST_MODULES:
            item.add_marker(pytest.mark.fast)
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"shared data not at {SHARED_DATA} (set MIRAGE_SHARED_DATA)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)

# KOR-Bench's zero-shot template is read from a KOR-Bench checkout, which CI does not
# have. This stand-in has the benchmark's structure (role line, three numbered
# instructions, "### <X> Rule:", "### Question:", "### Answer:") in our own words; it
# tests the converter's mechanics, not the benchmark's wording.
_HEADERS = {"operation": "Operation", "logic": "Logic", "cipher": "Cipher", "puzzle": "Puzzle",
            "counterfactual": "Story"}
STANDIN_ROLE = "STAND-IN TEMPLATE (not KOR-Bench's wording): you answer questions under the rule below."


def _standin_yaml() -> str:
    out = []
    for cat, header in _HEADERS.items():
        body = (f"{STANDIN_ROLE}\n\n### Instructions:\n\n1. Read the rule.\n2. Apply it.\n"
                f"3. Put the answer in double square brackets.\n\n### {header} Rule:\n\n{{}}\n\n"
                f"### Question:\n{{}}\n\n### Answer:\n")
        indented = "".join(f"    {line}\n" if line else "\n" for line in body.split("\n")[:-1])
        out.append(f"{cat}_prompt_format:\n  - |\n{indented}")
    return "\n".join(out)


@pytest.fixture(scope="session", autouse=True)
def korbench_standin_template(tmp_path_factory):
    if os.environ.get("MIRAGE_KORBENCH_TEMPLATE"):  # a real checkout's template was given
        yield Path(os.environ["MIRAGE_KORBENCH_TEMPLATE"])
        return
    path = tmp_path_factory.mktemp("korbench") / "zero-shot.yaml"
    path.write_text(_standin_yaml(), encoding="utf-8")
    os.environ["MIRAGE_KORBENCH_TEMPLATE"] = str(path)
    yield path
    os.environ.pop("MIRAGE_KORBENCH_TEMPLATE", None)


def wait_for_exit(pids, timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for processes to exit; return those still alive."""
    t0 = time.time()
    while True:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive or time.time() - t0 >= timeout:
            return alive
        time.sleep(0.1)
