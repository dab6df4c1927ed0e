//! The hardening rules, each on a small hardened world broken one thing at
//! a time.

use super::*;

// ---------------------------------------------------------------------------
// Each rule fails on a broken object: a small hardened world, broken one
// thing at a time.

const HARDENED: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/warn: restricted
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: functions, namespace: demo}
automountServiceAccountToken: false
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata: {name: xtream, namespace: demo}
spec:
  image: registry.invalid/xtream:1.0
  executor: shim
  serviceAccountName: functions
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: demo}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: {type: RuntimeDefault}}
      initContainers:
        - name: migrate
          image: registry.example:5000/worker@sha256:0f3c4e0d6c2b1a0918273645f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      containers:
        - name: worker
          image: registry.example:5000/worker@sha256:0f3c4e0d6c2b1a0918273645f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: scratch, mountPath: /scratch}]
      volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: minio, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: minio
          image: quay.io/minio/minio:RELEASE.1@sha256:a1ea29fa28355559ef137d71fc570e508a214ec84ff8083e39bc5428980b015e
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      serviceAccountName: prometheus
      automountServiceAccountToken: true
      securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: prometheus
          image: docker.io/prom/prometheus:v3.4.0@sha256:78ed1f9050eb9eaf766af6e580230b1c4965728650e332cd1ee918c0c4699775
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-exporter, namespace: demo}
spec:
  selector: {matchLabels: {app: node-exporter}}
  template:
    metadata: {labels: {app: node-exporter}}
    spec:
      automountServiceAccountToken: false
      hostPID: true
      securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: node-exporter
          image: quay.io/prometheus/node-exporter:v1.9.1@sha256:d00a542e409ee618a4edc67da14dd48c5da66726bbd5537ab2af9c1dfc442c8a
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: proc, mountPath: /host/proc, readOnly: true}]
      volumes: [{name: proc, hostPath: {path: /proc}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: xtream, namespace: demo}
spec: {maxUnavailable: 1, selector: {matchLabels: {core.spinkube.dev/app-name: xtream}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: minio, namespace: demo}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: minio}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: prometheus, namespace: demo}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: prometheus}}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: kafka, namespace: demo}
spec:
  kafka:
    rack: {topologyKey: topology.kubernetes.io/zone}
    template:
      pod:
        securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
        affinity:
          podAntiAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              - topologyKey: kubernetes.io/hostname
                labelSelector: {matchLabels: {strimzi.io/cluster: kafka, strimzi.io/name: kafka-kafka}}
      kafkaContainer:
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
      initContainer:
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
  entityOperator:
    topicOperator: {}
    template:
      pod:
        securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      topicOperatorContainer:
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: pool, namespace: demo, labels: {strimzi.io/cluster: kafka}}
spec: {replicas: 3, roles: [controller, broker]}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: db, namespace: demo}
spec:
  instances: 1
  imageName: ghcr.io/cloudnative-pg/postgresql:18.4-202608130737-system-trixie@sha256:42708a75345b7a48fdd9257b071830783a97fd228529196b6313187a7198e185
"#;

fn hardened() -> Vec<Value> {
    parse_yaml(HARDENED)
}

/// `rule` finds nothing in the hardened world, and something containing
/// `expected` once `break_it` has run.
fn assert_catches(
    rule: impl Fn(&[Value]) -> Vec<String>,
    break_it: impl FnOnce(&mut Vec<Value>),
    expected: &str,
) {
    let mut objects = hardened();
    let clean = rule(&objects);
    assert!(
        clean.is_empty(),
        "the hardened world should be clean: {clean:#?}"
    );
    break_it(&mut objects);
    let found = rule(&objects);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

/// Like `set`, for a field the object may not have yet (its parent must
/// exist).
fn put(objects: &mut [Value], id_: &str, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object(objects, id_)
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{id_} has no {parent}"))
        .insert(key.replace("~1", "/").replace("~0", "~"), value);
}

const WORKER_CONTAINER: &str = "/spec/template/spec/containers/0/securityContext";

#[test]
fn the_hardened_world_passes_every_hardening_rule() {
    let objects = hardened();
    let violations = [
        security_context_violations(&objects),
        host_access_violations(&objects),
        token_violations(&objects),
        pod_security_violations(&objects),
        disruption_budget_violations(&objects),
        digest_violations(&objects),
        kafka_spread_violations(&objects, true),
    ]
    .concat();
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn containers_need_a_locked_down_security_context() {
    let at = "Deployment/worker container \"worker\"";
    for (field, value, expected) in [
        (
            "readOnlyRootFilesystem",
            json!(false),
            "needs readOnlyRootFilesystem: true",
        ),
        (
            "allowPrivilegeEscalation",
            json!(true),
            "needs allowPrivilegeEscalation: false",
        ),
        (
            "capabilities",
            json!({"drop": ["NET_RAW"]}),
            "must drop ALL capabilities",
        ),
        (
            "capabilities",
            json!({"drop": ["ALL"], "add": ["NET_ADMIN"]}),
            "must add no capabilities",
        ),
        ("privileged", json!(true), "must not be privileged"),
        (
            "runAsUser",
            json!(0),
            "needs an explicit non-zero runAsUser",
        ),
        (
            "seccompProfile",
            json!({"type": "Unconfined"}),
            "needs seccompProfile RuntimeDefault",
        ),
    ] {
        assert_catches(
            security_context_violations,
            |o| {
                put(
                    o,
                    "Deployment/worker",
                    &format!("{WORKER_CONTAINER}/{field}"),
                    value,
                )
            },
            &format!("{at}: {expected}"),
        );
    }
    // Init containers too, and pod-level settings count for every container.
    assert_catches(
        security_context_violations,
        |o| {
            remove(
                o,
                "Deployment/worker",
                "/spec/template/spec/initContainers/0/securityContext/readOnlyRootFilesystem",
            )
        },
        "Deployment/worker container \"migrate\": needs readOnlyRootFilesystem",
    );
    assert_catches(
        security_context_violations,
        |o| {
            remove(
                o,
                "StatefulSet/minio",
                "/spec/template/spec/securityContext/runAsGroup",
            )
        },
        "StatefulSet/minio container \"minio\": needs an explicit non-zero runAsGroup",
    );
    assert_catches(
        security_context_violations,
        |o| {
            remove(
                o,
                "StatefulSet/minio",
                "/spec/template/spec/securityContext/runAsNonRoot",
            )
        },
        "needs runAsNonRoot: true",
    );
}

#[test]
fn host_access_needs_an_exception_and_stays_read_only() {
    assert_catches(
        host_access_violations,
        |o| {
            put(
                o,
                "Deployment/worker",
                "/spec/template/spec/hostNetwork",
                json!(true),
            )
        },
        "Deployment/worker: uses hostNetwork",
    );
    // An exception covers what it lists, nothing more.
    assert_catches(
        host_access_violations,
        |o| {
            put(
                o,
                "DaemonSet/node-exporter",
                "/spec/template/spec/hostNetwork",
                json!(true),
            )
        },
        "DaemonSet/node-exporter: uses hostNetwork",
    );
    assert_catches(
        host_access_violations,
        |o| {
            set(
                o,
                "DaemonSet/node-exporter",
                "/spec/template/spec/volumes/0/hostPath/path",
                json!("/var/run"),
            )
        },
        "uses hostPath /var/run",
    );
    assert_catches(
        host_access_violations,
        |o| {
            put(
                o,
                "StatefulSet/minio",
                "/spec/template/spec/containers/0/ports",
                json!([{"containerPort": 9000, "hostPort": 9000}]),
            )
        },
        "StatefulSet/minio: uses hostPort 9000",
    );
    assert_catches(
        host_access_violations,
        |o| {
            remove(
                o,
                "DaemonSet/node-exporter",
                "/spec/template/spec/containers/0/volumeMounts/0/readOnly",
            )
        },
        "mounts hostPath volume \"proc\" writable",
    );
}

#[test]
fn only_api_clients_mount_a_token() {
    assert_catches(
        token_violations,
        |o| {
            remove(
                o,
                "Deployment/worker",
                "/spec/template/spec/automountServiceAccountToken",
            )
        },
        "Deployment/worker: does not call the Kubernetes API",
    );
    assert_catches(
        token_violations,
        |o| {
            set(
                o,
                "Deployment/prometheus",
                "/spec/template/spec/automountServiceAccountToken",
                json!(false),
            )
        },
        "Deployment/prometheus: calls the Kubernetes API; say automountServiceAccountToken: true",
    );
    assert_catches(
        token_violations,
        |o| {
            remove(
                o,
                "Deployment/prometheus",
                "/spec/template/spec/serviceAccountName",
            )
        },
        "give it a ServiceAccount of its own",
    );
    assert_catches(
        token_violations,
        |o| remove(o, "SpinApp/xtream", "/spec/serviceAccountName"),
        "SpinApp/xtream: runs as the namespace's default ServiceAccount",
    );
    assert_catches(
        token_violations,
        |o| {
            remove(
                o,
                "ServiceAccount/functions",
                "/automountServiceAccountToken",
            )
        },
        "ServiceAccount \"functions\" needs automountServiceAccountToken: false",
    );
}

#[test]
fn pod_levels_follow_the_pod_security_standards() {
    let objects = hardened();
    let levels: BTreeMap<String, Level> = pod_levels(&objects)
        .into_iter()
        .map(|p| (p.owner, p.level))
        .collect();
    let expected = BTreeMap::from(
        [
            ("SpinApp/xtream", Level::Baseline),
            ("Deployment/worker", Level::Restricted),
            ("StatefulSet/minio", Level::Restricted),
            ("Deployment/prometheus", Level::Restricted),
            ("DaemonSet/node-exporter", Level::Privileged),
            ("Kafka/kafka/pool", Level::Restricted),
            ("Kafka/kafka:entity-operator", Level::Restricted),
            ("Cluster/db", Level::Restricted),
        ]
        .map(|(owner, level)| (owner.to_owned(), level)),
    );
    assert_eq!(levels, expected);

    // Without Strimzi templates, Strimzi's defaults: baseline.
    let mut objects = hardened();
    remove(
        &mut objects,
        "Kafka/kafka",
        "/spec/kafka/template/kafkaContainer",
    );
    let kafka = pod_levels(&objects)
        .into_iter()
        .find(|p| p.owner == "Kafka/kafka/pool")
        .unwrap();
    assert_eq!(kafka.level, Level::Baseline);
    // A node pool's own template replaces the Kafka resource's.
    let mut objects = hardened();
    put(
        &mut objects,
        "KafkaNodePool/pool",
        "/spec/template",
        json!({"pod": {}}),
    );
    let kafka = pod_levels(&objects)
        .into_iter()
        .find(|p| p.owner == "Kafka/kafka/pool")
        .unwrap();
    assert_eq!(kafka.level, Level::Baseline);

    for (volume, level) in [
        (
            json!({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}),
            Level::Restricted,
        ),
        (
            json!({"name": "v", "nfs": {"server": "s", "path": "/"}}),
            Level::Baseline,
        ),
        (
            json!({"name": "v", "hostPath": {"path": "/"}}),
            Level::Privileged,
        ),
    ] {
        let mut objects = hardened();
        set(
            &mut objects,
            "Deployment/worker",
            "/spec/template/spec/volumes/0",
            volume,
        );
        let spec = pod_spec(object(&mut objects, "Deployment/worker")).unwrap();
        assert_eq!(pod_level(spec), level);
    }
}

#[test]
fn namespaces_enforce_the_strictest_level_their_pods_meet() {
    let enforce = "/metadata/labels/pod-security.kubernetes.io~1enforce";
    assert_catches(
        pod_security_violations,
        |o| set(o, "Namespace/demo", enforce, json!("baseline")),
        "enforce baseline would reject DaemonSet/node-exporter (meets privileged)",
    );
    // Operator-made pods count: the SpinApp's cannot meet restricted.
    assert_catches(
        pod_security_violations,
        |o| {
            o.retain(|p| id(p) != "DaemonSet/node-exporter");
            set(o, "Namespace/demo", enforce, json!("restricted"));
        },
        "enforce restricted would reject SpinApp/xtream (meets baseline)",
    );
    // Not looser than it can be.
    assert_catches(
        pod_security_violations,
        |o| o.retain(|p| id(p) != "DaemonSet/node-exporter"),
        "every pod meets baseline; enforce baseline, not privileged",
    );
    assert_catches(
        pod_security_violations,
        |o| {
            o.retain(|p| !matches!(id(p).as_str(), "DaemonSet/node-exporter" | "SpinApp/xtream"));
            set(o, "Namespace/demo", enforce, json!("restricted"));
            remove(o, "Kafka/kafka", "/spec/entityOperator/template");
        },
        "enforce restricted would reject Kafka/kafka:entity-operator (meets baseline)",
    );
    assert_catches(
        pod_security_violations,
        |o| remove(o, "Namespace/demo", enforce),
        "enforce is missing",
    );
    assert_catches(
        pod_security_violations,
        |o| {
            set(
                o,
                "Namespace/demo",
                "/metadata/labels/pod-security.kubernetes.io~1warn",
                json!("baseline"),
            )
        },
        "pod-security.kubernetes.io/warn must be restricted",
    );
    assert_catches(
        pod_security_violations,
        |o| o.retain(|p| kind(p) != "Namespace"),
        "namespace \"demo\" has pods but is not declared",
    );
}

#[test]
fn disruption_budgets_cover_the_listed_workloads_and_let_drains_end() {
    assert_catches(
        disruption_budget_violations,
        |o| o.retain(|p| id(p) != "PodDisruptionBudget/minio"),
        "StatefulSet/minio: no PodDisruptionBudget selects its pods",
    );
    assert_catches(
        disruption_budget_violations,
        |o| {
            set(
                o,
                "PodDisruptionBudget/prometheus",
                "/spec/selector/matchLabels/app",
                json!("prom"),
            )
        },
        "Deployment/prometheus: no PodDisruptionBudget selects its pods",
    );
    assert_catches(
        disruption_budget_violations,
        |o| o.retain(|p| id(p) != "Deployment/prometheus"),
        "Deployment/prometheus: must have a PodDisruptionBudget, but is not rendered",
    );
    // One replica: minAvailable 1 would hold every drain until someone
    // deletes the pod by hand.
    assert_catches(
        disruption_budget_violations,
        |o| {
            set(
                o,
                "PodDisruptionBudget/minio",
                "/spec",
                json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "minio"}}}),
            )
        },
        "PodDisruptionBudget/minio: minAvailable 1 with 1 replica(s) refuses every eviction",
    );
    assert_catches(
        disruption_budget_violations,
        |o| {
            set(
                o,
                "PodDisruptionBudget/minio",
                "/spec/maxUnavailable",
                json!(0),
            )
        },
        "PodDisruptionBudget/minio: maxUnavailable 0 refuses every eviction",
    );
    // With more replicas than it keeps, minAvailable is fine.
    let mut objects = hardened();
    set(
        &mut objects,
        "StatefulSet/minio",
        "/spec/replicas",
        json!(4),
    );
    set(
        &mut objects,
        "PodDisruptionBudget/minio",
        "/spec",
        json!({"minAvailable": 3, "selector": {"matchLabels": {"app": "minio"}}}),
    );
    assert_eq!(disruption_budget_violations(&objects), Vec::<String>::new());
}

#[test]
fn images_need_a_digest_unless_excepted() {
    assert_catches(
        digest_violations,
        |o| {
            set(
                o,
                "StatefulSet/minio",
                "/spec/template/spec/containers/0/image",
                json!("quay.io/minio/minio:RELEASE.1"),
            )
        },
        "StatefulSet/minio: image \"quay.io/minio/minio:RELEASE.1\" has no digest",
    );
    assert_catches(
        digest_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/initContainers/0/image",
                json!("registry.example:5000/worker@sha256:abc"),
            )
        },
        "is not a sha256 digest",
    );
    assert_catches(
        digest_violations,
        |o| {
            set(
                o,
                "Cluster/db",
                "/spec/imageName",
                json!("ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie"),
            )
        },
        "Cluster/db: image \"ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie\" has no digest",
    );
    // The exception is for that repository only, not a look-alike.
    assert_catches(
        digest_violations,
        |o| {
            set(
                o,
                "Deployment/prometheus",
                "/spec/template/spec/containers/0/image",
                json!("registry.invalid/xtream-worker-fork:0.1.0"),
            )
        },
        "has no digest",
    );
    assert_eq!(
        repository("registry.example:5000/worker:1.0@sha256:00"),
        "registry.example:5000/worker"
    );
    assert_eq!(repository("busybox:1.36"), "busybox");
}

#[test]
fn kafka_brokers_need_anti_affinity_and_in_production_a_rack() {
    let terms = "/spec/kafka/template/pod/affinity/podAntiAffinity";
    assert_catches(
        |o| kafka_spread_violations(o, true),
        |o| remove(o, "Kafka/kafka", "/spec/kafka/rack"),
        "Kafka/kafka: needs rack.topologyKey topology.kubernetes.io/zone",
    );
    // Preferred is enough on one node, not in production.
    let preferred = |o: &mut Vec<Value>| {
        let term = object(o, "Kafka/kafka").pointer(terms).unwrap()
            ["requiredDuringSchedulingIgnoredDuringExecution"][0]
            .clone();
        set(
            o,
            "Kafka/kafka",
            terms,
            json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}),
        );
    };
    assert_catches(
        |o| kafka_spread_violations(o, true),
        preferred,
        "Kafka/kafka pool pool: needs a required pod anti-affinity",
    );
    let mut objects = hardened();
    preferred(&mut objects);
    assert_eq!(
        kafka_spread_violations(&objects, false),
        Vec::<String>::new()
    );
    // A selector that misses the brokers spreads nothing.
    assert_catches(
        |o| kafka_spread_violations(o, false),
        |o| {
            set(
                o,
                "Kafka/kafka",
                &format!(
                    "{terms}/requiredDuringSchedulingIgnoredDuringExecution/0/labelSelector/matchLabels/strimzi.io~1name"
                ),
                json!("kafka-entity-operator"),
            )
        },
        "Kafka/kafka pool pool: needs a pod anti-affinity on kubernetes.io/hostname",
    );
}
