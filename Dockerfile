# One image for the server and the edge agent (docker-compose.yml picks the command).
# Stage 1: the dashboard, built from the npm lockfile.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# Stage 2: Python. Installed editable so migrations/ and web/dist/ stay where the code finds them.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# FFmpeg's program decodes a recording's sound for `adbreak scan` (PyAV, below, brings its own libraries)
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md NOTICE ./
COPY adbreak adbreak
COPY edge edge
COPY server server
COPY migrations migrations
RUN pip install --no-cache-dir -e '.[server,train]'
COPY --from=web /src/web/dist web/dist
EXPOSE 8080
ENTRYPOINT ["adbreak"]
CMD ["--help"]
