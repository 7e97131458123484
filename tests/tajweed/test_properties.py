"""Whatever the model decoded, validation answers with well-formed findings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.tajweed.phonetics import ALPHABET
from tests.tajweed import synth

SYMBOLS = sorted(ALPHABET)
REFERENCE = synth.reference(106, 4)
TIMING = synth.alignment(REFERENCE, synth.natural_durations(REFERENCE, 0.3, 0.18))
ENVELOPE = synth.energy(synth.envelope(TIMING), 0.01)

edits = st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "replace"]), st.integers(0, 10_000), st.sampled_from(SYMBOLS)),
    max_size=10,
)


def _apply(phonemes: str, changes: list[tuple[str, int, str]]) -> str:
    chars = list(phonemes)
    for op, where, symbol in changes:
        i = where % (len(chars) + 1)
        if op == "insert":
            chars.insert(i, symbol)
        elif chars and i < len(chars):
            if op == "delete":
                del chars[i]
            else:
                chars[i] = symbol
    return "".join(chars)


@settings(max_examples=60, deadline=None)
@given(edits)
def test_any_decode_gives_well_formed_findings(changes: list[tuple[str, int, str]]) -> None:
    decoded = _apply(REFERENCE.phonemes, changes)
    req = synth.request(REFERENCE, TIMING, synth.decode(decoded), envelope=ENVELOPE, is_complete=True)
    result = synth.validate(req)
    for finding in result.findings:
        assert 0.0 <= finding.confidence <= 1.0
        assert 0 <= finding.phoneme_start <= finding.phoneme_end <= len(REFERENCE.phonemes)
        assert 0 <= finding.text_span[0] <= finding.text_span[1] <= len(REFERENCE.uthmani)
        assert 0 <= finding.word_index < len(REFERENCE.words)
        assert finding.message_ar and finding.message_en
        if finding.time_span is not None:
            assert 0.0 <= finding.time_span[0] <= finding.time_span[1] <= TIMING.duration_s + 0.05
    if decoded == REFERENCE.phonemes:
        assert not [f for f in result.findings if f.source == "explain_error"]
