# The functions as an ordinary OCI image that containerd-shim-spin runs, made
# without the Spin CLI: spin.toml at the image's root and every component at
# the path its `source =` gives, relative to spin.toml. When an image has no
# Spin (wasm) layers the shim loads /spin.toml from the container's files.
#
# Build from the repository root after ./x build; the .dockerignore beside
# this file sends only spin.toml and the components:
#
#   docker build -f k8s/images/functions.Dockerfile -t xtream-functions:dev .
#
# k8s/minikube.sh builds it inside minikube. `spin registry push` makes the
# same application as a Spin OCI artifact instead (k8s/README.md).
FROM scratch
COPY spin.toml /spin.toml
COPY target/wasm32-wasip2/release/*.wasm /target/wasm32-wasip2/release/
