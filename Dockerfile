# syntax=docker/dockerfile:1
# The accesswatch worker (and the one-shot `topics create` / `load-ref`): see docs/operations.md.
# Dependencies are the exact pins in deploy/requirements.lock, made by `make lock` from
# pyproject.toml; wheels only, so the image needs no compiler.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY deploy/requirements.lock ./
# --no-deps, then pip check: a lock that is not a closed set fails the build here.
RUN python -m venv /opt/accesswatch \
 && /opt/accesswatch/bin/pip install --no-cache-dir --no-deps --only-binary=:all: \
      --requirement requirements.lock \
 && /opt/accesswatch/bin/pip check
COPY pyproject.toml README.md ./
COPY accesswatch ./accesswatch
COPY streams ./streams
COPY models ./models
COPY console ./console
# The build backend is pinned in the lock too, so nothing unpinned is fetched here.
RUN /opt/accesswatch/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/accesswatch/bin/accesswatch --help > /dev/null

FROM python:3.11.13-slim-bookworm
LABEL org.opencontainers.image.title="accesswatch" \
      org.opencontainers.image.description="Live monitoring of staff access to police records: worker" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --create-home \
      --home-dir /var/lib/accesswatch --shell /usr/sbin/nologin accesswatch
COPY --from=build /opt/accesswatch /opt/accesswatch
# Metrics must listen beyond the container's loopback for Prometheus to scrape them.
ENV PATH=/opt/accesswatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ACCESSWATCH_METRICS_HOST=0.0.0.0 \
    ACCESSWATCH_METRICS_PORT=9464 \
    ACCESSWATCH_DATA_DIR=/var/lib/accesswatch/faust
USER 10001:10001
WORKDIR /var/lib/accesswatch
EXPOSE 9464
# /healthz answers 200 once reference data has caught up and the broker answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ACCESSWATCH_METRICS_PORT', '9464'), timeout=4)"]
ENTRYPOINT ["accesswatch"]
CMD ["worker"]
