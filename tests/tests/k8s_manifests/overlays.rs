//! The overlays: every rule applied to each rendered overlay, and what the
//! overlays must contain.

use crate::containers::{hygiene_violations, image_violations};
use crate::flows::{End, Flow, elsewhere, flow_violations, owner, tcp};
use crate::operations::{
    acme_solver_violations, job_template_violations, presigned_upload_violations,
    runtime_class_violations, scratch_violations, stale_multipart_violations,
};
use crate::operators::services;
use crate::references::reference_violations;
use crate::render::{OVERLAYS, id, items, kind, name, render, repo_root, s};
use crate::rules::{
    autoscaler_violations, config_value, database_url, default_deny_violations,
    endpoint_violations, grace_period_violations, ingress_upload_violations,
    kafka_scaling_violations, migration_violations, policy_selector_violations,
};
use crate::schema::schema_violations;
use crate::services::service_violations;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;

// ---------------------------------------------------------------------------
// The overlays

/// Secrets an overlay expects to exist in the cluster before it is applied
/// (created by hand; see the overlay's kustomization.yaml).
pub(crate) fn external_secrets(overlay: &str) -> &'static [&'static str] {
    match overlay {
        "production" => &[
            "minio-root",
            "xtream-s3",
            "xtream-api",
            "xtream-db-backup-s3",
            "grafana-admin",
        ],
        _ => &[],
    }
}

pub(crate) fn xtream_flows() -> (Vec<Flow>, Vec<Flow>) {
    let ingress_nginx = || {
        elsewhere(
            "ingress-nginx",
            &[("app.kubernetes.io/name", "ingress-nginx")],
        )
    };
    let keda = || elsewhere("keda", &[("app", "keda-operator")]);
    let strimzi = || elsewhere("strimzi", &[("name", "strimzi-cluster-operator")]);
    let functions = || owner("SpinApp/xtream");
    let worker = || owner("Deployment/xtream-worker");
    let maintenance = || owner("Deployment/xtream-maintenance");
    let minio = || owner("StatefulSet/minio");
    let kafka = || owner("Kafka/xtream");
    let entity_operator = || owner("Kafka/xtream:entity-operator");
    let bridge = || owner("KafkaBridge/xtream-bridge");
    let prometheus = || owner("Deployment/prometheus");
    let node_exporter = || owner("DaemonSet/node-exporter");
    let postgres = || owner("Cluster/xtream-db");
    let migrate = || owner("Job/xtream-migrate");
    let cnpg = || {
        elsewhere(
            "cnpg-system",
            &[("app.kubernetes.io/name", "cloudnative-pg")],
        )
    };
    let allowed = vec![
        tcp(ingress_nginx(), functions(), 80),
        tcp(ingress_nginx(), minio(), 9001),
        tcp(ingress_nginx(), minio(), 9000), // presigned part uploads
        tcp(functions(), minio(), 9000),
        tcp(functions(), bridge(), 8080),
        tcp(functions(), prometheus(), 9090),
        tcp(bridge(), kafka(), 9092),
        tcp(worker(), kafka(), 9092),
        tcp(worker(), minio(), 9000),
        tcp(maintenance(), kafka(), 9092),
        tcp(maintenance(), minio(), 9000),
        tcp(maintenance(), postgres(), 5432),
        tcp(prometheus(), maintenance(), 9090),
        tcp(owner("Job/minio-bucket"), minio(), 9000),
        tcp(keda(), kafka(), 9092),
        tcp(kafka(), kafka(), 9090),
        tcp(kafka(), kafka(), 9091),
        tcp(entity_operator(), kafka(), 9091),
        tcp(entity_operator(), End::External, 443),
        tcp(strimzi(), kafka(), 9091),
        tcp(strimzi(), kafka(), 8443),
        tcp(prometheus(), node_exporter(), 9100),
        tcp(prometheus(), worker(), 9090),
        tcp(prometheus(), End::External, 443),
        tcp(functions(), postgres(), 5432),
        tcp(worker(), postgres(), 5432),
        tcp(migrate(), postgres(), 5432),
        tcp(postgres(), postgres(), 5432),
        tcp(postgres(), postgres(), 8000),
        tcp(cnpg(), postgres(), 8000),
        tcp(cnpg(), postgres(), 5432),
        tcp(prometheus(), postgres(), 9187),
        tcp(postgres(), minio(), 9000),
        tcp(postgres(), End::External, 443),
    ];
    let denied = vec![
        tcp(functions(), kafka(), 9092),      // only through the bridge
        tcp(functions(), End::External, 443), // no internet from the functions
        tcp(worker(), End::External, 443),
        tcp(worker(), functions(), 80),
        tcp(maintenance(), End::External, 443),
        tcp(maintenance(), functions(), 80),
        tcp(maintenance(), bridge(), 8080),
        tcp(elsewhere("default", &[]), minio(), 9000),
        tcp(keda(), minio(), 9000),
        tcp(functions(), node_exporter(), 9100),
        tcp(bridge(), minio(), 9000),
        // PostgreSQL: only its three clients, the operator and its peers.
        tcp(ingress_nginx(), postgres(), 5432),
        tcp(kafka(), postgres(), 5432),
        tcp(bridge(), postgres(), 5432),
        tcp(minio(), postgres(), 5432),
        tcp(owner("Job/minio-bucket"), postgres(), 5432),
        tcp(keda(), postgres(), 5432),
        tcp(strimzi(), postgres(), 5432),
        tcp(elsewhere("default", &[]), postgres(), 5432),
        tcp(elsewhere("cnpg-system", &[]), postgres(), 5432), // not the operator
        tcp(prometheus(), postgres(), 5432),
        tcp(functions(), postgres(), 8000),
        tcp(worker(), postgres(), 9187),
        tcp(migrate(), minio(), 9000),
        tcp(migrate(), End::External, 443),
        tcp(postgres(), functions(), 80),
        tcp(postgres(), kafka(), 9092),
    ];
    (allowed, denied)
}

pub(crate) fn all_violations(objects: &[Value], overlay: &str) -> Vec<String> {
    let (allowed, denied) = xtream_flows();
    [
        schema_violations(objects),
        service_violations(objects),
        reference_violations(objects, external_secrets(overlay)),
        hygiene_violations(objects),
        image_violations(objects),
        autoscaler_violations(objects),
        policy_selector_violations(objects),
        default_deny_violations(objects),
        flow_violations(objects, &allowed, &denied),
        kafka_scaling_violations(objects),
        grace_period_violations(objects),
        ingress_upload_violations(objects),
        endpoint_violations(objects),
        migration_violations(objects),
        scratch_violations(objects),
        job_template_violations(objects),
        presigned_upload_violations(objects),
        acme_solver_violations(objects),
        runtime_class_violations(objects),
        stale_multipart_violations(objects),
    ]
    .concat()
}

pub(crate) fn assert_overlay_valid(overlay: &str) {
    let objects = render(overlay);
    assert!(
        objects.len() > 30,
        "{overlay}: only {} objects rendered",
        objects.len()
    );
    let violations = all_violations(&objects, overlay);
    assert!(
        violations.is_empty(),
        "{overlay}: {} violations:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn minikube_overlay_renders_and_validates() {
    assert_overlay_valid("minikube");
}

#[test]
fn production_overlay_renders_and_validates() {
    assert_overlay_valid("production");
}

#[test]
fn every_overlay_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(repo_root().join("k8s/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.')) // k8s/minikube.sh's scratch overlay
        .collect();
    found.sort();
    assert_eq!(found, OVERLAYS);
}

#[test]
fn overlays_deploy_everything_the_platform_needs() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
        for want in [
            "SpinApp",
            "SpinAppExecutor",
            "HorizontalPodAutoscaler",
            "ScaledObject",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "KafkaBridge",
            "StatefulSet",
            "Job",
            "DaemonSet",
            "Ingress",
            "NetworkPolicy",
            "ClusterRole",
            "ClusterRoleBinding",
            "Cluster",
        ] {
            assert!(kinds.contains(want), "{overlay}: no {want}");
        }
        let topics: BTreeSet<&str> = objects
            .iter()
            .filter(|o| kind(o) == "KafkaTopic")
            .map(name)
            .collect();
        for topic in [
            "xtream.uploads",
            "xtream.results",
            "xtream.uploads.dlq",
            "xtream.chunks",
        ] {
            assert!(topics.contains(topic), "{overlay}: no topic {topic}");
        }
        let kafka = objects.iter().find(|o| kind(o) == "Kafka").unwrap();
        assert_eq!(
            s(kafka, "/metadata/annotations/strimzi.io~1kraft"),
            "enabled",
            "KRaft mode"
        );
        assert!(kafka.pointer("/spec/zookeeper").is_none(), "no ZooKeeper");
        let app = objects.iter().find(|o| kind(o) == "SpinApp").unwrap();
        assert_eq!(s(app, "/spec/executor"), "containerd-shim-spin");
        let variables: BTreeSet<&str> = items(app, "/spec/variables")
            .iter()
            .map(|v| s(v, "/name"))
            .collect();
        for var in [
            "s3_endpoint",
            "s3_bucket",
            "s3_region",
            "s3_access_key",
            "s3_secret_key",
            "max_upload_bytes",
            "max_concurrent_uploads",
            "kafka_bridge_url",
            "uploads_topic",
            "api_keys",
            "read_requires_key",
            "s3_public_endpoint",
            "db_host",
            "db_port",
            "db_name",
            "db_user",
            "db_password",
            "db_sslmode",
        ] {
            assert!(
                variables.contains(var),
                "{overlay}: SpinApp lacks variable {var}"
            );
        }
        for secret in ["s3_access_key", "s3_secret_key", "api_keys", "db_password"] {
            let v = items(app, "/spec/variables")
                .iter()
                .find(|v| s(v, "/name") == secret)
                .unwrap();
            assert!(
                v.pointer("/valueFrom/secretKeyRef").is_some(),
                "{secret} must come from a Secret"
            );
        }
        let hosts: BTreeSet<&str> = objects
            .iter()
            .filter(|o| kind(o) == "Ingress")
            .flat_map(|o| items(o, "/spec/rules"))
            .map(|r| s(r, "/host"))
            .collect();
        // minikube also publishes Grafana (overlays/minikube/grafana.yaml).
        let want = if *overlay == "minikube" { 4 } else { 3 };
        assert_eq!(
            hosts.len(),
            want,
            "{overlay}: the app, the MinIO console and its S3 API (and on minikube Grafana): {hosts:?}"
        );
    }
}

#[test]
fn overlays_wire_postgres_into_the_platform() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let find = |id_: &str| {
            objects
                .iter()
                .find(|o| id(o) == id_)
                .unwrap_or_else(|| panic!("{overlay}: no {id_}"))
        };
        let db = find("Cluster/xtream-db");
        let want_instances = if *overlay == "production" { 3 } else { 1 };
        assert_eq!(db["spec"]["instances"], json!(want_instances), "{overlay}");
        assert_eq!(
            db["spec"]["enablePDB"],
            json!(true),
            "{overlay}: PDBs are the operator's, said explicitly"
        );
        assert_eq!(
            db["spec"]["bootstrap"]["initdb"],
            json!({"database": "xtream", "owner": "xtream"}),
            "{overlay}"
        );
        assert!(
            services(&objects)
                .iter()
                .any(|svc| svc.name == "xtream-db-rw" && svc.ports.iter().any(|(_, p)| *p == 5432)),
            "{overlay}: the read-write Service"
        );

        // The functions: connection settings from the operator's Secret.
        let app = find("SpinApp/xtream");
        let variable = |n: &str| {
            items(app, "/spec/variables")
                .iter()
                .find(|v| s(v, "/name") == n)
                .unwrap_or_else(|| panic!("{overlay}: no variable {n}"))
                .clone()
        };
        for (var, key) in [
            ("db_host", "host"),
            ("db_port", "port"),
            ("db_name", "dbname"),
            ("db_user", "username"),
            ("db_password", "password"),
        ] {
            assert_eq!(
                variable(var)["valueFrom"],
                json!({"secretKeyRef": {"name": "xtream-db-app", "key": key}}),
                "{overlay}: {var}"
            );
        }
        let sslmode = variable("db_sslmode");
        let r = &sslmode["valueFrom"]["configMapKeyRef"];
        assert_eq!(
            config_value(&objects, "xtream", s(r, "/name"), s(r, "/key")).as_deref(),
            Some("prefer"),
            "{overlay}: db_sslmode"
        );

        // The worker and the migrations: the operator's connection URI.
        let uri = json!({"valueFrom": {"secretKeyRef": {"name": "xtream-db-app", "key": "uri"}}});
        let worker = find("Deployment/xtream-worker");
        let run = &items(worker, "/spec/template/spec/containers")[0];
        assert_eq!(database_url(run), Some(uri.clone()), "{overlay}: worker");
        let init = &items(worker, "/spec/template/spec/initContainers")[0];
        assert_eq!(items(init, "/args"), [json!("migrate")], "{overlay}");
        assert_eq!(database_url(init), Some(uri.clone()), "{overlay}: init");
        let job = find("Job/xtream-migrate");
        let c = &items(job, "/spec/template/spec/containers")[0];
        assert_eq!(items(c, "/args"), [json!("migrate")], "{overlay}");
        assert_eq!(database_url(c), Some(uri), "{overlay}: Job");
        assert_eq!(s(c, "/image"), s(run, "/image"), "{overlay}: one image");

        // Backups: production only, nightly, to the in-cluster MinIO.
        let scheduled: Vec<&Value> = objects
            .iter()
            .filter(|o| kind(o) == "ScheduledBackup")
            .collect();
        if *overlay == "production" {
            assert_eq!(scheduled.len(), 1, "production: one ScheduledBackup");
            assert_eq!(s(scheduled[0], "/spec/cluster/name"), "xtream-db");
            assert_eq!(
                s(db, "/spec/backup/barmanObjectStore/endpointURL"),
                "http://minio:9000"
            );
        } else {
            assert!(scheduled.is_empty(), "{overlay}: no backups");
            assert!(
                db.pointer("/spec/backup").is_none(),
                "{overlay}: no backups"
            );
        }
    }
}

#[test]
fn minikube_keeps_the_original_hostnames() {
    let objects = render("minikube");
    let hosts: BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind(o) == "Ingress")
        .flat_map(|o| items(o, "/spec/rules"))
        .map(|r| s(r, "/host"))
        .collect();
    assert_eq!(
        hosts,
        BTreeSet::from([
            "server.video.localhost",
            "minio-console.video.localhost",
            "minio-api.video.localhost",
            "grafana.video.localhost"
        ])
    );
}

#[test]
fn minikube_script_is_valid_bash() {
    let script = repo_root().join("k8s/minikube.sh");
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "bash -n {}", script.display());
}

/// The script runs once on an operator's machine, where a quoting slip costs
/// a broken cluster: shellcheck (installed by `./x setup`) finds nothing.
#[test]
fn minikube_script_is_clean_under_shellcheck() {
    let script = repo_root().join("k8s/minikube.sh");
    let output = Command::new("shellcheck")
        .arg("-x")
        .arg(&script)
        .current_dir(repo_root())
        .output()
        .expect("shellcheck runs (./x setup installs it)");
    assert!(
        output.status.success(),
        "shellcheck -x {}:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout)
    );
}
