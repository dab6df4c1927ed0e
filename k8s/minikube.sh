#!/usr/bin/env bash
# Xtream on a local minikube, from this checkout: build the Spin components,
# start the cluster, build both images inside it, install what the manifests
# need (cert-manager, KWasm + containerd-shim-spin, spin-operator, Strimzi,
# KEDA, CloudNativePG), then apply k8s/overlays/minikube stage by stage,
# waiting for what each stage starts before the next. Safe to run again.
#
#   k8s/minikube.sh                       # builds and runs this checkout
#   XTREAM_APP_IMAGE=registry.local:5000/xtream:0.1.0 \
#   XTREAM_WORKER_IMAGE=registry.local:5000/xtream-worker@sha256:... \
#   k8s/minikube.sh                       # runs images pushed elsewhere
#
# Needs minikube (the MINIKUBE_VERSION of versions.env), kubectl, helm, git
# and tar; ./x build installs what building the components needs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/../versions.env
source "$ROOT/versions.env"

PROFILE="${MINIKUBE_PROFILE:-xtream}"
NAMESPACE=xtream
WAIT=600s
# What this script builds into the node and the minikube overlay runs (a
# manifest test keeps the two equal). Never pushed, so never pulled: the tag
# must not be `latest`, which would make the kubelet pull.
FUNCTIONS_IMAGE=xtream-functions:dev
WORKER_IMAGE=xtream-worker:dev
# Every object of the overlay carries its stage in this label
# (k8s/base/apply-stages/stages.yaml).
STAGE_LABEL=xtream.dev/apply-stage
OVERLAY="$ROOT/k8s/overlays/minikube"
# The scratch overlay for XTREAM_*_IMAGE, while the script runs. Global, so
# that the EXIT trap still sees it once the function that made it returned.
SCRATCH_OVERLAY=
trap 'if [ -n "$SCRATCH_OVERLAY" ]; then rm -rf -- "$SCRATCH_OVERLAY"; fi' EXIT

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need() {
    command -v "$1" >/dev/null || { echo "k8s/minikube.sh needs $1 on PATH" >&2; exit 1; }
}

check_minikube_version() {
    local installed
    installed="$(minikube version --short)"
    if [ "$installed" != "$MINIKUBE_VERSION" ]; then
        echo "k8s/minikube.sh runs with minikube $MINIKUBE_VERSION (versions.env), this is $installed:" >&2
        echo "  https://github.com/kubernetes/minikube/releases/tag/$MINIKUBE_VERSION" >&2
        exit 1
    fi
}

# One entry of a kustomization's `images:`, replacing image NAME by the
# reference REF. In a reference, a ':' starts the tag only after the last '/'
# (before it, it ends a registry host and starts its port), and '@' starts a
# digest. kustomize pins by the digest when there is one, so a tag beside it
# is dropped.
kustomize_image_entry() {
    local name="$1" ref="$2" digest="" tag="" last
    if [[ "$ref" == *@* ]]; then
        digest="${ref#*@}"
        ref="${ref%%@*}"
    fi
    last="${ref##*/}"
    if [[ "$last" == *:* ]]; then
        tag="${last##*:}"
        ref="${ref%:*}"
    fi
    if [ -n "$digest" ]; then
        echo "  - {name: $name, newName: \"$ref\", digest: \"$digest\"}"
    elif [ -n "$tag" ]; then
        echo "  - {name: $name, newName: \"$ref\", newTag: \"$tag\"}"
    else
        echo "image $2 has neither a tag nor a digest: name one (name:tag or name@sha256:...)" >&2
        return 1
    fi
}

start_cluster() {
    say "starting minikube profile $PROFILE (Kubernetes $KUBERNETES_VERSION, containerd, Calico)"
    # containerd: the Spin shim is a containerd runtime. Calico: enforces the
    # NetworkPolicies (minikube's default CNI ignores them).
    minikube start --profile "$PROFILE" \
        --kubernetes-version "$KUBERNETES_VERSION" \
        --container-runtime containerd \
        --cni calico \
        --cpus "${MINIKUBE_CPUS:-4}" --memory "${MINIKUBE_MEMORY:-8g}"
    kubectl config use-context "$PROFILE" >/dev/null
    minikube --profile "$PROFILE" addons enable ingress
    minikube --profile "$PROFILE" addons enable metrics-server # the functions' HPA reads CPU use
    # The controller's admission webhook refuses every Ingress (failurePolicy
    # Fail) until the controller serves and its certificate is patched in.
    kubectl -n ingress-nginx wait job/ingress-nginx-admission-create job/ingress-nginx-admission-patch \
        --for=condition=Complete --timeout "$WAIT"
    kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout "$WAIT"
    # Slow clients: the controller, not Spin, times out stalled heads and
    # bodies (k8s/ingress-controller/slow-clients.yaml). nginx reloads its
    # configuration when the ConfigMap changes; no restart.
    kubectl apply -f "$ROOT/k8s/ingress-controller/slow-clients.yaml"
    kubectl -n kube-system rollout status deployment/metrics-server --timeout "$WAIT"
}

# Whether the node's container runtime holds IMAGE (minikube lists names in
# full: docker.io/library/xtream-worker:dev).
image_present() {
    local listed
    listed="$(minikube --profile "$PROFILE" image ls --format short)"
    grep -qxF -e "$1" -e "docker.io/library/$1" <<<"$listed"
}

# Builds IMAGE inside minikube from DOCKERFILE, with the files named on stdin
# (NUL-separated, relative to the checkout) as the build context: a tar of
# exactly those. Given a directory, minikube would send all of it, target/
# included, heeding only a .dockerignore at its top.
#
# `minikube image build` logs a failed build and still exits 0, so the old
# image goes first and the new one must be there afterwards.
build_image() {
    local image="$1" dockerfile="$2"
    minikube --profile "$PROFILE" image rm "$image" >/dev/null 2>&1 || true
    if image_present "$image"; then
        echo "could not remove the previous $image from minikube" >&2
        exit 1
    fi
    tar -C "$ROOT" --null -T - -cf - |
        minikube --profile "$PROFILE" image build --tag "$image" --file "$dockerfile" -
    if ! image_present "$image"; then
        echo "building $image failed: see the build's output above" >&2
        exit 1
    fi
}

# The functions image holds spin.toml and the components it names, at the
# paths its `source =` lines give: containerd-shim-spin runs /spin.toml
# when an image has no Spin OCI layers, so the Spin CLI is not needed.
build_functions_image() {
    say "building $FUNCTIONS_IMAGE in minikube (k8s/images/functions.Dockerfile)"
    local sources=() source
    while IFS= read -r source; do
        sources+=("$source")
    done < <(sed -n 's/^source = "\(.*\)"$/\1/p' "$ROOT/spin.toml")
    for source in "${sources[@]}"; do
        if [ ! -f "$ROOT/$source" ]; then
            echo "$source is missing: ./x build makes it" >&2
            exit 1
        fi
    done
    printf '%s\0' spin.toml k8s/images/functions.Dockerfile "${sources[@]}" |
        build_image "$FUNCTIONS_IMAGE" k8s/images/functions.Dockerfile
}

# The worker's build context is the checkout as git sees it (tracked files and
# new ones not ignored): target/, .git and node_modules stay out, which
# host-worker/Dockerfile.dockerignore says for docker build.
build_worker_image() {
    say "building $WORKER_IMAGE in minikube (host-worker/Dockerfile; the first build compiles for minutes)"
    local file
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do
            # Deleted but not yet committed: nothing to send.
            if [ -f "$ROOT/$file" ]; then printf '%s\0' "$file"; fi
        done |
        build_image "$WORKER_IMAGE" host-worker/Dockerfile
}

install_cert_manager() {
    say "cert-manager $CERT_MANAGER_VERSION (spin-operator's webhooks need certificates)"
    kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
    kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout "$WAIT"
}

install_spin_shim() {
    say "KWasm operator $KWASM_OPERATOR_CHART_VERSION installing containerd-shim-spin $SPIN_SHIM_VERSION on the nodes"
    helm upgrade --install kwasm-operator kwasm-operator \
        --repo http://kwasm.sh/kwasm-operator/ --version "$KWASM_OPERATOR_CHART_VERSION" \
        --namespace kwasm --create-namespace \
        --set "kwasmOperator.installerImage=ghcr.io/spinframework/containerd-shim-spin/node-installer:$SPIN_SHIM_VERSION" \
        --wait --timeout "$WAIT"
    # KWasm provisions the nodes that carry this annotation.
    kubectl annotate node --all --overwrite kwasm.sh/kwasm-node=true
    wait_for_spin_shim
}

# KWasm labels a node kwasm.sh/kwasm-provisioned in the same step as it
# creates the node's installer Job: the label says the install began, not
# that it ended. The Job (<node>-provision-kwasm, cut to 63 characters, in
# KWasm's namespace) completes once the installer has copied the shim onto
# the node, registered it with containerd and restarted containerd, so its
# completion is what is waited for. A probe pod on the shim's RuntimeClass
# would show the same but needs a Spin image of its own; the functions'
# rollout in the last stage is that probe for this app.
wait_for_spin_shim() {
    local node job
    for node in $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}'); do
        job="${node}-provision-kwasm"
        job="${job:0:63}"
        for _ in $(seq 1 60); do
            kubectl -n kwasm get "job/$job" >/dev/null 2>&1 && break
            sleep 2
        done
        if ! kubectl -n kwasm get "job/$job" >/dev/null 2>&1; then
            echo "KWasm made no installer Job for node $node. If the node still carries the label of an earlier install, remove it and run again:" >&2
            echo "  kubectl label node $node kwasm.sh/kwasm-provisioned-" >&2
            exit 1
        fi
        kubectl -n kwasm wait "job/$job" --for=condition=Complete --timeout "$WAIT"
        # The functions' RuntimeClass schedules onto nodes with this label
        # only (k8s/base/functions/runtime-class.yaml).
        kubectl label node "$node" --overwrite xtream.dev/spin-shim=installed
    done
}

install_spin_operator() {
    local release="https://github.com/spinframework/spin-operator/releases/download/v$SPIN_OPERATOR_VERSION"
    say "spin-operator $SPIN_OPERATOR_VERSION: CRDs, RuntimeClass wasmtime-spin-v2, operator"
    kubectl apply -f "$release/spin-operator.crds.yaml"
    kubectl apply -f "$release/spin-operator.runtime-class.yaml"
    # The SpinAppExecutor itself is namespaced and part of the overlay
    # (k8s/base/functions/executor.yaml), applied a stage before the SpinApp.
    helm upgrade --install spin-operator oci://ghcr.io/spinframework/charts/spin-operator \
        --version "$SPIN_OPERATOR_VERSION" \
        --namespace spin-operator --create-namespace \
        --wait --timeout "$WAIT"
}

install_strimzi() {
    say "Strimzi $STRIMZI_VERSION (Kafka in KRaft mode)"
    # Strimzi gets rights in the namespace it watches, so that comes first.
    kubectl apply -f "$ROOT/k8s/base/namespace.yaml"
    helm upgrade --install strimzi-cluster-operator oci://quay.io/strimzi-helm/strimzi-kafka-operator \
        --version "$STRIMZI_VERSION" \
        --namespace strimzi --create-namespace \
        --set "watchNamespaces={$NAMESPACE}" \
        --wait --timeout "$WAIT"
}

install_keda() {
    say "KEDA $KEDA_VERSION (scales the worker on Kafka lag)"
    helm upgrade --install keda keda \
        --repo https://kedacore.github.io/charts --version "$KEDA_VERSION" \
        --namespace keda --create-namespace \
        --wait --timeout "$WAIT"
}

install_cloudnative_pg() {
    local minor="${CLOUDNATIVE_PG_VERSION%.*}"
    say "CloudNativePG $CLOUDNATIVE_PG_VERSION (PostgreSQL)"
    # Server-side: its CRDs are too large for the annotation a client-side
    # apply keeps. The project publishes each release's manifest on its
    # release branch.
    kubectl apply --server-side -f \
        "https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/release-$minor/releases/cnpg-$CLOUDNATIVE_PG_VERSION.yaml"
    kubectl -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout "$WAIT"
}

# With XTREAM_APP_IMAGE / XTREAM_WORKER_IMAGE, a scratch kustomization on top
# of the overlay runs those images, so the repository stays as it is. It sits
# next to the overlay because kustomize takes a base by relative path only.
use_image_overrides() {
    [ -n "${XTREAM_APP_IMAGE:-}${XTREAM_WORKER_IMAGE:-}" ] || return 0
    SCRATCH_OVERLAY="$(mktemp -d "$ROOT/k8s/overlays/.minikube-images.XXXXXX")"
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "resources: [\"../minikube\"]"
        echo "images:"
        if [ -n "${XTREAM_APP_IMAGE:-}" ]; then
            kustomize_image_entry "${FUNCTIONS_IMAGE%:*}" "$XTREAM_APP_IMAGE"
        fi
        if [ -n "${XTREAM_WORKER_IMAGE:-}" ]; then
            kustomize_image_entry "${WORKER_IMAGE%:*}" "$XTREAM_WORKER_IMAGE"
        fi
    } >"$SCRATCH_OVERLAY/kustomization.yaml"
    OVERLAY="$SCRATCH_OVERLAY"
}

apply_stage() {
    say "applying stage $1 of the minikube overlay"
    kubectl apply -k "$OVERLAY" --selector "$STAGE_LABEL=$1"
}

wait_for_backends() {
    say "waiting for PostgreSQL, Kafka and its topics, MinIO, the monitoring (the first start pulls images: minutes)"
    kubectl -n "$NAMESPACE" wait clusters.postgresql.cnpg.io/xtream-db --for=condition=Ready --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait kafka/xtream --for=condition=Ready --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait kafkatopic --selector "$STAGE_LABEL=2-backends" --for=condition=Ready --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait kafkabridge/xtream-bridge --for=condition=Ready --timeout "$WAIT"
    kubectl -n "$NAMESPACE" rollout status statefulset/minio --timeout "$WAIT"
    kubectl -n "$NAMESPACE" rollout status deployment/prometheus --timeout "$WAIT"
    kubectl -n "$NAMESPACE" rollout status daemonset/node-exporter --timeout "$WAIT"
    local monitoring
    for monitoring in deployment/alertmanager deployment/kube-state-metrics deployment/grafana \
        statefulset/loki daemonset/fluent-bit; do
        kubectl -n "$NAMESPACE" rollout status "$monitoring" --timeout "$WAIT"
    done
}

# A Job's pod template cannot change once created, and the Jobs of an earlier
# run may still be there (finished, or kept for their logs). They are
# idempotent: delete them, the stage's apply runs them again.
rerun_jobs() {
    kubectl delete -k "$OVERLAY" --selector "$STAGE_LABEL=3-jobs" --ignore-not-found --wait
}

wait_for_jobs() {
    say "waiting for the schema migration and the bucket"
    kubectl -n "$NAMESPACE" wait job --selector "$STAGE_LABEL=3-jobs" --for=condition=Complete --timeout "$WAIT"
}

# The Deployments running images this run rebuilt under an unchanged tag:
# their pods keep the previous build until restarted. spin-operator makes the
# functions' Deployment and names it like the SpinApp; the last stage's own
# Deployments run the worker image.
RESTART_AFTER_APPLY=()
note_deployments_to_restart() {
    local deployment
    for deployment in \
        $([ -n "${XTREAM_APP_IMAGE:-}" ] || echo deployment/xtream) \
        $([ -n "${XTREAM_WORKER_IMAGE:-}" ] ||
            kubectl -n "$NAMESPACE" get deployment --selector "$STAGE_LABEL=4-apps" -o name); do
        if kubectl -n "$NAMESPACE" get "$deployment" >/dev/null 2>&1; then
            RESTART_AFTER_APPLY+=("$deployment")
        fi
    done
}

restart_rebuilt_deployments() {
    if [ ${#RESTART_AFTER_APPLY[@]} -gt 0 ]; then
        say "restarting ${RESTART_AFTER_APPLY[*]} on the images just built"
        kubectl -n "$NAMESPACE" rollout restart "${RESTART_AFTER_APPLY[@]}"
    fi
}

wait_for_apps() {
    say "waiting for the functions, the worker and its autoscaler"
    # spin-operator creates the functions' Deployment a moment after the SpinApp.
    for _ in $(seq 1 60); do
        kubectl -n "$NAMESPACE" get deployment/xtream >/dev/null 2>&1 && break
        sleep 5
    done
    kubectl -n "$NAMESPACE" rollout status deployment/xtream --timeout "$WAIT"
    local deployment
    for deployment in $(kubectl -n "$NAMESPACE" get deployment --selector "$STAGE_LABEL=4-apps" -o name); do
        kubectl -n "$NAMESPACE" rollout status "$deployment" --timeout "$WAIT"
    done
    kubectl -n "$NAMESPACE" wait scaledobject --selector "$STAGE_LABEL=4-apps" --for=condition=Ready --timeout "$WAIT"
}

print_access() {
    local ip
    ip="$(minikube --profile "$PROFILE" ip)"
    cat >&2 <<TXT

Xtream is up on minikube (node $ip).

Chromium and curl resolve every *.localhost name to this machine themselves,
without reading /etc/hosts, so an /etc/hosts entry for the node's IP does not
reach the Ingress. Bring the Ingress to this machine instead:

  kubectl -n ingress-nginx port-forward svc/ingress-nginx-controller 8080:80
  # then, in Chromium or curl:
  #   http://server.video.localhost:8080/             the web app
  #   http://minio-console.video.localhost:8080/      MinIO's console
  #   http://grafana.video.localhost:8080/            Grafana (admin: Secret grafana-admin)
  # resumable uploads need this one: their part URLs name port 8080

or aim at the node's IP by name:

  curl -H 'Host: server.video.localhost' http://$ip/health/ready
  curl -H 'Host: server.video.localhost' -H 'Authorization: Bearer dev-only-xtream-api-key-change-me' \\
       -F video=@my.mp4 -F title='My video' http://$ip/api/videos   (key: Secret xtream-api)
  chromium --host-resolver-rules='MAP *.video.localhost $ip' http://server.video.localhost/
TXT
}

main() {
    need minikube
    need kubectl
    need helm
    need git
    need tar
    check_minikube_version
    # The components first: a compile error ends the run before any cluster.
    if [ -z "${XTREAM_APP_IMAGE:-}" ]; then
        say "building the Spin components (./x build)"
        "$ROOT/x" build
    fi
    start_cluster
    if [ -z "${XTREAM_APP_IMAGE:-}" ]; then build_functions_image; fi
    if [ -z "${XTREAM_WORKER_IMAGE:-}" ]; then build_worker_image; fi
    install_cert_manager
    install_spin_shim
    install_spin_operator
    install_strimzi
    install_keda
    install_cloudnative_pg
    use_image_overrides
    # Stage by stage (k8s/base/apply-stages/stages.yaml). A manifest test
    # reads these apply_stage calls: every object's stage must be one of them.
    apply_stage 1-foundation
    apply_stage 2-backends
    wait_for_backends
    rerun_jobs
    apply_stage 3-jobs
    wait_for_jobs
    note_deployments_to_restart
    apply_stage 4-apps
    restart_rebuilt_deployments
    wait_for_apps
    print_access
}

# Sourced (as the manifest tests do, to try a function), it only defines.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
