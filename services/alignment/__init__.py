"""Alignment service: CTC forced alignment of the reference phonemes, with LLR confidence."""
