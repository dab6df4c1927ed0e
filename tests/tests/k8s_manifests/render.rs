//! Rendering the overlays with kustomize, parsing YAML, and small accessors
//! for the rendered objects.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const OVERLAYS: &[&str] = &["minikube", "production"];
pub(crate) const KUBERNETES_SCHEMAS: &str = "kubernetes-v1.32.0.json";

// ---------------------------------------------------------------------------
// Rendering

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// The kustomize to render with: the kubectl `./x setup` pinned into the tool
/// cache, else a `kustomize` on PATH, else a `kubectl` on PATH.
pub(crate) fn kustomize(dir: &Path) -> Command {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")));
    let pinned = cache.map(|c| c.join("xtream/tools/bin/kubectl"));
    let on_path = |tool: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
    };
    if let Some(kubectl) = pinned.filter(|p| p.is_file()) {
        let mut cmd = Command::new(kubectl);
        cmd.arg("kustomize").arg(dir);
        cmd
    } else if let Some(kustomize) = on_path("kustomize") {
        let mut cmd = Command::new(kustomize);
        cmd.arg("build").arg(dir);
        cmd
    } else if let Some(kubectl) = on_path("kubectl") {
        let mut cmd = Command::new(kubectl);
        cmd.arg("kustomize").arg(dir);
        cmd
    } else {
        panic!("neither kubectl nor kustomize found: run ./x setup (it installs a pinned kubectl)")
    }
}

pub(crate) fn render(overlay: &str) -> Vec<Value> {
    let dir = repo_root().join("k8s/overlays").join(overlay);
    let output = kustomize(&dir).output().expect("run kustomize");
    assert!(
        output.status.success(),
        "kustomize failed for {overlay}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_yaml(&String::from_utf8(output.stdout).expect("UTF-8 manifests"))
}

/// Every document of a multi-document YAML stream, as JSON values.
pub(crate) fn parse_yaml(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

// ---------------------------------------------------------------------------
// Small accessors

pub(crate) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn kind(o: &Value) -> &str {
    s(o, "/kind")
}

pub(crate) fn name(o: &Value) -> &str {
    s(o, "/metadata/name")
}

pub(crate) fn namespace(o: &Value) -> &str {
    s(o, "/metadata/namespace")
}

pub(crate) fn id(o: &Value) -> String {
    format!("{}/{}", kind(o), name(o))
}

pub(crate) fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) type Labels = BTreeMap<String, String>;

pub(crate) fn labels_at(v: &Value, pointer: &str) -> Labels {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) const POD_TEMPLATE_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

pub(crate) fn pod_spec(o: &Value) -> Option<&Value> {
    POD_TEMPLATE_KINDS
        .contains(&kind(o))
        .then(|| o.pointer("/spec/template/spec"))
        .flatten()
}

/// Containers and init containers of a pod spec, with whether they are init.
pub(crate) fn containers(spec: &Value) -> impl Iterator<Item = (&Value, bool)> {
    items(spec, "/initContainers")
        .iter()
        .map(|c| (c, true))
        .chain(items(spec, "/containers").iter().map(|c| (c, false)))
}
