# One image for every gridcore role: `serve` (the API and console, the default),
# `worker` (MQTT ingest, dispatch, measurement) and `migrate`.
#   docker build -t gridcore .
#   docker run -p 8000:8000 -e DB_HOST=... -e DB_USER=... -e DB_PASSWORD=... \
#     -e DB_NAME=... -e GRIDCORE_API_TOKENS=... gridcore
# `serve` and `worker` first bring the database up to date, retrying while it
# comes up (deploy/docker-entrypoint.sh); compose.yaml runs the whole system.

FROM python:3.11-slim AS build
WORKDIR /build
# The exact versions of the lock file, installed (not editable) into a venv
# that the final stage copies without pip's caches or the sources.
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m venv /opt/gridcore \
 && /opt/gridcore/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
# A fixed, unprivileged user: gridcore needs no root for anything it does (its
# ports are above 1024), and a fixed uid lets volume permissions be set ahead.
RUN groupadd --system --gid 10001 gridcore \
 && useradd --system --uid 10001 --gid gridcore --home-dir /var/lib/gridcore \
    --create-home --shell /usr/sbin/nologin gridcore
COPY --from=build /opt/gridcore /opt/gridcore
# (executable in the repository, and COPY keeps the mode)
COPY deploy/docker-entrypoint.sh /usr/local/bin/gridcore-entrypoint
ENV PATH=/opt/gridcore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER gridcore:gridcore
# Where the zero-setup SQLite file goes when no DB_* or DATABASE_URL is set.
WORKDIR /var/lib/gridcore
# 8000: the API and console (serve); 8001: the worker's /metrics and /health.
EXPOSE 8000 8001
STOPSIGNAL SIGTERM
ENTRYPOINT ["gridcore-entrypoint"]
# Access control is required on every interface but loopback: set
# GRIDCORE_API_TOKENS (or GRIDCORE_API_TOKENS_FILE), or serve refuses to start.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
