"""`python -m services.tajweed`: the tajweed gRPC server."""

from services.common.server import run
from services.tajweed.server import build_server

if __name__ == "__main__":
    run("tajweed", build_server)
