//! How an overlay reaches a cluster: k8s/minikube.sh applies it in stages,
//! one label value at a time, and waits for each stage before the next.
//! Nothing may be applied before what it needs: spin-operator's webhook
//! refuses a SpinApp whose executor does not exist yet, and a Job's first
//! attempt should find the database it works on. An object without a stage
//! would never be applied at all. And the minikube overlay runs exactly the
//! images the script builds from the checkout, not a placeholder.

use crate::operators::cnpg_secrets;
use crate::render::{
    OVERLAYS, containers, id, kind, name, namespace, parse_yaml, pod_spec, render, repo_root, s,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;

/// The label holding an object's apply stage (k8s/base/apply-stages/).
pub(crate) const STAGE_LABEL: &str = "xtream.dev/apply-stage";

fn script() -> String {
    std::fs::read_to_string(repo_root().join("k8s/minikube.sh")).expect("read k8s/minikube.sh")
}

/// The stages a script applies, in its order: the arguments of the
/// `apply_stage` calls in its `main` function.
pub(crate) fn applied_stages(script: &str) -> Vec<String> {
    script
        .lines()
        .skip_while(|line| *line != "main() {")
        .take_while(|line| *line != "}")
        .filter_map(|line| line.trim().strip_prefix("apply_stage "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|stage| stage.trim_matches('"').to_owned())
        .collect()
}

/// The value a script assigns to a variable (`NAME=value`, unquoted).
fn script_value(script: &str, variable: &str) -> String {
    script
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{variable}=")))
        .unwrap_or_else(|| panic!("k8s/minikube.sh sets no {variable}"))
        .to_owned()
}

fn stage_label(o: &Value) -> &str {
    o.pointer("/metadata/labels")
        .and_then(|labels| labels.get(STAGE_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Secret names an object refers to, wherever it does (env, envFrom,
/// volumes, SpinApp variables).
fn secrets_named(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "secretKeyRef" | "secretRef" => out.insert(s(value, "/name").to_owned()),
                    "secret" => out.insert(s(value, "/secretName").to_owned()),
                    _ => false,
                };
                secrets_named(value, out);
            }
        }
        Value::Array(values) => values.iter().for_each(|value| secrets_named(value, out)),
        _ => {}
    }
}

/// Whether `o` refers to a Secret that the CloudNativePG `cluster` makes.
fn reads_secret_of(o: &Value, cluster: &Value) -> bool {
    let mut secrets = BTreeSet::new();
    secrets_named(o.get("spec").unwrap_or(&Value::Null), &mut secrets);
    cnpg_secrets(cluster)
        .iter()
        .any(|made| secrets.contains(made))
}

/// Kinds that hold the platform's data; work against them waits until they
/// are up.
const BACKEND_KINDS: &[&str] = &[
    "Cluster",
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
    "StatefulSet",
];

/// Kinds that run once against the backends.
const ONE_OFF_KINDS: &[&str] = &["Job", "ScheduledBackup"];

/// A violation unless `later` is applied in a stage after `earlier`'s.
fn out_of_order(
    stages: &[String],
    (later, at): (&Value, usize),
    (earlier, before): (&Value, usize),
    why: &str,
) -> Option<String> {
    (at <= before).then(|| {
        format!(
            "{} (stage {}) must be applied after {} (stage {}): {why}",
            id(later),
            stages[at],
            id(earlier),
            stages[before]
        )
    })
}

/// Every object carries a stage the script applies, and each stage comes
/// after what its objects need.
pub(crate) fn stage_violations(objects: &[Value], stages: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let stage = |o: &Value| stages.iter().position(|known| known == stage_label(o));
    for o in objects.iter().filter(|o| stage(o).is_none()) {
        out.push(match stage_label(o) {
            "" => format!("{}: no label {STAGE_LABEL}, so it is never applied", id(o)),
            other => format!(
                "{}: {STAGE_LABEL}={other:?} is not a stage k8s/minikube.sh applies ({stages:?}), so it is never applied",
                id(o)
            ),
        });
    }
    let staged: Vec<(&Value, usize)> = objects
        .iter()
        .filter_map(|o| stage(o).map(|at| (o, at)))
        .collect();
    let in_namespace = |ns: &str, kinds: &[&str]| -> Vec<(&Value, usize)> {
        staged
            .iter()
            .filter(|(o, _)| namespace(o) == ns && kinds.contains(&kind(o)))
            .copied()
            .collect()
    };
    for &(app, at) in staged.iter().filter(|(o, _)| kind(o) == "SpinApp") {
        let executor = s(app, "/spec/executor");
        match in_namespace(namespace(app), &["SpinAppExecutor"])
            .into_iter()
            .find(|(e, _)| name(e) == executor)
        {
            Some((e, before)) => out.extend(out_of_order(
                stages,
                (app, at),
                (e, before),
                "spin-operator's webhook refuses a SpinApp whose executor does not exist",
            )),
            None => out.push(format!(
                "{}: no SpinAppExecutor {executor:?} in its namespace",
                id(app)
            )),
        }
    }

    // The database's credentials appear only once its operator has made them.
    for &(reader, at) in &staged {
        for (cluster, before) in in_namespace(namespace(reader), &["Cluster"]) {
            if reads_secret_of(reader, cluster) {
                out.extend(out_of_order(
                    stages,
                    (reader, at),
                    (cluster, before),
                    "it reads a Secret the database's operator makes",
                ));
            }
        }
    }

    for &(one_off, at) in staged
        .iter()
        .filter(|(o, _)| ONE_OFF_KINDS.contains(&kind(o)))
    {
        for (backend, before) in in_namespace(namespace(one_off), BACKEND_KINDS) {
            out.extend(out_of_order(
                stages,
                (one_off, at),
                (backend, before),
                "it runs once, so what it works against must be up first",
            ));
        }
    }

    // The applications: a SpinApp, and any workload reading the database
    // that is not itself a Job. They start against a migrated schema and an
    // existing bucket.
    let reads_database = |o: &Value| {
        objects
            .iter()
            .filter(|c| kind(c) == "Cluster")
            .any(|cluster| reads_secret_of(o, cluster))
    };
    for &(app, at) in staged.iter().filter(|(o, _)| {
        kind(o) == "SpinApp" || (pod_spec(o).is_some() && kind(o) != "Job" && reads_database(o))
    }) {
        for (job, before) in in_namespace(namespace(app), &["Job"]) {
            out.extend(out_of_order(
                stages,
                (app, at),
                (job, before),
                "the application starts once the one-off work is done",
            ));
        }
    }

    // An autoscaler is not applied before what it scales. spin-operator names
    // a SpinApp's Deployment after the SpinApp.
    for &(scaler, at) in staged
        .iter()
        .filter(|(o, _)| matches!(kind(o), "ScaledObject" | "HorizontalPodAutoscaler"))
    {
        let target = s(scaler, "/spec/scaleTargetRef/name");
        for (scaled, before) in in_namespace(namespace(scaler), &["Deployment", "SpinApp"]) {
            if name(scaled) == target && at < before {
                out.push(format!(
                    "{} (stage {}) must not be applied before {} (stage {}), which it scales",
                    id(scaler),
                    stages[at],
                    id(scaled),
                    stages[before]
                ));
            }
        }
    }
    out
}

/// Every image an overlay runs: containers, the SpinApp's, the database's.
fn images(objects: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in objects {
        if let Some(spec) = pod_spec(o) {
            for (c, _) in containers(spec) {
                out.push((id(o), s(c, "/image").to_owned()));
            }
        }
        match kind(o) {
            "SpinApp" => out.push((id(o), s(o, "/spec/image").to_owned())),
            "Cluster" => out.push((id(o), s(o, "/spec/imageName").to_owned())),
            _ => {}
        }
    }
    out
}

/// Parts of an image reference that stand for "your registry here". Under a
/// real registry such a namespace may belong to anyone (ghcr.io/owner is a
/// GitHub account), so a forgotten edit would run a stranger's image.
const PLACEHOLDERS: &[&str] = &["owner", "you", "your-org", "me", "changeme", "example"];

/// The overlays a checkout deploys as they are, so every image they name must
/// be real. Production's images are its operator's to set, like its
/// hostnames and Secrets (its kustomization.yaml says where, and names
/// `registry.invalid` until then, a name that never resolves, so a
/// forgotten edit fails to pull instead of running anyone's image);
/// hardening.rs names the repositories it runs by tag.
const DEPLOYED_AS_IS: &[&str] = &["minikube"];

pub(crate) fn placeholder_violations(objects: &[Value]) -> Vec<String> {
    images(objects)
        .into_iter()
        .filter_map(|(from, image)| {
            let repository = image.split('@').next().unwrap_or_default();
            let placeholder = repository.split('/').find(|part| {
                let part = part.split(':').next().unwrap_or_default().to_lowercase();
                PLACEHOLDERS.contains(&part.as_str())
                    || part
                        .split('.')
                        .any(|label| label == "example" || label == "invalid")
            })?;
            Some(format!(
                "{from}: image {image:?} has the placeholder {placeholder:?}"
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The overlays and the script

#[test]
fn every_object_has_a_stage_applied_after_what_it_needs() {
    let stages = applied_stages(&script());
    for overlay in OVERLAYS {
        let violations = stage_violations(&render(overlay), &stages);
        assert!(
            violations.is_empty(),
            "{overlay}: {} violations:\n  {}",
            violations.len(),
            violations.join("\n  ")
        );
    }
}

#[test]
fn the_script_applies_each_stage_once_and_each_holds_objects() {
    let stages = applied_stages(&script());
    assert!(stages.len() >= 2, "k8s/minikube.sh applies {stages:?}");
    let distinct: BTreeSet<&String> = stages.iter().collect();
    assert_eq!(distinct.len(), stages.len(), "{stages:?}");
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for stage in &stages {
            assert!(
                objects.iter().any(|o| stage_label(o) == stage),
                "{overlay}: stage {stage} applies nothing (a typo in k8s/minikube.sh?)"
            );
        }
    }
}

#[test]
fn overlays_deployed_as_is_run_no_placeholder_image() {
    for overlay in DEPLOYED_AS_IS {
        let violations = placeholder_violations(&render(overlay));
        assert!(
            violations.is_empty(),
            "{overlay}:\n  {}",
            violations.join("\n  ")
        );
    }
}

#[test]
fn minikube_runs_the_images_minikube_sh_builds() {
    let script = script();
    let functions = script_value(&script, "FUNCTIONS_IMAGE");
    let worker = script_value(&script, "WORKER_IMAGE");
    let objects = render("minikube");
    let app = objects.iter().find(|o| id(o) == "SpinApp/xtream").unwrap();
    assert_eq!(s(app, "/spec/image"), functions);
    // Loaded into the node, never pushed anywhere: a pull would fail, so the
    // policy must let the kubelet use what it has. Unset means IfNotPresent
    // for a tag other than `latest`; spin-operator sets none for the SpinApp.
    assert!(!functions.ends_with(":latest") && !worker.ends_with(":latest"));
    let worker_containers: Vec<(String, &Value)> = objects
        .iter()
        .filter_map(|o| pod_spec(o).map(|spec| (o, spec)))
        .flat_map(|(o, spec)| containers(spec).map(move |(c, _)| (id(o), c)))
        .filter(|(_, c)| s(c, "/image").contains("xtream-worker"))
        .collect();
    assert!(
        !worker_containers.is_empty(),
        "nothing runs the worker image"
    );
    for (from, c) in worker_containers {
        assert_eq!(s(c, "/image"), worker, "{from}");
        assert!(
            matches!(s(c, "/imagePullPolicy"), "" | "IfNotPresent" | "Never"),
            "{from}: imagePullPolicy {:?} would pull an image that exists only in the node",
            s(c, "/imagePullPolicy")
        );
    }
}

/// The line that keeps `source k8s/minikube.sh` from running it.
const MAIN_GUARD: &str = r#"if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi"#;

/// Runs k8s/minikube.sh's reference parser: the kustomize `images:` entry
/// replacing image `name` with `reference`.
fn image_entry(name: &str, reference: &str) -> Option<String> {
    // Sourcing the script without its guard would start a cluster.
    assert!(
        script().lines().any(|line| line == MAIN_GUARD),
        "k8s/minikube.sh must end its top level with {MAIN_GUARD}"
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && kustomize_image_entry "$2" "$3""#)
        .arg("bash")
        .arg(repo_root().join("k8s/minikube.sh"))
        .arg(name)
        .arg(reference)
        .output()
        .expect("run bash");
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

#[test]
fn minikube_sh_splits_image_references_at_the_right_colon() {
    let entry = |reference: &str| image_entry("xtream-worker", reference);
    assert_eq!(
        entry("ghcr.io/me/xtream-worker:0.1.0").as_deref(),
        Some(r#"- {name: xtream-worker, newName: "ghcr.io/me/xtream-worker", newTag: "0.1.0"}"#)
    );
    // A registry's port is not a tag.
    assert_eq!(
        entry("registry.local:5000/team/worker:1.2").as_deref(),
        Some(
            r#"- {name: xtream-worker, newName: "registry.local:5000/team/worker", newTag: "1.2"}"#
        )
    );
    let digest = "sha256:0f3c4e0d6c2b1a0918273645f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d";
    let pinned = format!(
        r#"- {{name: xtream-worker, newName: "registry.local:5000/team/worker", digest: "{digest}"}}"#
    );
    assert_eq!(
        entry(&format!("registry.local:5000/team/worker@{digest}")),
        Some(pinned.clone())
    );
    // kustomize pins by the digest; a tag beside it says nothing more.
    assert_eq!(
        entry(&format!("registry.local:5000/team/worker:1.2@{digest}")),
        Some(pinned)
    );
    assert_eq!(entry("registry.local:5000/team/worker"), None, "no tag");
}

// ---------------------------------------------------------------------------
// Each rule catches what it is for

const STAGES: &[&str] = &["1-foundation", "2-backends", "3-jobs", "4-apps"];

const STAGED_WORLD: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: demo, labels: {xtream.dev/apply-stage: 1-foundation}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinAppExecutor
metadata: {name: shim, namespace: demo, labels: {xtream.dev/apply-stage: 1-foundation}}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: db, namespace: demo, labels: {xtream.dev/apply-stage: 2-backends}}
spec: {instances: 1, imageName: ghcr.io/cloudnative-pg/postgresql:18.4}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store, namespace: demo, labels: {xtream.dev/apply-stage: 2-backends}}
spec:
  template:
    spec:
      containers: [{name: store, image: "store:1.0", envFrom: [{secretRef: {name: creds}}]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: demo, labels: {xtream.dev/apply-stage: 3-jobs}}
spec:
  template:
    spec:
      containers:
        - name: migrate
          image: registry.local:5000/worker:1.0
          env: [{name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: demo, labels: {xtream.dev/apply-stage: 4-apps}}
spec:
  template:
    spec:
      containers:
        - name: worker
          image: registry.local:5000/worker:1.0
          env: [{name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: demo, labels: {xtream.dev/apply-stage: 4-apps}}
spec: {scaleTargetRef: {name: worker}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata: {name: app, namespace: demo, labels: {xtream.dev/apply-stage: 4-apps}}
spec:
  image: registry.local:5000/app:1.0
  executor: shim
  variables: [{name: db_password, valueFrom: {secretKeyRef: {name: db-app, key: password}}}]
"#;

/// `stage_violations` finds nothing in the staged world, and something
/// containing `expected` once the object `id_` is moved to `stage`.
fn assert_stage_rule_catches(id_: &str, stage: Value, expected: &str) {
    let stages: Vec<String> = STAGES.iter().map(|s| (*s).to_owned()).collect();
    let mut objects = parse_yaml(STAGED_WORLD);
    let clean = stage_violations(&objects, &stages);
    assert!(
        clean.is_empty(),
        "the staged world should be clean: {clean:#?}"
    );
    let o = objects.iter_mut().find(|o| id(o) == id_).unwrap();
    o["metadata"]["labels"][STAGE_LABEL] = stage;
    let found = stage_violations(&objects, &stages);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

#[test]
fn an_object_without_a_known_stage_is_never_applied() {
    assert_stage_rule_catches("Secret/creds", Value::Null, "is never applied");
    assert_stage_rule_catches("Job/migrate", json!("3-job"), "is never applied");
}

#[test]
fn a_spin_app_follows_its_executor() {
    assert_stage_rule_catches(
        "SpinAppExecutor/shim",
        json!("4-apps"),
        "SpinApp/app (stage 4-apps) must be applied after SpinAppExecutor/shim",
    );
}

#[test]
fn database_readers_follow_the_database() {
    assert_stage_rule_catches(
        "Deployment/worker",
        json!("2-backends"),
        "Deployment/worker (stage 2-backends) must be applied after Cluster/db",
    );
}

#[test]
fn one_off_work_follows_the_backends() {
    assert_stage_rule_catches(
        "StatefulSet/store",
        json!("3-jobs"),
        "Job/migrate (stage 3-jobs) must be applied after StatefulSet/store",
    );
}

#[test]
fn applications_follow_the_one_off_work() {
    assert_stage_rule_catches(
        "Job/migrate",
        json!("4-apps"),
        "SpinApp/app (stage 4-apps) must be applied after Job/migrate",
    );
}

#[test]
fn autoscalers_do_not_precede_their_targets() {
    assert_stage_rule_catches(
        "ScaledObject/worker",
        json!("1-foundation"),
        "ScaledObject/worker (stage 1-foundation) must not be applied before Deployment/worker",
    );
}

#[test]
fn placeholder_registries_are_rejected() {
    let with_image = |image: &str| {
        vec![json!({
            "kind": "SpinApp",
            "metadata": {"name": "app"},
            "spec": {"image": image}
        })]
    };
    for image in [
        "ghcr.io/owner/xtream:0.1.0",
        "ghcr.io/OWNER/xtream:0.1.0",
        "registry.example.com/xtream:1",
        "registry.invalid/xtream:0.1.0",
        "example/xtream@sha256:0f3c",
    ] {
        assert!(
            !placeholder_violations(&with_image(image)).is_empty(),
            "{image}"
        );
    }
    for image in [
        "xtream-functions:dev",
        "registry.local:5000/team/xtream:1.2",
        "quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z",
        "ghcr.io/cloudnative-pg/postgresql:18.4",
    ] {
        assert_eq!(
            placeholder_violations(&with_image(image)),
            Vec::<String>::new(),
            "{image}"
        );
    }
}
