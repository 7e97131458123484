"""The prosody stage: pitch, loudness, voice quality, rhythm, melody and maqam of a recitation,
and the comparison of a learner's recitation with a reference reciter's."""
