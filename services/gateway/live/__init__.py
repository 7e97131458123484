"""Live assessment while the learner recites (AssessLive, WebSocket /v1/live, the /live page).

A transport-free core: decoder (bytes -> 16 kHz mono), segmenter (voice activity -> speech
segments), follower (where in the target a segment is), committer (which verdicts are final),
session (the four together over the gateway's stages). The gRPC and WebSocket front ends only
move messages in and out of a LiveSession.
"""
