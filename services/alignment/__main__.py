"""`python -m services.alignment`: the alignment gRPC server."""

from services.alignment.server import build_server
from services.common.server import run

if __name__ == "__main__":
    run("alignment", build_server)
