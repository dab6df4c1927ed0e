//! Rules for what an operator hits after the first apply: pods evicted for
//! their scratch space, Jobs that block the next apply, resumable uploads
//! that cannot reach storage from outside, certificates never issued,
//! functions pods on nodes without the Spin shim.

use crate::flows::{elsewhere, flow_allowed, tcp};
use crate::operators::pods;
use crate::render::{containers, id, items, kind, name, namespace, parse_yaml, pod_spec, s};
use crate::rules::{config_maps_named, config_value, upload_bytes};
use serde_json::Value;

/// What a pod writes besides its emptyDirs: logs and the writable layer.
const CONTAINER_DISK_ALLOWANCE: u64 = 1 << 30;

/// Bytes of a Kubernetes quantity (`24Gi`, `500M`, `1024`).
pub(crate) fn quantity_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (unit, factor) in units {
        if let Some(n) = text.strip_suffix(unit) {
            return n.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// The kubelet evicts a pod whose disk use, emptyDirs included, passes the
/// sum of its containers' ephemeral-storage limits. Where containers set
/// such a limit, it must cover every disk-backed emptyDir's sizeLimit plus
/// the containers' own writing; such an emptyDir needs a sizeLimit to be
/// counted. A container's TMPDIR volume must hold twice MAX_UPLOAD_BYTES of
/// the settings it reads (an original and its renditions).
pub(crate) fn scratch_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = pod_spec(o) else { continue };
        let limits: Vec<u64> = items(spec, "/containers")
            .iter()
            .filter_map(|c| {
                c.pointer("/resources/limits/ephemeral-storage")
                    .and_then(Value::as_str)
            })
            .filter_map(quantity_bytes)
            .collect();
        let disk_volumes: Vec<&Value> = items(spec, "/volumes")
            .iter()
            .filter(|v| v.get("emptyDir").is_some() && s(v, "/emptyDir/medium") != "Memory")
            .collect();
        if !limits.is_empty() {
            let mut scratch = 0;
            for v in &disk_volumes {
                match quantity_bytes(s(v, "/emptyDir/sizeLimit")) {
                    Some(bytes) => scratch += bytes,
                    None => out.push(format!(
                        "{}: emptyDir {:?} has no sizeLimit, so its pod's ephemeral-storage limit cannot cover it",
                        id(o),
                        s(v, "/name")
                    )),
                }
            }
            let budget: u64 = limits.iter().sum();
            if budget < scratch + CONTAINER_DISK_ALLOWANCE {
                out.push(format!(
                    "{}: ephemeral-storage limits ({} GiB) do not cover its emptyDirs ({} GiB) plus 1 GiB: the kubelet would evict it",
                    id(o),
                    budget >> 30,
                    scratch >> 30
                ));
            }
        }
        for c in items(spec, "/containers") {
            let Some(tmpdir) = items(c, "/env")
                .iter()
                .find(|e| s(e, "/name") == "TMPDIR")
                .map(|e| s(e, "/value"))
            else {
                continue;
            };
            let Some(max) = config_maps_named_in(c)
                .iter()
                .find_map(|cm| config_value(objects, namespace(o), cm, "MAX_UPLOAD_BYTES"))
                .and_then(|max| upload_bytes(&max))
            else {
                continue;
            };
            let volume = items(c, "/volumeMounts")
                .iter()
                .find(|m| s(m, "/mountPath") == tmpdir)
                .map(|m| s(m, "/name"));
            let size = items(spec, "/volumes")
                .iter()
                .find(|v| Some(s(v, "/name")) == volume)
                .and_then(|v| quantity_bytes(s(v, "/emptyDir/sizeLimit")));
            if size.is_none_or(|size| size < 2 * max) {
                out.push(format!(
                    "{} container {:?}: TMPDIR {tmpdir} must hold twice MAX_UPLOAD_BYTES ({} GiB), has {:?}",
                    id(o),
                    s(c, "/name"),
                    (2 * max) >> 30,
                    size.map(|b| b >> 30)
                ));
            }
        }
    }
    out
}

/// The ConfigMaps one container reads settings from.
fn config_maps_named_in(container: &Value) -> Vec<String> {
    items(container, "/env")
        .iter()
        .map(|e| s(e, "/valueFrom/configMapKeyRef/name").to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A Job's pod template is immutable once created, so `kubectl apply` fails
/// on a finished Job whose template changed. The project's ConfigMaps are
/// generated with a content hash in their names: a Job that names one
/// breaks the next apply after any settings change.
pub(crate) fn job_template_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| kind(o) == "Job") {
        let Some(spec) = pod_spec(o) else { continue };
        for cm in config_maps_named(spec) {
            out.push(format!(
                "{}: the template names ConfigMap {cm:?}; a generated name changes with the content, and a Job's template cannot change",
                id(o)
            ));
        }
        if o.pointer("/spec/ttlSecondsAfterFinished").is_none() {
            out.push(format!(
                "{}: without spec.ttlSecondsAfterFinished the finished Job stays and blocks a changed template",
                id(o)
            ));
        }
    }
    out
}

/// Multipart uploads nobody finished must not hold storage for ever. The
/// local Garage gets the bucket lifecycle rule of
/// tests/data/s3/bucket-lifecycle.xml (abort them after a day); MinIO drops
/// that action from lifecycle rules and aborts them itself past its `api
/// stale_uploads_expiry`, so where MinIO runs, a Job of `mc` must pin that
/// to the same day, and nothing may expire objects (`mc ilm ... --expire-*`
/// would delete videos).
pub(crate) fn stale_multipart_violations(objects: &[Value]) -> Vec<String> {
    let days = xtream_tests::s3::LifecycleRule::parse_all(xtream_tests::garage::BUCKET_LIFECYCLE)
        .iter()
        .find_map(|rule| rule.abort_incomplete_multipart_after_days)
        .expect("the lifecycle rules abort unfinished multipart uploads");
    let expiry = format!("api stale_uploads_expiry={}h", days * 24);
    let images = |o: &Value, image: &str| -> Vec<String> {
        pod_spec(o)
            .into_iter()
            .flat_map(containers)
            .filter(|(c, _)| s(c, "/image").contains(image))
            .map(|(c, _)| {
                let words = items(c, "/command").iter().chain(items(c, "/args"));
                words
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let mut out = Vec::new();
    let mut pinned = false;
    for job in objects.iter().filter(|o| kind(o) == "Job") {
        for script in images(job, "minio/mc") {
            pinned |= script.contains(&expiry);
            if script.contains("--expire-") || script.contains("--noncurrent-expire") {
                out.push(format!(
                    "{}: expires objects, which would delete videos",
                    id(job)
                ));
            }
        }
    }
    let servers = objects
        .iter()
        .filter(|o| !images(o, "minio/minio").is_empty());
    for server in servers {
        if !pinned {
            out.push(format!(
                "{}: no mc Job sets `{expiry}`, the day after which MinIO aborts unfinished \
                 multipart uploads (the Garage rule of tests/data/s3/bucket-lifecycle.xml)",
                id(server)
            ));
        }
    }
    out
}

/// Presigned part URLs name S3_PUBLIC_ENDPOINT: it must be set, its host must
/// be an Ingress rule sending to a Service of the pods the functions store
/// to (the Service in S3_ENDPOINT), and the ingress controller must be let
/// through to them.
pub(crate) fn presigned_upload_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let pods = pods(objects);
    for cm in objects
        .iter()
        .filter(|o| kind(o) == "ConfigMap" && o.pointer("/data/S3_PUBLIC_ENDPOINT").is_some())
    {
        let public = s(cm, "/data/S3_PUBLIC_ENDPOINT");
        let Some(host) = url_host(public) else {
            out.push(format!(
                "{}: S3_PUBLIC_ENDPOINT {public:?} names no host: resumable uploads work only inside the cluster",
                id(cm)
            ));
            continue;
        };
        let internal = url_host(s(cm, "/data/S3_ENDPOINT")).unwrap_or_default();
        let store = internal.split('.').next().unwrap_or_default();
        let routed = objects
            .iter()
            .filter(|o| kind(o) == "Ingress" && namespace(o) == namespace(cm))
            .flat_map(|ing| items(ing, "/spec/rules").iter().map(move |r| (ing, r)))
            .filter(|(_, r)| s(r, "/host") == host)
            .flat_map(|(ing, r)| items(r, "/http/paths").iter().map(move |p| (ing, p)))
            .find(|(_, p)| s(p, "/backend/service/name") == store);
        let Some((ingress, _)) = routed else {
            out.push(format!(
                "{}: no Ingress routes S3_PUBLIC_ENDPOINT's host {host} to Service {store}",
                id(cm)
            ));
            continue;
        };
        let Some(service) = objects
            .iter()
            .find(|o| kind(o) == "Service" && namespace(o) == namespace(cm) && name(o) == store)
        else {
            continue; // the Service rules report it
        };
        let selector = service
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_default();
        let pairs: Vec<(&str, &str)> = selector
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        let target = elsewhere(namespace(cm), &pairs);
        let port = url_port(s(cm, "/data/S3_ENDPOINT"));
        let controller = elsewhere(
            "ingress-nginx",
            &[("app.kubernetes.io/name", "ingress-nginx")],
        );
        if flow_allowed(objects, &pods, &tcp(controller, target, port)) != Ok(true) {
            out.push(format!(
                "{}: the NetworkPolicies keep the ingress controller from {store}:{port}",
                id(ingress)
            ));
        }
    }
    out
}

/// An Ingress with a cert-manager issuer gets its certificate through an
/// HTTP-01 solver pod in its namespace, which the ingress controller must
/// reach (default-deny would block it, and the certificate never comes).
pub(crate) fn acme_solver_violations(objects: &[Value]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    for ing in objects.iter().filter(|o| {
        kind(o) == "Ingress"
            && (!s(o, "/metadata/annotations/cert-manager.io~1cluster-issuer").is_empty()
                || !s(o, "/metadata/annotations/cert-manager.io~1issuer").is_empty())
    }) {
        let solver = elsewhere(
            namespace(ing),
            &[("acme.cert-manager.io/http01-solver", "true")],
        );
        let controller = elsewhere(
            "ingress-nginx",
            &[("app.kubernetes.io/name", "ingress-nginx")],
        );
        if flow_allowed(objects, &pods, &tcp(controller, solver, 8089)) != Ok(true) {
            out.push(format!(
                "{}: the ingress controller cannot reach cert-manager's HTTP-01 solver (:8089), so its certificate is never issued",
                id(ing)
            ));
        }
    }
    out
}

/// Functions pods run only where the Spin shim is: the executor's
/// RuntimeClass is the project's own, and it schedules onto labelled nodes.
pub(crate) fn runtime_class_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for executor in objects.iter().filter(|o| kind(o) == "SpinAppExecutor") {
        let wanted = s(executor, "/spec/deploymentConfig/runtimeClassName");
        match objects
            .iter()
            .find(|o| kind(o) == "RuntimeClass" && name(o) == wanted)
        {
            None => out.push(format!(
                "{}: RuntimeClass {wanted:?} is not part of the manifests, so nothing says which nodes have the shim",
                id(executor)
            )),
            Some(class)
                if class
                    .pointer("/scheduling/nodeSelector")
                    .and_then(Value::as_object)
                    .is_none_or(serde_json::Map::is_empty) =>
            {
                out.push(format!(
                    "{}: no scheduling.nodeSelector: functions pods may land on nodes without the shim",
                    id(class)
                ))
            }
            Some(_) => {}
        }
    }
    out
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then_some(host)
}

fn url_port(url: &str) -> u64 {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(if url.starts_with("https") { 443 } else { 80 })
}

// ---------------------------------------------------------------------------
// Tests: each rule on a small clean case, then broken.

const STORE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings-5fk2m7h8tc, namespace: demo}
data:
  S3_ENDPOINT: http://store:9000
  S3_PUBLIC_ENDPOINT: https://s3.example.org
  MAX_UPLOAD_BYTES: 1GiB
---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: demo}
spec:
  selector: {app: store}
  ports: [{name: api, port: 9000, targetPort: 9000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store, namespace: demo}
spec:
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
        - name: store
          image: store:1
          ports: [{name: api, containerPort: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: s3
  namespace: demo
  annotations: {cert-manager.io/cluster-issuer: letsencrypt}
spec:
  rules:
    - host: s3.example.org
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: store, port: {name: api}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: demo}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: store, namespace: demo}
spec:
  podSelector: {matchLabels: {app: store}}
  policyTypes: [Ingress]
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]
      ports: [{protocol: TCP, port: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: solver, namespace: demo}
spec:
  podSelector: {matchLabels: {acme.cert-manager.io/http01-solver: "true"}}
  policyTypes: [Ingress]
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]
      ports: [{protocol: TCP, port: 8089}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: demo}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers:
        - name: worker
          image: worker:1
          env:
            - {name: TMPDIR, value: /scratch}
            - {name: MAX, valueFrom: {configMapKeyRef: {name: settings-5fk2m7h8tc, key: MAX_UPLOAD_BYTES}}}
          resources: {limits: {ephemeral-storage: 3Gi}}
          volumeMounts: [{name: scratch, mountPath: /scratch}]
      volumes:
        - {name: scratch, emptyDir: {sizeLimit: 2Gi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: setup, namespace: demo}
spec:
  ttlSecondsAfterFinished: 600
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: setup
          image: setup:1
          env:
            - {name: ENDPOINT, value: "http://store:9000"}
"#;

fn store() -> Vec<Value> {
    parse_yaml(STORE)
}

fn find<'a>(objects: &'a mut [Value], id_: &str) -> &'a mut Value {
    objects.iter_mut().find(|o| id(o) == id_).unwrap()
}

#[test]
fn the_clean_case_passes() {
    let objects = store();
    for rule in [
        scratch_violations,
        job_template_violations,
        presigned_upload_violations,
        acme_solver_violations,
    ] {
        assert_eq!(rule(&objects), Vec::<String>::new());
    }
}

#[test]
fn a_scratch_volume_beyond_the_ephemeral_budget_is_caught() {
    let mut objects = store();
    // The old worker: 2Gi for the pod, a 20Gi scratch volume.
    *find(&mut objects, "Deployment/worker")
        .pointer_mut("/spec/template/spec/volumes/0/emptyDir/sizeLimit")
        .unwrap() = "20Gi".into();
    let found = scratch_violations(&objects);
    assert!(found.iter().any(|v| v.contains("would evict")), "{found:?}");

    let mut objects = store();
    *find(&mut objects, "Deployment/worker")
        .pointer_mut("/spec/template/spec/volumes/0/emptyDir")
        .unwrap() = serde_json::json!({});
    let found = scratch_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("has no sizeLimit")),
        "{found:?}"
    );
}

#[test]
fn a_scratch_volume_smaller_than_two_uploads_is_caught() {
    let mut objects = store();
    *find(&mut objects, "ConfigMap/settings-5fk2m7h8tc")
        .pointer_mut("/data/MAX_UPLOAD_BYTES")
        .unwrap() = "2GiB".into();
    let found = scratch_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("twice MAX_UPLOAD_BYTES")),
        "{found:?}"
    );
}

#[test]
fn a_job_naming_a_generated_config_map_is_caught() {
    let mut objects = store();
    *find(&mut objects, "Job/setup")
        .pointer_mut("/spec/template/spec/containers/0/env/0")
        .unwrap() = serde_json::json!({"name": "ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "settings-5fk2m7h8tc", "key": "S3_ENDPOINT"}}});
    let found = job_template_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("cannot change")),
        "{found:?}"
    );

    let mut objects = store();
    find(&mut objects, "Job/setup")
        .pointer_mut("/spec")
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove("ttlSecondsAfterFinished");
    let found = job_template_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("ttlSecondsAfterFinished")),
        "{found:?}"
    );
}

#[test]
fn presigned_urls_need_an_ingress_and_a_policy() {
    let mut objects = store();
    *find(&mut objects, "ConfigMap/settings-5fk2m7h8tc")
        .pointer_mut("/data/S3_PUBLIC_ENDPOINT")
        .unwrap() = "".into();
    let found = presigned_upload_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("names no host")),
        "{found:?}"
    );

    let mut objects = store();
    *find(&mut objects, "Ingress/s3")
        .pointer_mut("/spec/rules/0/host")
        .unwrap() = "elsewhere.example.org".into();
    let found = presigned_upload_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("no Ingress routes")),
        "{found:?}"
    );

    let mut objects = store();
    objects.retain(|o| id(o) != "NetworkPolicy/store");
    let found = presigned_upload_violations(&objects);
    assert!(
        found
            .iter()
            .any(|v| v.contains("keep the ingress controller")),
        "{found:?}"
    );
}

#[test]
fn an_unreachable_acme_solver_is_caught() {
    let mut objects = store();
    objects.retain(|o| id(o) != "NetworkPolicy/solver");
    let found = acme_solver_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("never issued")),
        "{found:?}"
    );
}

#[test]
fn the_executor_needs_a_runtime_class_that_picks_nodes() {
    let world = parse_yaml(
        r#"
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: shim}
handler: spin
scheduling: {nodeSelector: {shim: installed}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinAppExecutor
metadata: {name: exec, namespace: demo}
spec: {createDeployment: true, deploymentConfig: {runtimeClassName: shim}}
"#,
    );
    assert_eq!(runtime_class_violations(&world), Vec::<String>::new());
    let mut elsewhere = world.clone();
    *find(&mut elsewhere, "SpinAppExecutor/exec")
        .pointer_mut("/spec/deploymentConfig/runtimeClassName")
        .unwrap() = "wasmtime-spin-v2".into();
    let found = runtime_class_violations(&elsewhere);
    assert!(found.iter().any(|v| v.contains("not part of")), "{found:?}");
    let mut anywhere = world;
    find(&mut anywhere, "RuntimeClass/shim")
        .as_object_mut()
        .unwrap()
        .remove("scheduling");
    let found = runtime_class_violations(&anywhere);
    assert!(
        found.iter().any(|v| v.contains("nodeSelector")),
        "{found:?}"
    );
}

/// Under SpinKube nothing but the ingress controller ends a client that
/// stalls mid-head or mid-body (Spin sets no such timeout): its settings
/// exist, are applied by k8s/minikube.sh, and end stalls as soon as the
/// embedded host does.
#[test]
fn the_ingress_controller_times_out_slow_clients_like_the_host() {
    let file = "k8s/ingress-controller/slow-clients.yaml";
    let text = std::fs::read_to_string(crate::render::repo_root().join(file)).unwrap();
    let objects = parse_yaml(&text);
    assert_eq!(
        crate::schema::schema_violations(&objects),
        Vec::<String>::new()
    );
    let settings = objects
        .iter()
        .find(|o| id(o) == "ConfigMap/ingress-nginx-controller" && namespace(o) == "ingress-nginx")
        .expect("the controller's ConfigMap");
    let seconds = |key: &str| -> u64 {
        s(settings, &format!("/data/{key}"))
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number of seconds"))
    };
    assert_eq!(
        seconds("client-header-timeout"),
        xtream_host::HEADER_READ_TIMEOUT.as_secs()
    );
    assert_eq!(
        seconds("client-body-timeout"),
        xtream_host::DEFAULT_BODY_IDLE_TIMEOUT.as_secs()
    );
    let script =
        std::fs::read_to_string(crate::render::repo_root().join("k8s/minikube.sh")).unwrap();
    assert!(
        script.contains(file),
        "k8s/minikube.sh does not apply {file}"
    );
}

#[test]
fn minio_must_abort_unfinished_multipart_uploads_as_garage_does() {
    let world = |script: &str| {
        parse_yaml(&format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: minio, namespace: demo}}
spec:
  selector: {{matchLabels: {{app: minio}}}}
  template:
    metadata: {{labels: {{app: minio}}}}
    spec: {{containers: [{{name: minio, image: "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: bucket, namespace: demo}}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: mc
          image: quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z
          command: ["/bin/sh", "-ec"]
          args: [{script:?}]
"#
        ))
    };
    let pinned = "mc mb x/b\nmc admin config set x api stale_uploads_expiry=24h\n";
    assert_eq!(
        stale_multipart_violations(&world(pinned)),
        Vec::<String>::new()
    );
    let found = stale_multipart_violations(&world("mc mb x/b"));
    assert!(
        found.iter().any(|v| v.contains("stale_uploads_expiry=24h")),
        "{found:?}"
    );
    let found =
        stale_multipart_violations(&world("mc admin config set x api stale_uploads_expiry=72h"));
    assert_eq!(found.len(), 1, "another day than Garage's: {found:?}");
    let expiring = format!("{pinned}mc ilm rule add --expire-days 30 x/b");
    let found = stale_multipart_violations(&world(&expiring));
    assert!(
        found.iter().any(|v| v.contains("delete videos")),
        "{found:?}"
    );
}

#[test]
fn quantities() {
    assert_eq!(quantity_bytes("24Gi"), Some(24 << 30));
    assert_eq!(quantity_bytes("500M"), Some(500_000_000));
    assert_eq!(quantity_bytes("1024"), Some(1024));
    assert_eq!(quantity_bytes("lots"), None);
    assert_eq!(
        url_host("https://s3.example.org:8443/x"),
        Some("s3.example.org")
    );
    assert_eq!(url_port("https://s3.example.org"), 443);
    assert_eq!(url_port("http://minio:9000"), 9000);
}
