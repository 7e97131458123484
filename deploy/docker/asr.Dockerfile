# The asr image: the multi-level CTC model and the pause segmenter, on the GPU (on the CPU when
# there is none). Build from the repository root: `deploy/docker/build.sh asr` (or `make images`).
# Ports: gRPC 50052, Prometheus /metrics 9092. The weights are not in the image: mount them
# (MUAALEM_ASR_MODEL names a directory) or fill the Hugging Face cache (HF_HOME) before start.
#
# torch 2.13.0 from PyPI is the CUDA 13.0 build and brings CUDA and cuDNN as pip packages
# (nvidia-*); onnxruntime-gpu 1.31.1 (CUDA 13, cuDNN 9) resolves to the same packages. The base
# is therefore NVIDIA's CUDA image in its `base` flavour: the CUDA runtime's container wiring
# (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES, NVIDIA_REQUIRE_CUDA, which refuses a too
# old driver at start) without the `runtime` flavour's second ~3 GB copy of those libraries.
# GPU nodes need an NVIDIA driver >= 580 (CUDA 13) and a GPU of compute capability 7.5 or newer.
#
# MUAALEM_ASR_BACKEND=auto: torch on a GPU; on a CPU the fastest option measured for that CPU:
# OpenVINO in bfloat16 where the CPU has it natively (avx512_bf16 or AMX; the compiled model cached
# in MUAALEM_CACHE_DIR), ONNX Runtime in float32 elsewhere. Either way the checkpoint is exported to
# ONNX into MUAALEM_CACHE_DIR on the first start; MUAALEM_ASR_PRECISION=auto picks the precision.

FROM nvidia/cuda:13.0.0-base-ubuntu24.04 AS deps
ARG DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04's Python is 3.12. Ubuntu replaces package versions in its archive with each
# security update, so exact apt pins would break builds; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3.12 -m venv /opt/venv
COPY deploy/docker/constraints.txt deploy/docker/constraints-cuda.txt /tmp/
# The CUDA stack first, in its own layer: several GB that change only with these pins.
RUN pip install --no-cache-dir -c /tmp/constraints.txt pip setuptools \
    && pip install --no-cache-dir -c /tmp/constraints.txt -c /tmp/constraints-cuda.txt \
        torch "onnxruntime-gpu[cuda,cudnn]"
# Then the other dependencies, from pyproject.toml and a placeholder package: this layer is
# rebuilt when the dependencies change, not on every source change.
COPY pyproject.toml README.md /src/
RUN mkdir /src/services && touch /src/services/__init__.py \
    && pip install --no-cache-dir --no-build-isolation \
        -c /tmp/constraints.txt -c /tmp/constraints-cuda.txt "/src[asr]" \
    && pip uninstall --yes muaalem-mesh \
    && rm -rf /src/services /src/build /src/muaalem_mesh.egg-info

FROM deps AS wheel
COPY services /src/services
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels /src

FROM nvidia/cuda:13.0.0-base-ubuntu24.04
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3.12 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 muaalem \
    && useradd --system --uid 10001 --gid muaalem --home-dir /home/muaalem --create-home muaalem
COPY --from=deps /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUAALEM_LOG_FORMAT=json \
    MUAALEM_ASR_HOST=0.0.0.0 \
    MUAALEM_ASR_BACKEND=auto \
    HF_HOME=/home/muaalem/.cache/huggingface
USER 10001:10001
WORKDIR /home/muaalem
EXPOSE 50052 9092
# Outside Kubernetes (which uses its native gRPC probes): SERVING once the model is loaded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["sh", "-c", "exec python -m services.common.healthcheck --address \"127.0.0.1:${MUAALEM_ASR_PORT:-50052}\""]
ENTRYPOINT ["python", "-m", "services.asr"]
