"""Training the demo checkpoint: a small multi_level_ctc encoder that hears the synthetic reciter.

`data` renders the training split (surahs 1-89; 90-114 are the evaluation split) with
varied voices, tempos and injected mistakes and caches the features and labels; `train` fits
the model with CTC on the phoneme level and the ten sifat levels and writes the checkpoint in
the real format, marked as demo weights.
"""
