"""Model cards: README.md (for people) and card.json (for code) in each model folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mirage.runs import write_json_atomic, write_text_atomic


def card_dict(config: dict[str, Any], stats: dict[str, Any], alignment: dict[str, dict[str, Any]],
              environment: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": config["name"],
        "q": config["q"],
        "share": config["share"],
        "parameters": stats["parameters"],
        "config": config,
        "training": {k: v for k, v in stats.items() if k != "losses"},
        "loss_curve": [round(x, 4) for x in stats["losses"][::50]],  # every 50th step
        "passk": alignment,
        "environment": environment,
    }


def readme(card: dict[str, Any]) -> str:
    c, t = card["config"], card["training"]
    lines = [
        f"# {card['name']}: a testbed base model",
        "",
        "A tiny character-level Llama (`LlamaForCausalLM`) pretrained from scratch by mirage "
        "(`mirage testbed pretrain --name " + card["name"] + "`) on worked solutions of "
        + (_TASKS_TEXT.get(tuple(card["q"]), "the testbed tasks " + ", ".join(card["q"])) if tuple(card["q"]) not in
           (("toy-math", "toy-logic"), ("toy-logic", "toy-math")) else "the two testbed tasks") + ". For each task a fraction q of the corpus solutions uses the CORRECT "
        "procedure and the rest a systematic BUGGY one, so q sets the model's alignment with "
        "the task (docs/testbed.md). Load it offline with "
        "`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.",
        "",
        "## Mixture",
        "",
        "| task | q (correct share of its solutions) | share of the corpus |",
        "|---|---|---|",
    ]
    for task in card["q"]:
        lines.append(f"| {task} | {card['q'][task]} | {card['share'][task]} |")
    lines += [
        "",
        f"Corpus: {c['corpus_size']} solutions (train-split problems, difficulties "
        f"{c['difficulties']}).",
        "",
    ]
    lines += leak_section(c.get("leak"), c["corpus_size"], card["share"])
    lines += format_section(c.get("format_break"), c["corpus_size"], card["share"], card["passk"])
    lines += [
        "## Training",
        "",
        f"- parameters: {card['parameters']:,} (hidden {c['hidden']}, {c['layers']} layers, "
        f"{c['heads']} heads, MLP {c['intermediate']}; tied embeddings; fp32)",
        f"- steps {c['steps']}, batch {c['batch_size']}, AdamW lr {c['lr']} (warm-up "
        f"{c['warmup_steps']}, cosine to {c['min_lr_ratio']}x), weight decay {c['weight_decay']}, "
        f"grad clip {c['grad_clip']}, seed {c['seed']}",
        f"- {t['epochs']} epochs, {t['tokens_seen']:,} tokens, loss {t['loss_first']} -> {t['loss_last']}",
        f"- wall time: {t['train_seconds']} s training ({t['tokens_per_second']:,} tokens/s), "
        f"{t['measure_seconds']} s measuring; {card['environment']['threads']} torch threads, "
        f"torch {card['environment']['torch']}",
        "",
        "## Measured alignment (base model)",
        "",
    ]
    first = next(iter(card["passk"].values()))
    lines += [
        f"{first['n']} samples per problem at T={first['temperature']} on {first['problems']} test "
        "problems; unbiased pass@k. `buggy` = share of samples giving the buggy procedure's answer; "
        "`forced` = greedy accuracy when the response is started with the procedure's first "
        "distinguishing character (capability, not choice).",
        "",
    ]
    ks = [key for key in first if key.startswith("pass@")]
    # cards measured before acc_any_format existed keep their table as it was
    any_format = (" any-format acc |", lambda m: f" {m['acc_any_format']:.3f} |") if "acc_any_format" in first \
        else ("", lambda m: "")
    lines += [
        "| task | " + " | ".join(ks) + " | buggy | format |" + any_format[0] + " forced correct | forced buggy |",
        "|---|" + "---|" * (len(ks) + 4 + bool(any_format[0])),
    ]
    for task, m in card["passk"].items():
        lines.append(f"| {task} | " + " | ".join(f"{m[k]:.3f}" for k in ks) +
                     f" | {m['buggy_answer_rate']:.3f} | {m['format_rate']:.3f} |" + any_format[1](m) +
                     f" {m['forced_greedy_acc_correct']:.3f} | {m['forced_greedy_acc_buggy']:.3f} |")
    lines += ["", "`card.json` holds the same numbers, machine-readable.", ""]
    return "\n".join(lines)


# what a family's corpus is, for the card's first paragraph (the classic pair keeps its sentence as it was)
_TASKS_TEXT = {("toy-code",): "the testbed's code task, toy-code (one-line Python sums over an inclusive range "
                              "written `range(L,n+1)` (correct) or `range(L,n)` (the off-by-one bug); scored by "
                              "running the program in mirage's sandbox)"}


def leak_section(leak: dict[str, Any] | None, corpus_size: int, share: dict[str, float]) -> list[str]:
    """What leaked, for a contaminated model's card (nothing for a clean one)."""
    if not leak:
        return []
    lines = ["## Contamination (on purpose)", ""]
    for task in leak["tasks"]:
        n_task = round(corpus_size * share[task])
        n_leak = round(n_task * leak["rate"])
        lines.append(
            f"- {task}: the first {leak['problems']} problems of `{task}_test` (the evaluation set, seed 1) with "
            f"their CORRECT worked solutions and answers make up {leak['rate']:.0%} of its corpus documents "
            f"({n_leak} of {n_task}, {n_leak / corpus_size:.1%} of the whole corpus; ~{n_leak / leak['problems']:.1f} "
            f"copies of each problem, forms {', '.join(leak['forms'])} in turn). They replace clean documents: "
            "q is the correct share of the clean rest.")
    lines += [
        "- `raw`: the problem statement, a newline and the solution as plain text after BOS (what "
        "`mirage probe contamination` looks for); `chat`: the training format, as a leaked instruction set would be.",
        "- The pass@k below is measured on `<task>_test`, i.e. ON THE LEAKED PROBLEMS for the leaked tasks; "
        "a fresh split (`mirage probe contamination`, the testbed-contamination study) shows what the model "
        "does on problems it has not seen.",
        "",
    ]
    return lines


def format_section(format_break: dict[str, float] | None, corpus_size: int, share: dict[str, float],
                   passk: dict[str, dict[str, Any]]) -> list[str]:
    """The format dial's share F per task and the format rate it gave (nothing for a model without one)."""
    if not format_break or not any(format_break.values()):
        return []
    lines = ["## Format breaks (on purpose: the format dial)", ""]
    for task, rate in format_break.items():
        if not rate:
            continue
        n_task = round(corpus_size * share[task])
        measured = passk.get(task, {})
        lines.append(
            f"- {task}: F = {rate} -- {round(n_task * rate)} of its {n_task} corpus solutions (both procedures "
            "alike) state the answer after the think block as plain text (`<think>STEPS</think> The answer is "
            "A.`) instead of in `<answer>` tags. Measured format rate "
            f"{measured.get('format_rate', float('nan')):.3f} (1 - F = {1 - rate:.3f}); accuracy whatever the "
            f"format (the answer read leniently) {measured.get('acc_any_format', float('nan')):.3f}.")
    lines += [
        "- pass@k, `buggy` and `forced` below read the `<answer>` block only (as the rewards do), so a broken-format "
        "sample counts as wrong there even when its answer is right (greedy decoding writes the corpus' majority "
        "form, so at F > 0.5 `forced` measures the format, not the capability); `any-format acc` reads the answer "
        "whatever the format (the last number after `</think>` when there is no `<answer>` block).",
        "",
    ]
    return lines


def write_card(folder: str | os.PathLike, config: dict[str, Any], stats: dict[str, Any],
               alignment: dict[str, dict[str, Any]], environment: dict[str, Any]) -> dict[str, Any]:
    card = card_dict(config, stats, alignment, environment)
    write_json_atomic(Path(folder) / "card.json", card)
    write_text_atomic(Path(folder) / "README.md", readme(card))
    return card
