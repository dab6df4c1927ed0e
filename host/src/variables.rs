//! Spin variables: resolving application variables from the environment,
//! rendering `{{ name }}` templates, and the `fermyon:spin/variables@2.0.0`
//! interface that components read their variables through.

use crate::manifest::{VariableDecl, check_variable_name};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Prefix of the environment variables that provide application variables,
/// as in Spin's environment-variable provider.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A string with `{{ name }}` placeholders, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses `text`; placeholders are `{{ name }}` with optional spaces.
    pub fn parse(text: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unclosed `{{{{` in template `{text}`");
            };
            let name = after[..end].trim();
            check_variable_name(name).with_context(|| format!("in template `{text}`"))?;
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    /// Substitutes every placeholder from `values`; an unknown name is an
    /// error naming it.
    pub fn render(&self, values: &HashMap<String, String>) -> Result<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(name) => match values.get(name) {
                    Some(value) => out.push_str(value),
                    None => bail!("template refers to undeclared application variable `{name}`"),
                },
            }
        }
        Ok(out)
    }
}

/// Parses and renders `text` in one go.
pub fn render_template(text: &str, values: &HashMap<String, String>) -> Result<String> {
    Template::parse(text)?.render(values)
}

/// Gives each application variable its value: `SPIN_VARIABLE_<NAME>` from
/// `env` if set, else its default; a required variable without a value is an
/// error.
pub fn resolve_application_variables(
    decls: &BTreeMap<String, VariableDecl>,
    env: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, decl) in decls {
        let env_name = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
        match env.get(&env_name).or(decl.default.as_ref()) {
            Some(value) => {
                values.insert(name.clone(), value.clone());
            }
            None => missing.push(format!("`{name}` (set {env_name})")),
        }
    }
    if !missing.is_empty() {
        bail!(
            "required application variable(s) without a value: {}",
            missing.join(", ")
        );
    }
    Ok(values)
}

/// Renders a component's `[component.x.variables]` templates with the
/// application variables.
pub fn render_component_variables(
    templates: &BTreeMap<String, String>,
    app_values: &HashMap<String, String>,
) -> Result<HashMap<String, String>> {
    templates
        .iter()
        .map(|(name, template)| {
            let value = render_template(template, app_values)
                .with_context(|| format!("component variable `{name}`"))?;
            Ok((name.clone(), value))
        })
        .collect()
}

mod bindings {
    // Hand-written subset of Spin's WIT: only the interface we implement.
    wasmtime::component::bindgen!({
        inline: r#"
            package fermyon:spin@2.0.0;

            interface variables {
                get: func(name: string) -> result<string, error>;

                variant error {
                    invalid-name(string),
                    undefined(string),
                    provider(string),
                    other(string),
                }
            }

            world host {
                import variables;
            }
        "#,
    });
}

use bindings::fermyon::spin::variables as wit;

/// The rendered variables of one component, as seen by its instances.
#[derive(Debug, Clone, Default)]
pub struct ComponentVariables(pub Arc<HashMap<String, String>>);

impl wit::Host for ComponentVariables {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        if check_variable_name(&name).is_err() {
            return Err(wit::Error::InvalidName(name));
        }
        self.0
            .get(&name)
            .cloned()
            .ok_or(wit::Error::Undefined(name))
    }
}

/// Adds `fermyon:spin/variables@2.0.0` to `linker`, reading the store's
/// [`ComponentVariables`] through `getter`.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    getter: fn(&mut T) -> &mut ComponentVariables,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, wasmtime::component::HasSelf<ComponentVariables>>(linker, getter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_mixed_templates() {
        let vals = map(&[("host", "127.0.0.1"), ("port", "3900")]);
        assert_eq!(
            render_template("http://{{ host }}:{{port}}/x", &vals).unwrap(),
            "http://127.0.0.1:3900/x"
        );
        assert_eq!(render_template("literal", &vals).unwrap(), "literal");
        assert_eq!(render_template("", &vals).unwrap(), "");
    }

    #[test]
    fn template_errors_name_the_problem() {
        let err = render_template("{{ nope }}", &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("`nope`"));
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("{{ Bad-Name }}").is_err());
    }

    #[test]
    fn environment_overrides_default() {
        let decls = BTreeMap::from([
            (
                "bucket".to_string(),
                VariableDecl {
                    default: Some("videos".into()),
                    required: false,
                    secret: false,
                },
            ),
            (
                "key".to_string(),
                VariableDecl {
                    default: None,
                    required: true,
                    secret: true,
                },
            ),
        ]);
        let env = map(&[("SPIN_VARIABLE_KEY", "k1")]);
        let vals = resolve_application_variables(&decls, &env).unwrap();
        assert_eq!(vals, map(&[("bucket", "videos"), ("key", "k1")]));

        let env = map(&[("SPIN_VARIABLE_KEY", "k1"), ("SPIN_VARIABLE_BUCKET", "b2")]);
        let vals = resolve_application_variables(&decls, &env).unwrap();
        assert_eq!(vals["bucket"], "b2");

        let err = resolve_application_variables(&decls, &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("SPIN_VARIABLE_KEY"), "{err}");
    }

    #[test]
    fn component_variables_render_from_app_values() {
        let templates = BTreeMap::from([
            ("bucket".to_string(), "{{ s3_bucket }}".to_string()),
            ("fixed".to_string(), "x".to_string()),
        ]);
        let vals = render_component_variables(&templates, &map(&[("s3_bucket", "v")])).unwrap();
        assert_eq!(vals, map(&[("bucket", "v"), ("fixed", "x")]));
    }

    #[test]
    fn get_returns_undefined_for_unknown_names() {
        use wit::Host;
        let mut vars = ComponentVariables(Arc::new(map(&[("a", "1")])));
        assert_eq!(vars.get("a".into()).unwrap(), "1");
        assert!(matches!(vars.get("b".into()), Err(wit::Error::Undefined(n)) if n == "b"));
        assert!(matches!(
            vars.get("B!".into()),
            Err(wit::Error::InvalidName(_))
        ));
    }
}
