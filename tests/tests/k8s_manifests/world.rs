//! A small valid "world" of objects for the unit-style tests, and the helpers
//! that break one thing in it and expect the violation.

use crate::containers::{hygiene_violations, image_violations};
use crate::flows::{Flow, elsewhere, flow_violations, owner, tcp};
use crate::references::reference_violations;
use crate::render::{id, parse_yaml};
use crate::rules::{
    autoscaler_violations, default_deny_violations, endpoint_violations, grace_period_violations,
    ingress_upload_violations, kafka_scaling_violations, migration_violations,
    policy_selector_violations,
};
use crate::schema::schema_violations;
use crate::services::service_violations;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Each rule fails on a broken object. The world below is small and valid;
// every test breaks one thing in it.

pub(crate) const WORLD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data:
  S3_ENDPOINT: http://store:9000
  BOOTSTRAP: kafka-kafka-bootstrap:9092
  KAFKA_GROUP: workers
  UPLOADS_TOPIC: uploads
  MAX_UPLOAD_BYTES: 1GiB
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: demo}
stringData: {access-key: a, secret-key: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: demo}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      terminationGracePeriodSeconds: 120
      initContainers:
        - name: migrate
          image: registry.example:5000/worker:1.0
          args: [migrate]
          env:
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
      containers:
        - name: worker
          image: registry.example:5000/worker:1.0
          ports: [{name: metrics, containerPort: 9090}]
          env:
            - {name: XTREAM_KAFKA_GROUP, valueFrom: {configMapKeyRef: {name: settings, key: KAFKA_GROUP}}}
            - {name: XTREAM_UPLOADS_TOPIC, valueFrom: {configMapKeyRef: {name: settings, key: UPLOADS_TOPIC}}}
            - {name: XTREAM_S3_ACCESS_KEY, valueFrom: {secretKeyRef: {name: creds, key: access-key}}}
            - {name: XTREAM_SHUTDOWN_GRACE, value: 1m}
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
          livenessProbe: {httpGet: {path: /health, port: metrics}}
          readinessProbe: {httpGet: {path: /health, port: metrics}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store, namespace: demo}
spec:
  serviceName: store
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
        - name: store
          image: store@sha256:0f3c4e0d6c2b1a0918273645f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d
          ports: [{name: api, containerPort: 9000}]
          envFrom: [{secretRef: {name: creds}}]
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
          livenessProbe: {tcpSocket: {port: api}}
          readinessProbe: {tcpSocket: {port: api}}
---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: demo}
spec:
  selector: {app: store}
  ports: [{name: api, port: 9000, targetPort: api}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: setup, namespace: demo}
spec:
  template:
    metadata: {labels: {app: setup}}
    spec:
      restartPolicy: OnFailure
      containers:
        - name: setup
          image: tools:2.0
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: demo}
spec:
  backoffLimit: 5
  ttlSecondsAfterFinished: 300
  template:
    metadata: {labels: {app: migrate}}
    spec:
      restartPolicy: OnFailure
      containers:
        - name: migrate
          image: registry.example:5000/worker:1.0
          args: [migrate]
          env:
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: db, namespace: demo}
spec:
  instances: 1
  imageName: ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie
  enablePDB: true
  bootstrap: {initdb: {database: app, owner: app}}
  storage: {size: 1Gi}
  resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 500m, memory: 256Mi}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinAppExecutor
metadata: {name: shim, namespace: demo}
spec: {createDeployment: true, deploymentConfig: {runtimeClassName: wasmtime-spin-v2}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata: {name: app, namespace: demo}
spec:
  image: ghcr.io/example/app:1.0
  executor: shim
  enableAutoscaling: true
  resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
  checks:
    liveness: {httpGet: {path: /health}}
    readiness: {httpGet: {path: /health/ready}}
  variables:
    - {name: s3_endpoint, valueFrom: {configMapKeyRef: {name: settings, key: S3_ENDPOINT}}}
    - {name: s3_access_key, valueFrom: {secretKeyRef: {name: creds, key: access-key}}}
    - {name: max_upload_bytes, valueFrom: {configMapKeyRef: {name: settings, key: MAX_UPLOAD_BYTES}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: app, namespace: demo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
  minReplicas: 1
  maxReplicas: 3
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: demo
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 2g
    nginx.ingress.kubernetes.io/proxy-request-buffering: "off"
spec:
  ingressClassName: nginx
  rules:
    - host: app.localhost
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: kafka, namespace: demo, annotations: {strimzi.io/kraft: enabled, strimzi.io/node-pools: enabled}}
spec:
  kafka:
    listeners: [{name: plain, port: 9092, type: internal, tls: false}]
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: pool, namespace: demo, labels: {strimzi.io/cluster: kafka}}
spec:
  replicas: 1
  roles: [controller, broker]
  storage: {type: ephemeral}
  resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {cpu: 500m, memory: 1Gi}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: uploads, namespace: demo, labels: {strimzi.io/cluster: kafka}}
spec: {partitions: 4, replicas: 1}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: demo}
spec:
  scaleTargetRef: {name: worker}
  maxReplicaCount: 4
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: kafka-kafka-bootstrap.demo.svc:9092
        consumerGroup: workers
        topic: uploads
        lagThreshold: "5"
        activationLagThreshold: "0"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: demo}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: demo}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
      ports: [{protocol: UDP, port: 53}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: app, namespace: demo}
spec:
  podSelector: {matchLabels: {core.spinkube.dev/app-name: app}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]
      ports: [{port: 80}]
  egress:
    - to: [{podSelector: {matchLabels: {app: store}}}]
      ports: [{port: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: store, namespace: demo}
spec:
  podSelector: {matchLabels: {app: store}}
  ingress:
    - from: [{podSelector: {matchLabels: {core.spinkube.dev/app-name: app}}}, {podSelector: {matchLabels: {app: worker}}}]
      ports: [{port: api}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: worker, namespace: demo}
spec:
  podSelector: {matchLabels: {app: worker}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {strimzi.io/cluster: kafka, strimzi.io/kind: Kafka}}}]
      ports: [{port: 9092}]
    - to: [{podSelector: {matchLabels: {app: store}}}]
      ports: [{port: 9000}]
    - to: [{podSelector: {matchLabels: {cnpg.io/cluster: db}}}]
      ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: kafka, namespace: demo}
spec:
  podSelector: {matchLabels: {strimzi.io/kind: Kafka}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: worker}}}]
      ports: [{port: 9092}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: migrate, namespace: demo}
spec:
  podSelector: {matchLabels: {app: migrate}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {cnpg.io/cluster: db}}}]
      ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: demo}
spec:
  podSelector: {matchLabels: {cnpg.io/cluster: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: worker}}}, {podSelector: {matchLabels: {app: migrate}}}]
      ports: [{port: 5432}]
"#;

pub(crate) fn world() -> Vec<Value> {
    parse_yaml(WORLD)
}

pub(crate) fn world_flows() -> (Vec<Flow>, Vec<Flow>) {
    let ingress = || elsewhere("ingress-nginx", &[]);
    (
        vec![
            tcp(ingress(), owner("SpinApp/app"), 80),
            tcp(owner("SpinApp/app"), owner("StatefulSet/store"), 9000),
            tcp(owner("Deployment/worker"), owner("StatefulSet/store"), 9000),
            tcp(owner("Deployment/worker"), owner("Kafka/kafka"), 9092),
            tcp(owner("Deployment/worker"), owner("Cluster/db"), 5432),
            tcp(owner("Job/migrate"), owner("Cluster/db"), 5432),
        ],
        vec![
            tcp(owner("SpinApp/app"), owner("Kafka/kafka"), 9092),
            tcp(ingress(), owner("StatefulSet/store"), 9000),
            tcp(owner("StatefulSet/store"), owner("Cluster/db"), 5432),
            tcp(owner("Deployment/worker"), owner("Cluster/db"), 8000),
        ],
    )
}

pub(crate) fn object<'a>(objects: &'a mut [Value], id_: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| id(o) == id_)
        .unwrap_or_else(|| panic!("no {id_} in the world"))
}

pub(crate) fn set(objects: &mut [Value], id_: &str, pointer: &str, value: Value) {
    *object(objects, id_)
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{id_} has no {pointer}")) = value;
}

pub(crate) fn remove(objects: &mut [Value], id_: &str, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    let key = key.as_str();
    let parent = object(objects, id_).pointer_mut(parent).unwrap();
    match parent {
        Value::Object(m) => {
            m.remove(key)
                .unwrap_or_else(|| panic!("{id_} has no {pointer}"));
        }
        Value::Array(a) => {
            a.remove(key.parse().unwrap());
        }
        _ => panic!("{id_} {pointer}: not a container"),
    }
}

/// `rule` finds nothing in the world, and something containing `expected`
/// once `break_it` has run.
pub(crate) fn assert_rule_catches(
    rule: impl Fn(&[Value]) -> Vec<String>,
    break_it: impl FnOnce(&mut Vec<Value>),
    expected: &str,
) {
    let mut objects = world();
    let clean = rule(&objects);
    assert!(clean.is_empty(), "the world should be clean: {clean:#?}");
    break_it(&mut objects);
    let found = rule(&objects);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn the_world_passes_every_rule() {
    let (allowed, denied) = world_flows();
    let objects = world();
    let violations = [
        schema_violations(&objects),
        service_violations(&objects),
        reference_violations(&objects, &[]),
        hygiene_violations(&objects),
        image_violations(&objects),
        autoscaler_violations(&objects),
        policy_selector_violations(&objects),
        default_deny_violations(&objects),
        flow_violations(&objects, &allowed, &denied),
        kafka_scaling_violations(&objects),
        grace_period_violations(&objects),
        ingress_upload_violations(&objects),
        endpoint_violations(&objects),
        migration_violations(&objects),
    ]
    .concat();
    assert!(violations.is_empty(), "{violations:#?}");
}
