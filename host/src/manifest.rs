//! Reading a Spin manifest (`spin.toml`, manifest version 2).
//!
//! Only the parts this host acts on are modelled: application variables, HTTP
//! triggers and, per component, its source, `allowed_outbound_hosts`,
//! `key_value_stores` and variables. Every other key
//! (`[component.x.build]`, `description`, …) is ignored, the way Spin
//! ignores keys that belong to other tools.

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed and validated `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `[application] name`.
    pub name: String,
    /// `[variables]`: application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]` entries that have a public route, in file order.
    pub triggers: Vec<HttpTrigger>,
    /// `[component.<id>]` tables by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// Declaration of one application variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    /// Value used when no `SPIN_VARIABLE_<NAME>` is set.
    pub default: Option<String>,
    /// Loading fails when a required variable has no value.
    pub required: bool,
    /// Secret values are never logged.
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route pattern as written, e.g. `/api/videos/...`.
    pub route: String,
    /// Id of the component that handles the route.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDecl {
    /// The component id (the `<id>` in `[component.<id>]`).
    pub id: String,
    /// Path of the `.wasm`, resolved against the manifest's directory.
    pub source: PathBuf,
    /// Outbound host templates, not yet rendered.
    pub allowed_outbound_hosts: Vec<String>,
    /// Labels of the key-value stores the component may open.
    pub key_value_stores: Vec<String>,
    /// Component variable templates by name, not yet rendered.
    pub variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
struct RawApplication {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: String,
}

/// Spin accepts `route = "/x"` or `route = { private = true }`; a private
/// component is only reachable by service chaining, which this host does not
/// offer, so it simply gets no route.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private {
        #[allow(dead_code, reason = "only its presence matters")]
        private: bool,
    },
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`; component sources are
    /// resolved against its directory.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&text, base).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; relative component sources are resolved against
    /// `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if let Some(version) = &raw.spin_manifest_version {
            ensure!(
                version.as_integer() == Some(2) || version.as_str() == Some("2"),
                "spin_manifest_version must be 2, found {version}"
            );
        }

        let mut variables = BTreeMap::new();
        for (name, var) in raw.variables {
            check_variable_name(&name).context("in [variables]")?;
            match (&var.default, var.required) {
                (Some(_), true) => {
                    bail!("variable `{name}` cannot both be required and have a default")
                }
                (None, false) => {
                    bail!("variable `{name}` needs either a default or `required = true`")
                }
                _ => {}
            }
            let decl = VariableDecl {
                default: var.default,
                required: var.required,
                secret: var.secret,
            };
            variables.insert(name, decl);
        }

        let mut components = BTreeMap::new();
        for (id, comp) in raw.component {
            let source = match &comp.source {
                toml::Value::String(path) => base_dir.join(path),
                other => bail!(
                    "component `{id}`: only a local file path is supported as `source`, found {other}"
                ),
            };
            for name in comp.variables.keys() {
                check_variable_name(name)
                    .with_context(|| format!("in [component.{id}.variables]"))?;
            }
            let decl = ComponentDecl {
                id: id.clone(),
                source,
                allowed_outbound_hosts: comp.allowed_outbound_hosts,
                key_value_stores: comp.key_value_stores,
                variables: comp.variables,
            };
            components.insert(id, decl);
        }

        let mut triggers = Vec::new();
        for trigger in raw.trigger.http {
            ensure!(
                components.contains_key(&trigger.component),
                "[[trigger.http]] refers to unknown component `{}`",
                trigger.component
            );
            if let RawRoute::Path(route) = trigger.route {
                triggers.push(HttpTrigger {
                    route,
                    component: trigger.component,
                });
            }
        }

        Ok(Manifest {
            name: raw
                .application
                .name
                .unwrap_or_else(|| "spin-app".to_owned()),
            variables,
            triggers,
            components,
        })
    }
}

/// Spin variable names are lower-case ASCII letters, digits and underscores,
/// starting with a letter; the `SPIN_VARIABLE_` mapping relies on that.
pub(crate) fn check_variable_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ensure!(
        valid,
        "invalid variable name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "xtream"
version = "0.1.0"

[variables]
s3_bucket = { default = "videos" }
s3_secret = { required = true, secret = true }

[[trigger.http]]
route = "/health"
component = "health"

[[trigger.http]]
route = "/api/videos/..."
component = "videos"

[[trigger.http]]
route = { private = true }
component = "videos"

[component.health]
source = "target/health.wasm"

[component.videos]
source = "/abs/videos.wasm"
allowed_outbound_hosts = ["http://{{ s3_host }}"]
key_value_stores = ["default"]
[component.videos.variables]
bucket = "{{ s3_bucket }}"
[component.videos.build]
command = "cargo build"
"#;

    #[test]
    fn parses_the_parts_we_use() {
        let m = Manifest::parse(SAMPLE, Path::new("/app")).unwrap();
        assert_eq!(m.name, "xtream");
        assert_eq!(
            m.variables["s3_bucket"],
            VariableDecl {
                default: Some("videos".into()),
                required: false,
                secret: false
            }
        );
        assert!(m.variables["s3_secret"].required && m.variables["s3_secret"].secret);
        assert_eq!(
            m.triggers,
            vec![
                HttpTrigger {
                    route: "/health".into(),
                    component: "health".into()
                },
                HttpTrigger {
                    route: "/api/videos/...".into(),
                    component: "videos".into()
                },
            ]
        );
        assert_eq!(
            m.components["health"].source,
            Path::new("/app/target/health.wasm")
        );
        assert_eq!(m.components["videos"].source, Path::new("/abs/videos.wasm"));
        assert_eq!(
            m.components["videos"].allowed_outbound_hosts,
            vec!["http://{{ s3_host }}"]
        );
        assert_eq!(m.components["videos"].key_value_stores, vec!["default"]);
        assert!(m.components["health"].key_value_stores.is_empty());
        assert_eq!(
            m.components["videos"].variables["bucket"],
            "{{ s3_bucket }}"
        );
    }

    #[test]
    fn unknown_trigger_component_is_an_error() {
        let text = r#"
[[trigger.http]]
route = "/x"
component = "nope"
"#;
        let err = Manifest::parse(text, Path::new(".")).unwrap_err();
        assert!(format!("{err:#}").contains("unknown component `nope`"));
    }

    #[test]
    fn variables_need_default_or_required() {
        let err = Manifest::parse("[variables]\nx = {}\n", Path::new(".")).unwrap_err();
        assert!(format!("{err:#}").contains("either a default"));
        let err = Manifest::parse(
            "[variables]\nx = { default = \"a\", required = true }\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot both"));
    }

    #[test]
    fn variable_names_are_checked() {
        assert!(check_variable_name("s3_bucket2").is_ok());
        for bad in ["", "S3", "2x", "a-b", "_a"] {
            assert!(check_variable_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_other_manifest_versions() {
        assert!(Manifest::parse("spin_manifest_version = 1\n", Path::new(".")).is_err());
        assert!(Manifest::parse("spin_manifest_version = 2\n", Path::new(".")).is_ok());
    }
}
