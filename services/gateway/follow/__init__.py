"""Following a recitation: one flow for Assess and live sessions (design.md, "Following a
recitation"). Transport-free: a live session feeds it segments as the learner pauses, the Assess
flow the segments of a whole file; only the pace differs.

    follower.py   RecitationFollower: follow(segment) -> events; retry_failed(); followed()
    locate.py     where a segment's decode lies in the passage (repeats, restarts, skips, preludes)
    judge.py      one stretch through the stages, on a reference of its own (waqf at its stop)
    judgement.py  a judged stretch, in the target's terms
    attempts.py   one attempt at one word; assemble() builds words/errors/findings from attempts
    committer.py  which attempt at each word stands, and which it replaced
    compose.py    compose(followed) -> the final Assessment (and the words never sent live)
    ledger.py     one stage report per stage over all the stretches
    offline.py    a whole file: segments_of() with the live segmenter, follow_all()
    preludes.py   the isti'adha and basmala as candidates before the target
    recording.py  the recitation's audio as it arrives, with arrival times
    stretch.py    a stretch of the target's words as a word-range target of its own
"""
