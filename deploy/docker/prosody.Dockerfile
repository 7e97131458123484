# The prosody image: pitch (SwiftF0, a small ONNX model run on the CPU), voice quality, rhythm,
# melody, maqam and the comparison with a reference recitation. CPU only.
# Build from the repository root: `deploy/docker/build.sh prosody` (or `make images`).
# Ports: gRPC 50055, Prometheus /metrics 9095.

FROM python:3.11.13-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY deploy/docker/constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt pip setuptools
# Dependencies only, from pyproject.toml and a placeholder package: this layer is rebuilt when
# the dependencies change, not on every source change.
COPY pyproject.toml README.md /src/
RUN mkdir /src/services && touch /src/services/__init__.py \
    && pip install --no-cache-dir --no-build-isolation -c /tmp/constraints.txt "/src[prosody]" \
    && pip uninstall --yes muaalem-mesh \
    && rm -rf /src/services /src/build /src/muaalem_mesh.egg-info

FROM deps AS wheel
COPY services /src/services
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels /src

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 muaalem \
    && useradd --system --uid 10001 --gid muaalem --home-dir /home/muaalem --create-home muaalem
COPY --from=deps /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUAALEM_LOG_FORMAT=json \
    MUAALEM_PROSODY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /home/muaalem
EXPOSE 50055 9095
# Outside Kubernetes (which uses its native gRPC probes): SERVING on grpc.health.v1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "exec python -m services.common.healthcheck --address \"127.0.0.1:${MUAALEM_PROSODY_PORT:-50055}\""]
ENTRYPOINT ["python", "-m", "services.prosody"]
