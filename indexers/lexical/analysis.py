"""The English analysis chain of ShopLens's BM25, run in process.

tantivy indexes and queries with it; Elasticsearch's `shoplens_en` analyzer is
the same chain on the server, so a store of either backend can analyze many
texts locally (`LexicalStore.text_analyzer`) with this one.
"""

from __future__ import annotations


def build_analyzer():
    """Simple tokenizer, lower-casing, ASCII folding, English stop words and Snowball stemming (a tantivy
    TextAnalyzer: `.analyze(text)` returns the terms)."""
    import tantivy

    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
