"""The demo tooling: the synthetic reciter (synth/), the demo model's training (training/) and
`make demo`'s runner (run.py). Imported by no serving stage: the asr loads the committed demo
checkpoint (services/asr/demo_model) as it loads any checkpoint."""
