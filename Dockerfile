# The one image for api, worker, beat and flower (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev
# Run as a user without privileges; /data (media, the beat schedule) and /models (checkpoints) belong to it.
RUN useradd --create-home --uid 10001 lookalike && mkdir -p /data /models && chown lookalike:lookalike /data /models
USER lookalike
ENV PATH="/app/.venv/bin:$PATH" VAR_DIR=/data
EXPOSE 8000
CMD ["lookalike", "serve", "--production", "--host", "0.0.0.0"]
