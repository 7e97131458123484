"""Live assessment while the learner recites (AssessLive, WebSocket /v1/live, the /live page).

A transport-free core: decoder (bytes -> 16 kHz mono), segmenter (voice activity -> speech
segments), session (the audio into segments, the segments to the recitation follower of
services/gateway/follow, its events out). The gRPC and WebSocket front ends only move messages
in and out of a LiveSession.
"""
