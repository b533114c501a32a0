"""The contamination probe: its cut, matching and ROUGE-L on known strings, bad input, resume, backends,
and that it tells the leaked testbed model from the clean ones."""

import subprocess
import sys
import types
from dataclasses import dataclass

import pytest

from mirage.sample.base import RawText, prompt_token_ids, raw_token_ids
from mirage.tasks import toy as T


# --- text: statement, cut, matching, ROUGE-L ----------------------------------------------
def test_cut_on_characters_with_trailing_space_moved_to_the_remainder():
    from mirage.probe import text as P

    assert P.cut("Caesar +3: cab", 0.4) == P.Cut("Caesa", "r +3: cab")  # floor(0.4 * 14) = 5
    assert P.cut("Caesar +3: cab", 0.5) == P.Cut("Caesar", " +3: cab")  # the space goes with the remainder
    assert P.cut("5+3*4-2", 0.8) == P.Cut("5+3*4", "-2")
    assert P.cut("ab", 0.01) == P.Cut("a", "b") and P.cut("ab", 0.99) == P.Cut("a", "b")  # both non-empty
    statement = "Compute ∫₀¹ x² dx — in ℝ."
    for f in (0.1, 0.33, 0.5, 0.9):
        c = P.cut(statement, f)
        assert c.prefix + c.remainder == statement and c.prefix and c.remainder


@pytest.mark.parametrize("fraction", [0, 1, -0.2, 1.5])
def test_cut_refuses_a_fraction_outside_the_open_interval(fraction):
    from mirage.probe import text as P

    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        P.cut("5+3*4", fraction)


def test_cut_refuses_a_statement_too_short_to_split():
    from mirage.probe import text as P

    with pytest.raises(ValueError, match="cannot be cut"):
        P.cut("x", 0.5)


def test_exact_match_up_to_whitespace_and_judging_only_the_remainder():
    from mirage.probe import text as P

    assert P.exact_match("*4-2\n<think>3*4=12", "*4-2")
    assert P.exact_match("  r +3:\tcab", " r +3: cab")  # whitespace runs and the leading space
    assert not P.exact_match("*4-3", "*4-2") and not P.exact_match("*4", "*4-2")
    assert P.exact_match("x² dx — in ℝ.", "x² dx — in ℝ.") and not P.exact_match("x2 dx", "x² dx")
    assert P.exact_match("anything", "") and not P.exact_match("", "a")


def test_rouge_l_on_known_strings():
    from mirage.probe import text as P

    assert P.tokens("3*4-2") == ["3", "*", "4", "-", "2"]
    assert P.tokens("∫₀¹ x² dx, ℝ") == ["∫", "₀¹", "x²", "dx", ",", "ℝ"]  # \w is Unicode-aware
    # ref [the cat on the mat], hyp [the cat sat on]: LCS 3, P 3/4, R 3/5
    assert P.rouge_l("the cat sat on", "the cat on the mat") == pytest.approx(2 / 3)
    assert P.rouge_l("the cat on the mat and more", "the cat on the mat") == 1.0  # cut to the remainder's length
    assert P.rouge_l("∫₀¹ x² dx", "∫₀¹ x² dx") == 1.0 and P.rouge_l("a b", "c d") == 0.0
    assert P.rouge_l("", "") == 1.0 and P.rouge_l("anything", "") == 1.0  # nothing to reproduce
    assert P.rouge_l("", "a b") == 0.0
    assert P.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def test_problem_statement_drops_the_instruction():
    from mirage.probe import text as P

    from mirage.data.math_data import math_prompt

    toy = T.generate("toy-math", "test", 1, seed=1)[0]
    row = T.to_row(toy, 0, "test")
    assert P.problem_statement(row["prompt"], row["extra_info"]) == toy.question
    assert P.problem_statement(row["prompt"], {}) == toy.question  # the testbed's instruction is known
    math = [{"role": "user", "content": math_prompt("What is 1+1?")}]
    assert P.problem_statement(math, {"index": 0}) == "What is 1+1?"
    assert P.problem_statement([{"role": "user", "content": "  Just this.  "}], None) == "Just this."
    asked = P.truncated_prompt(row["prompt"], toy.question, toy.question[:2])
    assert asked[0]["content"] == f"{T.INSTRUCTION}\n\n{toy.question[:2]}" and row["prompt"][0]["content"].endswith(toy.question)


@pytest.mark.shared_data
def test_statement_of_every_paper_eval_set_is_its_problem_not_the_instruction(tmp_path):
    """On the real rows (prepared from the mirror): the probe cuts the problem text itself: MATH500 /
    AIME24 / AMC23 without the math instruction, KOR-Bench its question without template or rule,
    SynLogic the whole question (it has no instruction around it)."""
    import pandas as pd

    from mirage.probe import text as P

    from conftest import SHARED_DATA
    from mirage.data.math_data import INSTRUCTION

    r = subprocess.run([sys.executable, "-m", "mirage.cli", "data", "prepare", "--all-local", "--local",
                        str(SHARED_DATA), "--root", str(tmp_path), "--skip-empty-answers"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sets = {"math500": 500, "aime24": 30, "amc23": 40, "korbench_cipher": 250, "synlogic_sample": 33}
    for name, size in sets.items():
        rows = pd.read_parquet(tmp_path / "verl" / f"{name}.parquet")
        assert len(rows) == size
        for _, row in rows.iterrows():
            content = P.user_content(list(row["prompt"]))
            statement = P.problem_statement(list(row["prompt"]), row["extra_info"])
            assert len(statement) >= 2 and statement in content, (name, row["extra_info"]["index"])
            P.cut(statement, 0.4)  # every statement can be cut
            if name in ("math500", "aime24", "amc23"):
                assert content.startswith(INSTRUCTION) and INSTRUCTION not in statement
            elif name == "korbench_cipher":
                assert statement == row["extra_info"]["question"] and len(statement) < len(content) / 2
            else:
                assert statement == content.strip()


def test_parse_fractions():
    from mirage.probe import text as P

    assert P.parse_fractions("0.8,0.4, 0.6") == (0.4, 0.6, 0.8)
    for bad in ("0.4,1", "0", "", "a,b", "0.4,0.4", "-0.1"):
        with pytest.raises(ValueError, match="--fractions"):
            P.parse_fractions(bad)


def test_raw_prompt_starts_a_document_with_one_bos():
    from mirage.testbed.tokenizer import make_tokenizer

    tok = make_tokenizer()
    ids = raw_token_ids(tok, "5+3")
    assert ids[0] == tok.bos_token_id and tok.decode(ids) == "<s>5+3"
    chat = prompt_token_ids(tok, [{"role": "user", "content": "5+3"}])
    assert tok.decode(chat) == "<s><|user|>5+3<|assistant|>" and prompt_token_ids(tok, RawText("5+3")) == ids


# --- the probe on a testbed model ---------------------------------------------------------------
def _toy_parquet(path, questions, source="toy-math"):
    import pandas as pd

    rows = []
    for i, q in enumerate(questions):
        p = T.Problem(source, q, "7", "", "8", "", 3)
        rows.append(T.to_row(p, i, "test"))
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def test_memoriser_ceiling_counts_statements_sharing_a_prefix():
    import pandas as pd

    from mirage.probe.contamination import summarise

    rows = pd.DataFrame({"dataset": "d", "fraction": 0.5, "problem_id": ["0", "1", "2", "3"],
                         "prefix": ["5+", "5+", "5+", "9-"], "exact_match": [True, False, False, True],
                         "rouge_l": 1.0, "answer_acc": 0.0, "full_acc": 1.0})
    s = summarise(rows).iloc[0]
    assert s["em_ceiling"] == pytest.approx((3 * (1 / 3) + 1) / 4) and s["exact_match"] == 0.5


def test_probe_rows_summary_and_resume(tmp_path):
    import pandas as pd

    from mirage.probe import text as P
    from mirage.probe.contamination import probe_contamination, read_rows

    data = _toy_parquet(tmp_path / "hand.parquet", ["5+3*4-2", "Compute ∫₀¹ x² dx", "9-2*3", "1+1*1"])
    out = tmp_path / "probe"
    summary = probe_contamination("dial-90", data, fractions="0.5,0.8", out_dir=out, batch_size=2, progress=False,
                                  sampler_kwargs={"threads": 1})
    rows = read_rows(out)
    assert len(rows) == 8 and set(rows["fraction"]) == {0.5, 0.8}
    assert list(summary.columns) == ["dataset", "fraction", "problems", "exact_match", "rouge_l", "answer_acc",
                                     "full_acc", "em_ceiling"]
    # at 0.5, "5+3*4-2" and "Compute..." have prefixes of their own; "9-2*3" -> "9-", "1+1*1" -> "1+": all distinct
    assert (summary["em_ceiling"] == 1.0).all()
    assert (summary["problems"] == 4).all()
    for r in rows.itertuples():
        assert r.exact_match == P.exact_match(r.continuation, r.remainder)
        assert r.rouge_l == P.rouge_l(r.continuation, r.remainder)
    unicode_row = rows[rows["problem_id"] == "1"].iloc[0]
    assert unicode_row["prefix"] + unicode_row["remainder"] == "Compute ∫₀¹ x² dx"
    # resume: a lost part is redone and gives the same rows; the rest is not sampled again
    parts = sorted((out / "rows").rglob("part-*.parquet"))
    assert len(parts) == 2
    parts[1].unlink()
    again = probe_contamination("dial-90", data, fractions="0.5,0.8", out_dir=out, batch_size=2, progress=False,
                                sampler_kwargs={"threads": 1})
    pd.testing.assert_frame_equal(again, summary)
    key = ["problem_id", "fraction"]
    pd.testing.assert_frame_equal(read_rows(out).sort_values(key).reset_index(drop=True),
                                  rows.sort_values(key).reset_index(drop=True))
    with pytest.raises(ValueError, match="other settings.*fractions"):
        probe_contamination("dial-90", data, fractions="0.4", out_dir=out, progress=False)


class _Memoriser:
    """A 'model' that has seen every statement: it completes any raw prefix with the true remainder."""

    def __init__(self, statements, tokenizer):
        self.statements, self.tokenizer = statements, tokenizer

    def complete(self, text):
        seen = [s for s in self.statements if s.startswith(text)]
        return seen[0][len(text):] + "\n<think>" if len(seen) == 1 else "?"


def test_probe_through_the_vllm_sampler(tmp_path, monkeypatch):
    """--backend vllm: raw prefixes reach the engine as token ids with one BOS (a fake vLLM that memorised)."""
    from mirage.probe.contamination import probe_contamination

    from mirage.models import resolve_model
    from mirage.sample import parallel as par
    from mirage.sample import vllm as vs
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("dial-10"))
    questions = ["Alpha +1: cab", "Bravo +2: dog", "Charlie +3: xyz", "Delta +1: ufo"]  # distinct starts
    memo = _Memoriser(questions, tok)

    @dataclass
    class Params:
        n: int = 1
        temperature: float = 1.0
        top_p: float = 1.0
        max_tokens: int = 16
        seed: int | None = None
        logprobs: int | None = None
        flat_logprobs: bool = False  # vLLM 0.24: False builds a dict per sampled token

    class LLM:
        def __init__(self, model, **kw):
            pass

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=True):
            outs = []
            for p, sp in zip(prompts, params):
                assert sp.temperature == 0.0
                text = tok.decode(p["prompt_token_ids"])
                assert text.startswith("<s>") and not text.startswith("<s><s>")
                body = text[3:]
                reply = "<answer>x</answer>" if "<|assistant|>" in body else memo.complete(body)
                ids = tok(reply, add_special_tokens=False)["input_ids"][:sp.max_tokens]
                outs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(
                    index=0, text=tok.decode(ids), token_ids=ids, finish_reason="length")]))
            return outs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=Params, __version__="f"))
    data = _toy_parquet(tmp_path / "logic.parquet", questions, source="toy-logic")
    sampler = par.ShardedSampler([par.ThreadWorker(vs.VLLMSampler("dial-10"))])
    summary = probe_contamination("dial-10", data, fractions="0.4,0.8", sampler=sampler, out_dir=tmp_path / "p",
                                  progress=False)
    assert (summary["exact_match"] == 1.0).all() and (summary["rouge_l"] == 1.0).all()
    assert (summary["answer_acc"] == 0.0).all()  # 'x' is not the answer


# --- bad input: one line, exit 2, before any work -----------------------------------------------
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mirage.cli", "probe", "contamination", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("fractions", ["0.4,1.0", "0", "-0.5", "x"])
def test_cli_refuses_a_fraction_outside_the_interval(fractions, tmp_path):
    r = _cli("--model", "dial-10", "--task", "toy-math", "--fractions", fractions, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--fractions" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_refuses_an_empty_problem(tmp_path):
    data = _toy_parquet(tmp_path / "empty.parquet", ["5+3*4", "   "])
    r = _cli("--model", "dial-10", "--task", data, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "problem '1': the problem statement is empty" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_model_without_a_tokenizer(tmp_path):
    import shutil

    from mirage.models import resolve_model

    model = tmp_path / "no-tokenizer"
    model.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(f"{resolve_model('dial-10')}/{name}", model / name)
    r = _cli("--model", str(model), "--task", "toy-math", "--limit", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no usable tokenizer" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


# --- the fresh split: never-leaked problems ---------------------------------------------------------
def test_fresh_split_is_test_bucket_problems_outside_the_test_set(tmp_path):
    import pandas as pd

    from mirage.tasks import get_task

    fresh = T.fresh_problems("toy-math", 200)
    test = {p.key for p in T.generate("toy-math", "test", 200, seed=T.DEFAULT_SEEDS["test"])}
    assert len({p.key for p in fresh}) == 200 and not test & {p.key for p in fresh}
    assert all(p.split == "test" for p in fresh) and fresh == T.fresh_problems("toy-math", 200)
    task = get_task("toy-math+fresh")
    assert task.train == "toy-math_train" and task.evals == ("toy-math_test", "toy-math_fresh")
    path = T.ensure_dataset("toy-math_fresh", root=tmp_path)
    rows = pd.read_parquet(path)
    assert [r["question"] for r in rows["extra_info"]] == [p.question for p in fresh]
    assert set(r["split"] for r in rows["extra_info"]) == {"fresh"}


def test_contamination_notebook_draws_both_figures(tmp_path):
    """50_contamination on the stored fixture study: the probe figure (2 problems) and the RQ1 gain figure."""
    import pandas as pd

    import shutil
    from pathlib import Path

    import papermill

    root = Path(__file__).resolve().parents[1]
    study_dir = tmp_path / "study"
    shutil.copytree(root / "tests" / "fixtures" / "study", study_dir, ignore=shutil.ignore_patterns("*.md"))
    figures = tmp_path / "figures"
    papermill.execute_notebook(str(root / "notebooks" / "50_contamination.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"study_dir": str(study_dir), "figures_dir": str(figures),
                                           "models": ["dial-90"], "task": "toy-math+fresh", "fractions": "0.5",
                                           "limit": 2},
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    for stem in ("contamination_probe", "contamination_rq1_gains"):
        assert (figures / f"{stem}.png").stat().st_size > 5000 and (figures / f"{stem}.pdf").stat().st_size > 1000
    summary = pd.read_csv(figures / "probe_summary.csv")
    assert set(summary["dataset"]) == {"toy-math_test", "toy-math_fresh"} and (summary["problems"] == 2).all()
    assert (study_dir / "probe" / "dial-90" / "toy-math+fresh" / "probe_manifest.json").exists()


def test_contamination_preset_pairs_the_leaked_model_with_a_clean_one_of_similar_pass_at_k():
    from mirage import study
    from mirage.models import read_card, resolve_model

    p = study.load_preset("testbed-contamination")
    assert p.models == ("dial-10-leaked", "dial-60") and p.tasks == ("toy-math+fresh",) and p.seeds == (0, 1, 2)
    assert p.conditions == ("ground_truth", "random", "majority_vote") and len(p.cells()) == 18
    cards = {m: read_card(resolve_model(m))["passk"]["toy-math"] for m in ("dial-10-leaked", "dial-10", "dial-60",
                                                                          "dial-90")}
    gap = {m: abs(cards[m]["pass@1"] - cards["dial-10-leaked"]["pass@1"]) for m in ("dial-10", "dial-60", "dial-90")}
    assert min(gap, key=gap.get) == "dial-60"  # the clean dial closest in base pass@1 on the leaked set


def test_probe_tells_the_leaked_model_from_a_clean_one(tmp_path):
    """dial-10-leaked saw toy-math_test (not toy-math_fresh) in pretraining; dial-60 saw neither. With 80% of each
    statement given, the leaked model reproduces the rest of far more leaked problems than fresh ones, and far
    more than the clean model (full sets: 0.56 vs 0.09 vs 0.015; a memoriser's ceiling is ~0.81, the prefixes
    of a few leaked problems being alike)."""
    from mirage.probe.contamination import probe_contamination

    em = {}
    for model in ("dial-10-leaked", "dial-60"):
        summary = probe_contamination(model, "toy-math+fresh", fractions="0.8", limit=40, out_dir=tmp_path / model,
                                      progress=False, sampler_kwargs={"threads": 1})
        em[model] = summary.set_index("dataset")["exact_match"].to_dict()
    leaked, clean = em["dial-10-leaked"], em["dial-60"]
    assert leaked["toy-math_test"] >= 0.35, em
    assert leaked["toy-math_test"] >= leaked["toy-math_fresh"] + 0.25, em
    assert leaked["toy-math_test"] >= clean["toy-math_test"] + 0.3 and clean["toy-math_fresh"] <= 0.1, em
