# Crucible Storage Service: a slim image with the locked dependencies and nothing else.
# Build: docker build -t crucible-storage .
# Run:   docker run -p 8082:8082 -v crucible-data:/data crucible-storage
#        (embedded default: SQLite and files under /data; set DATABASE_URL and
#        REDIS_URL for PostgreSQL and Redis)

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first: this layer is reused until the lock file changes.
COPY pyproject.toml uv.lock ./
# The workspace names the client; the image installs only the service.
COPY client/pyproject.toml client/README.md ./client/
RUN uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY domain ./domain
COPY application ./application
COPY infrastructure ./infrastructure
COPY interfaces ./interfaces
COPY migrations ./migrations
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home storage \
    && mkdir -p /data \
    && chown storage:storage /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json \
    HOST=0.0.0.0 \
    PORT=8082 \
    DATABASE_URL=sqlite:////data/storage.db \
    FILE_STORAGE_PATH=/data/files
VOLUME ["/data"]
USER 10001:10001
WORKDIR /app
EXPOSE 8082
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8082')}/health\", timeout=4)"]
ENTRYPOINT ["storage-service"]
CMD ["serve"]
