#!/usr/bin/env bash
# Pull step of the container deployments in prefect.yaml (Docker and Kubernetes work pools):
# make $DCGAN_WORKSPACE (default /workspace/dcgan, on the persistent volume) a clone of the
# project and point DVC at the shared remote. Runs before every flow run; idempotent.
#
#   DCGAN_GIT_URL      the project's git URL (needed for the first clone)
#   DCGAN_DVC_REMOTE   optional: s3://bucket/path, gs://..., a folder: the default DVC remote,
#                      written to .dvc/config.local (the repo's own config stays as it is)
#   DCGAN_INSTALL_WORKSPACE=0  keep the image's dcgan package (default: install the clone's)
set -euo pipefail
WS=${DCGAN_WORKSPACE:-/workspace/dcgan}
if [ ! -d "$WS/.git" ]; then
  : "${DCGAN_GIT_URL:?set DCGAN_GIT_URL (a job variable in prefect.yaml) to the project git URL}"
  mkdir -p "$(dirname "$WS")"
  git clone --quiet "$DCGAN_GIT_URL" "$WS"
  echo "prepare-workspace: cloned $DCGAN_GIT_URL into $WS"
elif [ -z "$(git -C "$WS" status --porcelain --untracked-files=no)" ]; then
  # --tags: the GTO versions and stages of promotions made elsewhere
  git -C "$WS" pull --quiet --ff-only --tags \
    || echo "prepare-workspace: git pull failed; going on at $(git -C "$WS" rev-parse --short HEAD)"
else
  # local edits (by hand, or a promotion whose commit failed): never overwrite them
  echo "prepare-workspace: $WS has uncommitted changes; not pulling"
fi
# DVC experiments, promotion commits and GTO tags need a git identity
git -C "$WS" config user.email >/dev/null || git -C "$WS" config user.email "dcgan-retrain@localhost"
git -C "$WS" config user.name >/dev/null || git -C "$WS" config user.name "dcgan retrain"
# the stages run `python -m dcgan.app.stages.*`: run the clone's code, not the image's copy
if [ "${DCGAN_INSTALL_WORKSPACE:-1}" = 1 ]; then
  python -m pip install --quiet --no-deps --no-build-isolation -e "$WS" \
    || echo "prepare-workspace: could not install $WS; the image's dcgan package runs the stages"
fi
if [ -n "${DCGAN_DVC_REMOTE:-}" ]; then
  (cd "$WS" && dvc remote add --local --force --default cloud "$DCGAN_DVC_REMOTE" >/dev/null)
  echo "prepare-workspace: DVC remote 'cloud' -> $DCGAN_DVC_REMOTE"
fi
echo "prepare-workspace: $WS at $(git -C "$WS" rev-parse --short HEAD)"
