"""Tokenized shards for training: the ``tokenize`` stage (``stage``) and the format and reader (``reader``)."""
