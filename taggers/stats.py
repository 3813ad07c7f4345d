"""Length statistics: characters, words, lines, paragraphs, and tokens under a configured tokenizer."""

from __future__ import annotations

import polars as pl

from taggers.registry import Tagger, TagResult, TextBatch, tagger


@tagger
class Stats(Tagger):
    name = "stats_v1"
    description = "characters, whitespace words, lines, paragraphs and tokens (dolma2 tokenizer by default)"
    tokenizer: str = ""  # tokenizer.json path or hub name; empty: the bundled dolma2 tokenizer

    def tag(self, batch: TextBatch) -> TagResult:
        texts = batch.texts
        from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer, token_counts

        df = pl.DataFrame({"t": texts}).select(
            chars=pl.col("t").str.len_chars(),
            words=pl.col("t").str.count_matches(r"\S+"),
            lines=pl.col("t").str.count_matches("\n")
            + (pl.col("t").str.len_chars() > 0).cast(pl.UInt32)
            - pl.col("t").str.ends_with("\n").cast(pl.UInt32),
            paragraphs=pl.col("t")
            .str.strip_chars()
            .str.split(by="\n\n")
            .list.eval(pl.element().str.strip_chars().str.len_chars() > 0)
            .list.sum(),
        )
        tok = load_tokenizer(self.tokenizer or DEFAULT_TOKENIZER)
        tokens = token_counts(tok, texts.to_list())
        return {**{c: df[c].to_numpy() for c in df.columns}, "tokens": tokens}
