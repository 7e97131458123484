"""`python -m services.gateway`: the front door of the mesh."""

from services.common.server import run
from services.gateway.server import build

if __name__ == "__main__":
    run("gateway", lambda: build()[0])
