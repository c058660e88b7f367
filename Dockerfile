# One image for every seqserve service; docker-compose.yml and deploy/k8s pick the command.
#
#   docker build -t seqserve:latest .                                    CPU torch
#   docker build -t seqserve:gpu \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   CUDA torch
#
# The CUDA wheels bundle the CUDA runtime and cuDNN, so the base image stays python:slim;
# the host (or the Kubernetes node) provides only the NVIDIA driver and container toolkit.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# torch first, from PyTorch's own index, in its own layer: it is by far the largest and
# changes least. `pip install .` below then finds torch==2.13.0 satisfied (a local version
# such as 2.13.0+cu128 matches the pin) and does not fetch another build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml setup.py README.md alembic.ini ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN pip install -e .

# Run as an unprivileged user. The directories exist in the image with that owner so that
# named volumes mounted on them (checkpoints) start out writable by it.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/seqserve seqserve \
    && mkdir -p /var/lib/seqserve /artifacts /data \
    && chown -R seqserve:seqserve /var/lib/seqserve /artifacts
USER 10001

ENV SEQSERVE_VAR_DIR=/var/lib/seqserve SEQSERVE_ARTIFACT_DIR=/artifacts SEQSERVE_DATA_DIR=/data
# 8000: the API. 9101: a worker's /metrics.
EXPOSE 8000 9101
CMD ["seqserve", "api", "--host", "0.0.0.0", "--port", "8000"]
