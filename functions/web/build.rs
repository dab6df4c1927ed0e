//! Embeds the web app into the component: every file under `web/src/`, the
//! API's OpenAPI document (`api/openapi.json`), and the pinned hls.js build
//! from `web/node_modules/` (put there by `npm ci --prefix web`, which
//! `./x setup` and spin.toml's build command run first). Each file gets a strong ETag computed here, once, from its
//! content, so the component never hashes at run time.
//!
//! Writes `$OUT_DIR/assets.rs`: `pub static ASSETS: &[Asset]`, sorted by path.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files taken from npm packages: (URL path, file under `web/`). hls.js's
/// "light" ES module build: everything we play (HLS with H.264/AAC, level
/// switching) without subtitles, alternate audio or DRM, at ~60% of the
/// full build's size.
const VENDORED: &[(&str, &str)] = &[(
    "/vendor/hls.light.min.mjs",
    "node_modules/hls.js/dist/hls.light.min.mjs",
)];

/// Files from elsewhere in the repository, served by this component at
/// routes of their own in spin.toml: the API's OpenAPI document.
const REPOSITORY_FILES: &[(&str, &str)] = &[("/api/openapi.json", "../api/openapi.json")];

fn main() {
    // Read when the script runs, not baked in when it compiles: a build
    // script compiled in a checkout elsewhere (CI's clone sharing the
    // target cache) is reused here as fresh.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let web = Path::new(&manifest_dir).join("../../web");
    let web = web
        .canonicalize()
        .unwrap_or_else(|e| panic!("the web app's sources are missing ({}): {e}", web.display()));
    let source = web.join("src");
    // A directory is rescanned as a whole, so new and removed files count.
    println!("cargo::rerun-if-changed={}", source.display());
    println!(
        "cargo::rerun-if-changed={}",
        web.join("package-lock.json").display()
    );

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    collect(&source, &source, &mut files);
    for (url, file) in REPOSITORY_FILES {
        let file = web.join(file);
        println!("cargo::rerun-if-changed={}", file.display());
        files.push(((*url).to_owned(), file));
    }
    for (url, file) in VENDORED {
        let file = web.join(file);
        if !file.is_file() {
            panic!(
                "{} is missing: run `npm ci --prefix web` (or `./x setup`) to install the \
                 web app's pinned dependencies",
                file.display()
            );
        }
        println!("cargo::rerun-if-changed={}", file.display());
        files.push(((*url).to_owned(), file));
    }
    files.sort();

    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (url, file) in &files {
        let content =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        // 128 bits of SHA-256: unique per content, short on the wire.
        let digest = Sha256::digest(&content);
        let etag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        writeln!(
            table,
            "    Asset {{ path: {url:?}, etag: {etag:?}, body: include_bytes!({file:?}) }},",
            etag = format!("\"{etag}\""),
            file = file.display().to_string(),
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("assets.rs"), table).expect("OUT_DIR is writable");
}

/// Every file below `dir`, as (`/relative/url/path`, file). Dot files
/// (editor swap files, `.DS_Store`) are not part of the app.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("below the root");
            let url: Vec<&str> = relative
                .components()
                .map(|c| c.as_os_str().to_str().expect("asset file names are UTF-8"))
                .collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
}
