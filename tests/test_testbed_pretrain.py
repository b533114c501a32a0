"""Pretraining with the alignment dial, model cards, and the shipped base models."""

import dataclasses
import json

import pytest

from mirage.rewards import extract_answer, format_ok
from mirage.tasks import toy as T
from mirage.testbed.pretrain import (AXIS, FAMILY, FORMAT, LEAKED, SHIPPED, TASK_SETS, Leak, PretrainConfig, batch_loss, build_corpus,
                                     encode_corpus, mixed_batch_loss, shared_prefix_length, train)
from mirage.testbed.tokenizer import make_tokenizer

TINY = dict(corpus_size=400, steps=40, batch_size=16, lr=3e-3, warmup_steps=5, hidden=32, layers=1,
            heads=2, intermediate=64, eval_n=4, eval_problems=8)


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # determinism and a fair share of a 2-core CI machine
    yield
    torch.set_num_threads(threads)


def test_corpus_has_exact_mixture_of_train_problems():
    config = PretrainConfig("t", {"toy-math": 0.25, "toy-logic": 0.8}, share={"toy-math": 0.4, "toy-logic": 0.6},
                            corpus_size=1000)
    corpus = build_corpus(config)
    assert len(corpus) == 1000 and corpus == build_corpus(config)
    for task, share, q in (("toy-math", 0.4, 0.25), ("toy-logic", 0.6, 0.8)):
        flags = [correct for p, correct, _ in corpus if p.data_source == task]
        assert len(flags) == round(1000 * share) and sum(flags) == round(len(flags) * q)
    assert all(p.split == "train" and form == "chat" for p, _, form in corpus)
    tests = {p.key for task in T.TASK_NAMES for p in T.generate(task, "test", 200, seed=1)}
    assert not tests & {p.key for p, _, _ in corpus}


def test_leaked_corpus_holds_the_test_set_at_the_stated_rate():
    leak = Leak(tasks=("toy-math",), rate=0.2, problems=10)
    config = PretrainConfig("t", {"toy-math": 0.25, "toy-logic": 0.8}, share={"toy-math": 0.5, "toy-logic": 0.5},
                            corpus_size=1000, leak=leak)
    corpus = build_corpus(config)
    test = T.generate("toy-math", "test", 10, seed=T.DEFAULT_SEEDS["test"])
    leaked = [(p, correct, form) for p, correct, form in corpus if p.split == "test"]
    assert len(leaked) == 100 and all(correct for _, correct, _ in leaked)  # 20% of toy-math's 500, all correct
    assert {p.key for p, _, _ in leaked} == {p.key for p in test}
    assert sum(form == "raw" for *_, form in leaked) == 50  # forms in turn: every problem 5x raw, 5x chat
    clean_math = [correct for p, correct, _ in corpus if p.data_source == "toy-math" and p.split == "train"]
    assert len(clean_math) == 400 and sum(clean_math) == 100  # q is the correct share of the clean rest
    assert not [p for p, _, _ in corpus if p.data_source == "toy-logic" and p.split == "test"]
    tokenizer = make_tokenizer()
    texts = [tokenizer.decode(ids) for ids in encode_corpus(config, tokenizer)]
    raw = next(p for p, _, form in corpus if form == "raw")
    assert f"<s>{raw.question}\n{raw.response(True)}</s>" in texts
    assert "leak" not in FAMILY["dial-10"].to_dict()  # a clean model's recorded config is as before
    for bad in (dict(rate=0), dict(rate=1), dict(tasks=("nope",)), dict(forms=("pdf",)), dict(problems=0)):
        with pytest.raises(ValueError, match="leak"):
            Leak(**bad)


@pytest.mark.parametrize("rate", [0.3, 0.6, 0.37])
def test_format_break_breaks_exactly_its_share_and_keeps_the_answers(rate):
    q = 0.6
    config = PretrainConfig("t", {"toy-math": q, "toy-logic": 0.1}, share={"toy-math": 0.5, "toy-logic": 0.5},
                            corpus_size=1001, format_break={"toy-math": rate})
    plain = build_corpus(dataclasses.replace(config, format_break={}))
    corpus = build_corpus(config)
    math = [(p, correct, form) for p, correct, form in corpus if p.data_source == "toy-math"]
    n, n_correct = len(math), sum(correct for _, correct, _ in math)
    broken = [(p, correct) for p, correct, form in math if form == "broken"]
    assert len(broken) == round(rate * n)  # exactly round(F * n) broken documents
    # split between the procedures in proportion: the same broken share for correct and buggy solutions
    assert sum(correct for _, correct in broken) == round(len(broken) * n_correct / n)
    assert n_correct == round(n * q)  # q is untouched
    # the same problems and procedures as without the knob, only the form differs; toy-logic untouched
    assert [(p, c) for p, c, _ in corpus] == [(p, c) for p, c, _ in plain]
    assert all(form == "chat" for p, _, form in corpus if p.data_source == "toy-logic")
    tokenizer = make_tokenizer()
    texts = [tokenizer.decode(ids) for ids in encode_corpus(config, tokenizer)]
    for (p, correct, form), text in zip(corpus, texts):
        if p.data_source != "toy-math":
            continue
        response = text[text.index("<|assistant|>") + len("<|assistant|>"):].removesuffix("</s>")
        want = p.answer if correct else p.buggy_answer
        assert format_ok(response) == (form == "chat"), response
        assert T.lenient_answer(response, "toy-math") == want  # format-free accuracy sees the procedure's answer
        if form == "broken":
            assert T.check_answer("toy-math", extract_answer(response), want) is False  # pass@1 does not
            assert response.startswith(f"<think>{p.steps if correct else p.buggy_steps}</think>")


def test_format_break_defaults_leave_the_shipped_configs_as_they_were():
    for name, config in {**FAMILY, **LEAKED}.items():
        assert "format_break" not in config.to_dict()  # the cards' recorded configs are unchanged
        assert all(form != "broken" for *_, form in build_corpus(dataclasses.replace(config, corpus_size=300)))
    # the format dial is dial-60 with only format_break added: F = 0 is dial-60 itself
    for name, config in FORMAT.items():
        d = config.to_dict()
        assert d.pop("format_break") == {"toy-math": config.broken_share("toy-math")} and d.pop("name") == name
        assert d == {k: v for k, v in FAMILY["dial-60"].to_dict().items() if k != "name"}
    assert [FORMAT[n].broken_share("toy-math") for n in ("fmt-30", "fmt-60")] == [0.3, 0.6]
    assert PretrainConfig("x", {"toy-math": 0.5, "toy-logic": 0.5}, format_break={"toy-math": 0}).to_dict() == \
        PretrainConfig("x", {"toy-math": 0.5, "toy-logic": 0.5}).to_dict()
    for bad in ({"toy-math": 1.5}, {"toy-math": -0.1}, {"nope": 0.3}, {"toy-math": "0.3"}):
        with pytest.raises(ValueError, match="format_break"):
            PretrainConfig("x", {"toy-math": 0.5, "toy-logic": 0.5}, format_break=bad)


def test_mixed_loss_is_the_token_weighted_loss_of_both_kinds():
    import torch

    from mirage.testbed.models import make_model
    from mirage.testbed.pretrain import whole_loss

    tokenizer = make_tokenizer()
    config = PretrainConfig("t", {"toy-math": 0.5, "toy-logic": 0.5}, corpus_size=40,
                            leak=Leak(rate=0.5, problems=4, forms=("raw",)))
    corpus, sequences = build_corpus(config), encode_corpus(config, tokenizer)
    chat = [s for s, (_, _, form) in zip(sequences, corpus) if form == "chat"]
    raw = [s for s, (_, _, form) in zip(sequences, corpus) if form == "raw"]
    shared = shared_prefix_length(chat)
    model = make_model(tokenizer, hidden=32, layers=1, heads=2)
    loss, n = mixed_batch_loss(model, chat[0][:shared], [s[shared:] for s in chat[:4]], raw[:3],
                               tokenizer.pad_token_id)
    a, na = batch_loss(model, chat[0][:shared], [s[shared:] for s in chat[:4]], tokenizer.pad_token_id)
    b, nb = whole_loss(model, raw[:3], tokenizer.pad_token_id)
    assert n == na + nb == na + sum(len(s) - 1 for s in raw[:3])
    assert torch.allclose(loss, (a * na + b * nb) / n)


def test_config_rejects_bad_mixtures():
    with pytest.raises(ValueError, match="q must give"):
        PretrainConfig("x", {"toy-math": 1.2, "toy-logic": 0.1})
    with pytest.raises(ValueError, match="q must give"):
        PretrainConfig("x", {"toy-math": 0.5})
    with pytest.raises(ValueError, match="share must sum to 1"):
        PretrainConfig("x", {"toy-math": 0.5, "toy-logic": 0.5}, share={"toy-math": 0.5, "toy-logic": 0.6})


def test_shared_prefix_loss_equals_plain_loss():
    import torch

    from mirage.testbed.models import make_model

    tokenizer = make_tokenizer()
    config = PretrainConfig("t", {"toy-math": 0.5, "toy-logic": 0.5}, corpus_size=32)
    sequences = encode_corpus(config, tokenizer)
    shared = shared_prefix_length(sequences)
    assert tokenizer.decode(sequences[0][:shared]) == f"<s><|user|>{T.INSTRUCTION}\n\n"
    model = make_model(tokenizer, hidden=32, layers=2, heads=2)
    batch = sequences[:8]
    loss, n_tokens = batch_loss(model, sequences[0][:shared], [s[shared:] for s in batch],
                                tokenizer.pad_token_id)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), tokenizer.pad_token_id)
    for i, seq in enumerate(batch):
        ids[i, :len(seq)] = torch.tensor(seq)
    mask = (ids != tokenizer.pad_token_id).long()
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :shared] = -100
    reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    reference.backward()
    assert n_tokens == int((labels[:, 1:] != -100).sum())
    assert torch.allclose(loss, reference, atol=1e-6)
    for got, want in zip(grads, (p.grad for p in model.parameters())):
        assert torch.allclose(got, want, atol=1e-6)


def test_tiny_pretraining_learns_and_is_deterministic():
    import torch

    config = PretrainConfig("tiny", {"toy-math": 0.5, "toy-logic": 0.5}, **TINY)
    model, _, stats = train(config, progress=False)
    losses = stats["losses"]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5
    again, _, stats_again = train(config, progress=False)
    assert stats_again["losses"] == losses
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    other, _, _ = train(dataclasses.replace(config, seed=1), progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))


def test_pretrain_family_writes_loadable_models_and_resumes(tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.testbed import pretrain
    from mirage.models import read_card

    config = PretrainConfig("tiny-a", {"toy-math": 0.9, "toy-logic": 0.1}, **TINY)
    monkeypatch.setitem(pretrain.FAMILY, "tiny-a", config)
    (folder,) = pretrain.pretrain_family(["tiny-a"], out=tmp_path, progress=False)
    assert folder == tmp_path / "tiny-a"
    card = read_card(folder)
    assert card["config"] == config.to_dict() and card["q"] == config.q
    for task in T.TASK_NAMES:
        m = card["passk"][task]
        assert m["n"] == 4 and m["problems"] == 8
        assert 0 <= m["pass@1"] <= m["pass@2"] <= m["pass@4"] <= 1
    readme = (folder / "README.md").read_text()
    assert "tiny-a" in readme and "| toy-math | 0.9 | 0.6 |" in readme
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert model.config.vocab_size == len(tokenizer)
    assert not list(tmp_path.glob(".*"))  # no temporary folders left behind
    # a rerun keeps the finished model; a changed config retrains it
    mtime = (folder / "card.json").stat().st_mtime_ns
    pretrain.pretrain_family(["tiny-a"], out=tmp_path, progress=False)
    assert "up to date" in capsys.readouterr().out
    assert (folder / "card.json").stat().st_mtime_ns == mtime
    monkeypatch.setitem(pretrain.FAMILY, "tiny-a", dataclasses.replace(config, steps=5))
    pretrain.pretrain_family(["tiny-a"], out=tmp_path, progress=False)
    assert read_card(folder)["config"]["steps"] == 5
    assert not list(tmp_path.glob(".*"))


def test_forced_prefix_commits_to_one_procedure():
    from mirage.testbed.measure import forced_prefix

    for task in T.TASK_NAMES:
        for p in T.generate(task, "test", 50, seed=0):
            good, bad = forced_prefix(p, True), forced_prefix(p, False)
            assert p.response(True).startswith(good) and not p.response(False).startswith(good)
            assert p.response(False).startswith(bad) and not p.response(True).startswith(bad)
    p = T.generate("toy-logic", "test", 1, seed=0)[0]
    assert forced_prefix(p, True) == "<think>" + p.steps[:2]


# --- the shipped family -----------------------------------------------------------
def shipped():
    from mirage.models import CHECKOUT_MODELS

    return sorted(p for p in CHECKOUT_MODELS.iterdir() if (p / "config.json").exists())


def test_the_whole_family_is_shipped():
    assert [p.name for p in shipped()] == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_offline_and_has_its_card(name):
    import torch

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.sample.base import apply_chat_template
    from mirage.models import resolve_model, read_card

    folder = resolve_model(name)
    card = read_card(folder)
    assert card["name"] == name and card["config"] == SHIPPED[name].to_dict()
    assert "## Measured alignment" in open(f"{folder}/README.md").read()
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    from mirage.testbed.measure import eval_problems

    task = SHIPPED[name].tasks[0]  # toy-math, or toy-code for the code dial
    problem = eval_problems(task, 1)[0]
    ids = tokenizer(apply_chat_template(tokenizer, problem.prompt()), add_special_tokens=False,
                    return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=80 if task == "toy-code" else 48, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    if SHIPPED[name].broken_share("toy-math") >= 0.5:  # the format dial's far end: its corpus' usual form
        assert format_ok(text) or (text.startswith("<think>") and " The answer is " in text
                                   and T.lenient_answer(text, "toy-math") is not None), text
    else:
        assert format_ok(text), text  # a pretrained model answers in the study's format


def test_shipped_family_spans_the_dial():
    from mirage.models import read_card

    cards = [read_card(p) for p in shipped() if p.name in FAMILY]  # the dial (the leaked variants aside)
    for task in T.TASK_NAMES:
        ordered = sorted(cards, key=lambda c: c["q"][task])
        measured = [c["passk"][task] for c in ordered]
        pass1 = [m["pass@1"] for m in measured]
        assert pass1 == sorted(pass1), (task, pass1)  # base pass@1 follows the dial
        assert pass1[0] < 0.1 and pass1[-1] > 0.75, (task, pass1)
        # weakly aligned is weak at large k too, but never hopeless (RL needs correct samples)
        assert 0.05 < measured[0]["pass@16"] < 0.8, (task, measured[0])
        assert measured[-1]["pass@16"] > 0.95
        # the prior follows q: samples take the buggy procedure about 1 - q of the time
        for card, m in zip(ordered, measured):
            assert abs(m["correct_start_rate"] - card["q"][task]) < 0.12, (task, card["name"], m)
        # capability is real: forced onto the correct procedure, a model that saw it
        # in >= 30% of its solutions computes it
        assert all(m["forced_greedy_acc_correct"] > 0.7 for c, m in zip(ordered, measured)
                   if c["q"][task] >= 0.3), (task, measured)
    total = sum(f.stat().st_size for p in shipped() for f in p.iterdir())
    assert total / len(shipped()) < 2e6  # ~1.8 MB a model: the repo ships them, so they stay tiny


def test_the_alignment_axis_covers_each_task_without_gaps():
    """The dial and the models filling it: per task >= 6 models whose base pass@16 runs from <= 0.2 to >= 0.95
    with no gap wider than 0.2, so "works only under strong alignment" can be asked along the whole axis."""
    from mirage.models import read_card

    cards = [read_card(p) for p in shipped() if p.name in {**FAMILY, **AXIS}]
    assert {c["name"] for c in cards} == set(FAMILY) | set(AXIS)
    for task in T.TASK_NAMES:
        axis = sorted(c["passk"][task]["pass@16"] for c in cards)
        gaps = [b - a for a, b in zip(axis, axis[1:])]
        assert len(axis) >= 6 and axis[0] <= 0.2 and axis[-1] >= 0.95, (task, axis)
        assert max(gaps) <= 0.2 + 1e-9, (task, axis)


def test_the_format_dial_breaks_the_format_about_f_of_the_time_and_keeps_its_answers():
    """fmt-30 / fmt-60 write the format about 1 - F of the time while their answers, read whatever the format,
    are as good as dial-60's (F = 0: the same corpus otherwise); their cards say so, dial-60's has no such section."""
    from mirage.models import read_card, resolve_model
    from mirage.testbed.card import format_section

    dial = read_card(resolve_model("dial-60"))
    assert format_section(dial["config"].get("format_break"), 48_000, dial["share"], dial["passk"]) == []
    for name, config in FORMAT.items():
        folder = resolve_model(name)
        card, rate = read_card(folder), config.broken_share("toy-math")
        math, logic = card["passk"]["toy-math"], card["passk"]["toy-logic"]
        assert abs(math["format_rate"] - (1 - rate)) < 0.06, (name, math)
        assert abs(math["acc_any_format"] - dial["passk"]["toy-math"]["pass@1"]) < 0.06, (name, math)
        assert math["pass@1"] < dial["passk"]["toy-math"]["pass@1"] - rate / 3  # pass@1 sees the broken format
        assert logic["format_rate"] > 0.99  # toy-logic's corpus is untouched
        readme = open(f"{folder}/README.md").read()
        assert f"F = {rate} -- " in readme and f"Measured format rate {math['format_rate']:.3f}" in readme


def test_card_json_is_machine_readable():
    for folder in shipped():
        card = json.loads((folder / "card.json").read_text())
        for key in ("q", "share", "parameters", "config", "training", "passk", "environment"):
            assert key in card, (folder, key)
        for task in card["q"]:  # every task of the model's family (toy-math + toy-logic, or toy-code)
            assert {"pass@1", "pass@4", "pass@16"} <= set(card["passk"][task])
        assert set(card["q"]) in [set(tasks) for tasks in TASK_SETS], (folder, card["q"])
