#!/usr/bin/env bash
# Xtream on a local minikube: start the cluster, install what the manifests
# need (cert-manager, KWasm + containerd-shim-spin, spin-operator, Strimzi,
# KEDA, CloudNativePG), then apply k8s/overlays/minikube. Safe to run again.
#
#   k8s/minikube.sh                       # images as set in the overlay
#   XTREAM_APP_IMAGE=ghcr.io/me/xtream:0.1.0 \
#   XTREAM_WORKER_IMAGE=ghcr.io/me/xtream-worker:0.1.0 k8s/minikube.sh
#
# Needs minikube, kubectl and helm. Versions are pinned in versions.env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
source "$ROOT/versions.env"

PROFILE="${MINIKUBE_PROFILE:-xtream}"
NAMESPACE=xtream
WAIT=600s

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need() {
    command -v "$1" >/dev/null || { echo "k8s/minikube.sh needs $1 on PATH" >&2; exit 1; }
}
need minikube
need kubectl
need helm

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
    for _ in $(seq 1 60); do
        if [ "$(kubectl get nodes -o jsonpath='{.items[*].metadata.labels.kwasm\.sh/kwasm-provisioned}')" != "" ]; then
            return 0
        fi
        sleep 5
    done
    echo "the nodes were not provisioned with the Spin shim (kubectl -n kwasm logs -l app.kubernetes.io/name=kwasm-operator)" >&2
    exit 1
}

install_spin_operator() {
    local release="https://github.com/spinframework/spin-operator/releases/download/v$SPIN_OPERATOR_VERSION"
    say "spin-operator $SPIN_OPERATOR_VERSION: CRDs, RuntimeClass wasmtime-spin-v2, operator"
    kubectl apply -f "$release/spin-operator.crds.yaml"
    kubectl apply -f "$release/spin-operator.runtime-class.yaml"
    # The SpinAppExecutor itself is namespaced and part of the overlay
    # (k8s/base/functions/executor.yaml), next to the SpinApp that uses it.
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

apply_overlay() {
    local overlay="$ROOT/k8s/overlays/minikube"
    if [ -n "${XTREAM_APP_IMAGE:-}${XTREAM_WORKER_IMAGE:-}" ]; then
        # A throw-away kustomization on top of the overlay, so the images you
        # pushed need no edit in the repository. It sits next to the overlay
        # because kustomize takes bases by relative path only.
        local tmp
        tmp="$(mktemp -d "$ROOT/k8s/overlays/.minikube-images.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        {
            echo "apiVersion: kustomize.config.k8s.io/v1beta1"
            echo "kind: Kustomization"
            echo "resources: [\"../minikube\"]"
            echo "images:"
            if [ -n "${XTREAM_APP_IMAGE:-}" ]; then
                echo "  - {name: ghcr.io/owner/xtream, newName: \"${XTREAM_APP_IMAGE%:*}\", newTag: \"${XTREAM_APP_IMAGE##*:}\"}"
            fi
            if [ -n "${XTREAM_WORKER_IMAGE:-}" ]; then
                echo "  - {name: ghcr.io/owner/xtream-worker, newName: \"${XTREAM_WORKER_IMAGE%:*}\", newTag: \"${XTREAM_WORKER_IMAGE##*:}\"}"
            fi
        } >"$tmp/kustomization.yaml"
        overlay="$tmp"
    fi
    say "applying the minikube overlay"
    # A finished migrate Job's pod template cannot change; a new worker image
    # would make the apply fail on it. Migrations are idempotent: rerun them.
    kubectl -n "$NAMESPACE" delete job xtream-migrate --ignore-not-found
    kubectl apply -k "$overlay"
}

wait_for_platform() {
    say "waiting for PostgreSQL, Kafka, MinIO and the platform (first start pulls images: minutes)"
    kubectl -n "$NAMESPACE" wait cluster/xtream-db --for=condition=Ready --timeout "$WAIT"
    # Right after the database: the Job is deleted a few minutes after it ends.
    kubectl -n "$NAMESPACE" wait job/xtream-migrate --for=condition=Complete --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait kafka/xtream --for=condition=Ready --timeout "$WAIT"
    kubectl -n "$NAMESPACE" rollout status statefulset/minio --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait job/minio-bucket --for=condition=Complete --timeout "$WAIT"
    kubectl -n "$NAMESPACE" wait kafkabridge/xtream-bridge --for=condition=Ready --timeout "$WAIT"
    for _ in $(seq 1 60); do
        kubectl -n "$NAMESPACE" get deployment/xtream >/dev/null 2>&1 && break
        sleep 5
    done
    kubectl -n "$NAMESPACE" rollout status deployment/xtream --timeout "$WAIT"
}

start_cluster
install_cert_manager
install_spin_shim
install_spin_operator
install_strimzi
install_keda
install_cloudnative_pg
apply_overlay
wait_for_platform

ip="$(minikube --profile "$PROFILE" ip)"
cat >&2 <<TXT

Xtream is up on minikube ($ip).
  health:  curl -H 'Host: server.video.localhost' http://$ip/health/ready
  upload:  curl -H 'Host: server.video.localhost' -H 'Authorization: Bearer dev-only-xtream-api-key-change-me' \
               -F video=@my.mp4 -F title='My video' http://$ip/api/videos   (key: Secret xtream-api)
  list:    curl -H 'Host: server.video.localhost' http://$ip/api/videos
  console: http://minio-console.video.localhost (map it to $ip in /etc/hosts)
TXT
