"""The project's synthetic reciter: any ayah from its phonetic script, with known timings and
injected mistakes (espeak-ng renders the syllables; durations are set here)."""
