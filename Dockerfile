# Vera API image. Dependencies come from the committed uv.lock.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    POSTGRES_MEMORY_EMBEDDED=false

RUN pip install --no-cache-dir uv
WORKDIR /app

COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY src ./src
COPY migrations ./migrations
COPY graphs ./graphs
RUN uv sync --frozen --no-dev

RUN useradd --create-home --uid 10001 vera && chown -R vera /app
USER vera

EXPOSE 8000
CMD ["/app/.venv/bin/python", "-m", "src.api"]
