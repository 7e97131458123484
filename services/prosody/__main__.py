"""`python -m services.prosody`: the prosody gRPC server."""

from services.common.server import run
from services.prosody.server import build_server

if __name__ == "__main__":
    run("prosody", build_server)
