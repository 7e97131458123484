import random, sys, tempfile
from pathlib import Path
from bench.demo_model_eval import start_mesh, assess_with, grid_spec, eval_ayahs
from services.demo.synth.reciter import recite
rng = random.Random(90)
ayahs = eval_ayahs()
specs = [grid_spec(rng, *rng.choice(ayahs)) for _ in range(30)]
want = [int(x) for x in sys.argv[1:]]
with tempfile.TemporaryDirectory() as tmp:
    mesh = start_mesh("services/asr/demo_model", Path(tmp))
    try:
        assess = assess_with(mesh)
        for n in want:
            spec = specs[n - 1]
            r = recite(spec)
            a = assess(r)
            print(n, spec.surah, spec.ayah, spec.tempo, spec.snr_db, r.truth["duration_s"], [(w["uthmani"], w["start_s"], w["end_s"]) for w in r.truth["words"]])
            for s in a.segments: print(" seg", s.index, round(s.time_span.start_s, 2), round(s.time_span.end_s, 2), s.closed_by_pause)
            for e in a.errors: print("  err", e.word_index, e.kind, e.message_en, round(e.time_span.start_s,2), round(e.time_span.end_s,2))
    finally:
        mesh.stop()
