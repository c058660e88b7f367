# One image for every seqserve service; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# CPU torch from PyTorch's own index (the GPU worker image swaps this line; see deploy/).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"

COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN pip install -e .

ENV SEQSERVE_VAR_DIR=/var/lib/seqserve SEQSERVE_ARTIFACT_DIR=/artifacts SEQSERVE_DATA_DIR=/data
EXPOSE 8000
CMD ["seqserve", "api", "--host", "0.0.0.0", "--port", "8000"]
