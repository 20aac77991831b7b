# The project in a container: python 3.11 and the pinned stack, installed the way `make demo` does it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends make build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN make venv PYTHON=python3.11
ENV PATH=/app/.venv/bin:$PATH

CMD ["make", "demo"]
