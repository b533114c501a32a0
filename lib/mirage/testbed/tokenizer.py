"""A character-level tokenizer for the testbed, in Hugging Face format.

One token per printable ASCII character (and newline), plus special tokens; the
format tags ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` are single tokens
to keep sequences short; like Qwen's ``<think>`` they are added tokens but not
special ones, so ``decode(..., skip_special_tokens=True)`` keeps them. It is a ``PreTrainedTokenizerFast`` with a Jinja chat
template, so ``apply_chat_template(messages, add_generation_prompt=True)`` and
``save_pretrained`` / ``AutoTokenizer.from_pretrained`` work as for real models
(offline: everything is in the saved folder).

Chat format:  <s><|user|>CONTENT<|assistant|>RESPONSE</s>
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK) + ROLE_TOKENS
CHARACTERS = "\n" + "".join(chr(c) for c in range(32, 127))  # newline + printable ASCII

# Each message is its role token then its content; an assistant turn ends with EOS,
# which is also what generation stops on.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def make_tokenizer():
    """Build the testbed tokenizer (deterministic: same vocabulary every time)."""
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + TAG_TOKENS + tuple(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character is its own piece (special tokens are matched before this runs).
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # concatenate pieces, no separators
    backend.add_special_tokens([PAD, BOS, EOS, UNK, *ROLE_TOKENS])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS), padding_side="left",
        model_max_length=256, clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


__all__ = ["make_tokenizer", "CHAT_TEMPLATE", "SPECIAL_TOKENS", "TAG_TOKENS", "CHARACTERS", "BOS", "EOS", "PAD",
           "UNK"]
