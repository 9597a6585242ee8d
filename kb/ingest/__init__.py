"""Parsing files into blocks and chunks."""
