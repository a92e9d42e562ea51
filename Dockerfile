# The one image of every resoto-tasks service (workers, beat, Flower): see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The project with its own dependencies, as pyproject.toml declares them, plus Flower, boto3
# (the aws provider: RESOTO_COLLECT_PROVIDERS=aws with the usual AWS_* credentials or an instance role)
# and the web console (resoto-tasks web).
COPY pyproject.toml README.md ./
COPY resoto_tasks/ resoto_tasks/
COPY worker/ worker/
COPY beat/ beat/
RUN pip install ".[flower,aws,web]" \
 && rm -rf build *.egg-info \
 && useradd --system --uid 10001 --no-create-home --home-dir /app resoto

USER resoto
EXPOSE 9955 5555 8900
CMD ["resoto-tasks", "--help"]
