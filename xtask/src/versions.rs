//! The pinned tool versions: `versions.env`, the one place every external
//! tool's version is written (`NAME=value`, a comment may follow).

use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::Path;

/// The pins of `versions.env`, by name.
#[derive(Debug, Clone)]
pub struct Versions {
    pins: BTreeMap<String, String>,
}

impl Versions {
    /// The workspace's `versions.env`.
    pub fn of_workspace() -> anyhow::Result<Self> {
        Self::read(&xtream_tests::workspace_root().join("versions.env"))
    }

    /// The pins in the file at `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let pins = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| {
                let (name, rest) = line.split_once('=')?;
                let value = rest.split_whitespace().next()?;
                Some((name.trim().to_owned(), value.to_owned()))
            })
            .collect();
        Self { pins }
    }

    /// The value pinned as `name`.
    pub fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.pins
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("versions.env pins no {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pin_with_a_comment_after_it() {
        let versions = Versions::parse("# pins\nGARAGE_VERSION=2.5.0 # S3\nK6_VERSION=1.0\n");
        assert_eq!(versions.get("GARAGE_VERSION").unwrap(), "2.5.0");
        assert_eq!(versions.get("K6_VERSION").unwrap(), "1.0");
        assert!(versions.get("TANSU_VERSION").is_err());
    }

    #[test]
    fn the_workspace_pins_every_tool_setup_installs() {
        let versions = Versions::of_workspace().unwrap();
        for name in [
            "GARAGE_VERSION",
            "WASM_TARGET",
            "KUBECTL_VERSION",
            "TANSU_PACKAGE",
            "TANSU_WHEEL_SHA256",
            "TANSU_VERSION",
            "SCHEMATHESIS_VERSION",
            "K6_VERSION",
        ] {
            assert!(versions.get(name).is_ok(), "{name}");
        }
    }
}
