"""Following a recitation: one flow for Assess and live sessions (design.md, "Following a
recitation"). Transport-free; the Assess flow runs it over a whole file, a live session as the
audio arrives."""
