# The image the container deployments (prefect.yaml: weekly-retrain-docker, weekly-retrain-k8s)
# run flow runs in: Python 3.11, git, the project and its dependencies at the versions in
# requirements.lock (torch 2.14.1
# from PyPI ships its CUDA runtime; the host needs only the NVIDIA driver and container toolkit).
#
#   docker build -t registry.example.com/dcgan:latest . && docker push registry.example.com/dcgan:latest
#
# Add `dvc[s3]` / `dvc[gs]` (see docs/deployment.md) for a cloud DVC remote.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/dcgan
COPY pyproject.toml README.md LICENSE requirements.lock ./
COPY src ./src
COPY flows ./flows
COPY deploy ./deploy
ARG DVC_EXTRAS="s3"
RUN pip install --no-cache-dir -c requirements.lock . "dvc[${DVC_EXTRAS}]"
ENV DCGAN_WORKSPACE=/workspace/dcgan PYTHONUNBUFFERED=1
