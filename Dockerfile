# syntax=docker/dockerfile:1
#
# The incidentops operator image. It also carries the kubectl plugin (the `kubectl-incident`
# console script), which belongs to the same distribution:
#   docker build -t REGISTRY/incidentops:0.1.0 .
#   docker run --rm --entrypoint kubectl-incident REGISTRY/incidentops:0.1.0 --help
#
# Read-only root filesystem: the image is meant for `readOnlyRootFilesystem: true`. Nothing is
# written at run time except under /tmp: bytecode is compiled here, at build time, and
# PYTHONDONTWRITEBYTECODE keeps Python from trying to write it; the Kubernetes client may put a
# kubeconfig's inline certificates in temporary files. Mount an emptyDir at /tmp.
#
# tests/integration/test_image.py reads this file and repeats the build stage without a container
# engine: keep the build stage to COPY, ENV, WORKDIR and `python -m venv` / `python -m pip` steps.

FROM python:3.12.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_NO_INPUT=1
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest out of the context). devtools/
# is not copied, so the wheel carries no `localenv` (the local control-plane tooling).
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
# The operator and its runtime dependencies only (no extras), every one pinned by constraints.txt,
# from wheels only (no compiler here). The venv gets no pip of its own: this stage's pip installs
# into it. pip compiles the bytecode, once, here.
RUN python -m venv --without-pip /opt/incidentops \
 && python -m pip --python /opt/incidentops/bin/python install --only-binary=:all: \
        -c constraints.txt /wheels/incidentops-*.whl

# The same image as the build stage: the venv's python links to its /usr/local/bin/python3.12.
FROM python:3.12.12-slim-bookworm
LABEL org.opencontainers.image.title="incidentops" \
      org.opencontainers.image.description="Kubernetes operator for automated incident response" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/incidentops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    INCIDENTOPS_LOG_FORMAT=json
# Only the venv: no source tree, no wheel, no build tools.
COPY --from=build /opt/incidentops /opt/incidentops
# Any non-root UID works (no home directory is needed); 65532 is the usual "nonroot".
USER 65532:65532
# Webhooks, /metrics, /healthz and /readyz (INCIDENTOPS_HTTP_PORT).
EXPOSE 8080
ENTRYPOINT ["/opt/incidentops/bin/incidentops"]
