# dashgen's image: the CLI on python:3.11-slim, installed as in the README (pip install of this checkout,
# without the test extras), run as a non-root user. docker-compose.yml runs `dashgen sync --loop` (every [pricing] every, 15m by default) with it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/dashgen
# No dashgen.toml in the image (it may name hosts, users and experiments, and an image is shared): compose
# mounts the project's file read-only at /opt/dashgen/dashgen.toml (or pass --config / mount your own).
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group dashgen

USER dashgen
ENTRYPOINT ["dashgen"]
CMD ["--help"]
