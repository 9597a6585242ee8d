"""Embedding, vector stores and the SQLite catalog."""
