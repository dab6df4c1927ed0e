//! `test`: every check CI runs: the format, clippy on native code and on
//! the wasm-only packages for their target, then the unit and integration
//! tests (extra words go to the last `cargo test`).

use crate::{cargo, run, say};
use anyhow::Context as _;
use std::process::Command;
use xtream_tests::workspace_root;

/// Runs the checks, stopping at the first that fails.
pub fn run_checks(wasm_target: &str, test_args: &[String]) -> anyhow::Result<()> {
    let wasm_only = wasm_only_packages()?;
    let cargo_step = |args: &[&str]| {
        let mut command = Command::new(cargo());
        command.current_dir(workspace_root()).args(args);
        command
    };
    say("cargo fmt --check");
    run(&mut cargo_step(&["fmt", "--all", "--check"]))?;
    let excluded: Vec<&str> = wasm_only
        .iter()
        .flat_map(|package| ["--exclude", package.as_str()])
        .collect();
    let selected: Vec<&str> = wasm_only
        .iter()
        .flat_map(|package| ["-p", package.as_str()])
        .collect();
    say(&format!("clippy (native and {wasm_target})"));
    run(cargo_step(&["clippy", "--workspace", "--all-targets"])
        .args(&excluded)
        .args(["--", "-D", "warnings"]))?;
    run(cargo_step(&["clippy", "--target", wasm_target])
        .args(&selected)
        .args(["--", "-D", "warnings"]))?;
    // The web component's serving rules are plain Rust behind a wasm-only
    // handler: lint and unit-test them natively as well.
    run(&mut cargo_step(&[
        "clippy",
        "-p",
        "xtream-web",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    say("unit and integration tests");
    run(&mut cargo_step(&["test", "-p", "xtream-web"]))?;
    run(cargo_step(&["test", "--workspace"])
        .args(&excluded)
        .args(test_args))
}

/// The packages that only build for wasm: the components (`functions/*`)
/// and their support crate.
fn wasm_only_packages() -> anyhow::Result<Vec<String>> {
    let functions = workspace_root().join("functions");
    let mut packages = Vec::new();
    for entry in std::fs::read_dir(&functions)? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let parsed: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", manifest.display()))?;
        let name = parsed
            .get("package")
            .and_then(|package| package.get("name"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{} names no package", manifest.display()))?;
        packages.push(name.to_owned());
    }
    packages.sort();
    packages.push("xtream-spin".into());
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_only_packages_are_the_components_and_their_support_crate() {
        let packages = wasm_only_packages().unwrap();
        assert!(packages.contains(&"xtream-videos".to_owned()));
        assert!(packages.contains(&"xtream-web".to_owned()));
        assert_eq!(packages.last().unwrap(), "xtream-spin");
    }
}
