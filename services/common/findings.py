"""Facts about findings that the gateway (which fuses them) and the client (which shows them)
both read."""

from __future__ import annotations

from services.common.pb import common_pb2

# Findings about the letters and their harakat: a wrong one makes the word a mistake (not a
# tajweed issue), and the report lists them in the error table, not with the tajweed rules.
LETTER_RULES = frozenset({common_pb2.RULE_PRONUNCIATION, common_pb2.RULE_TASHKEEL})
