# dashgen's image: the CLI on python:3.11-slim, installed as in the README (pip install of this checkout,
# without the test extras), run as a non-root user. docker-compose.yml runs `dashgen sync --every 15m` with it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/dashgen
# dashgen.toml* : the project's config when there is one (rebuild the image after editing it).
COPY pyproject.toml README.md dashgen.toml* ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group dashgen

USER dashgen
ENTRYPOINT ["dashgen"]
CMD ["--help"]
