"""The lowest floor: what every other part of the toolkit builds on and which imports nothing of it.

The document and attribute records (``document``), the one user-facing error type (``errors``), parameter
validation with errors that name the key (``config``), the shared models: the tokenizer (``tokenizer``) and
fastText (``fasttext``), and the allocator settings applied on import (``allocators``). Nothing here reads or
writes files of the corpus.
"""
