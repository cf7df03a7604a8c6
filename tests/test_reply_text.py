"""``inference.reply_text`` / ``token_texts``: a generated row as text, with the ids a model's padded
vocabulary holds beyond the tokenizer."""

from __future__ import annotations

from dreamvlx.inference import reply_text, token_texts
from dreamvlx.processing import build_small_tokenizer


def test_a_reply_is_cut_at_the_first_stop_and_unknown_ids_are_skipped() -> None:
    tokenizer = build_small_tokenizer(["c1: r g - | c2: b - -"] * 4, vocab_size=260)
    words = tokenizer.encode("c1: r g")
    end, pad = tokenizer.special_ids.im_end, tokenizer.special_ids.endoftext
    beyond = tokenizer.vocab_size + 3  # a padded-vocabulary id: no token
    assert reply_text(tokenizer, [*words, end, *tokenizer.encode(" junk")]) == "c1: r g"
    assert reply_text(tokenizer, [*words[:2], beyond, *words[2:], pad, pad]) == "c1: r g"
    shown = token_texts(tokenizer, [words[0], beyond])
    assert shown == [tokenizer.decode([words[0]]), f"<id {beyond}>"]
