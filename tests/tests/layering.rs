//! The crate graph stays layered (ARCHITECTURE §3): components never depend on each other, the
//! management API is a leaf, and no module is mounted from another folder. Read from
//! `cargo metadata`, so a dependency added to a manifest fails here before review.
//! Dev-dependencies are not part of the graph that ships and are allowed anywhere.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crates that run side by side, linked only by topics and the database.
const COMPONENTS: [&str; 4] = [
    "jivapay-ingest",
    "jivapay-processors",
    "jivapay-sinks",
    "jivapay-admin",
];

/// The only crates that may depend on the management API: the binary, the benchmark binary
/// and the test harness.
const MAY_USE_ADMIN: [&str; 3] = ["jivapay", "jivapay-bench", "jivapay-tests"];

fn workspace_root() -> PathBuf {
    // At run time: a test binary reused from a shared target folder may have been built in
    // another checkout.
    jivapay_tests::package_file("")
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// (package, dependency) pairs of the workspace, without dev-dependencies.
fn dependencies() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut pairs = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("package name");
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            if dependency["kind"].as_str() == Some("dev") {
                continue;
            }
            let on = dependency["name"].as_str().expect("dependency name");
            pairs.push((name.to_owned(), on.to_owned()));
        }
    }
    assert!(
        pairs.iter().any(|(p, _)| p == "jivapay-ingest"),
        "the workspace's packages were read"
    );
    pairs
}

/// What in `pairs` breaks the layering, one line each.
fn violations(pairs: &[(String, String)]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (package, on) in pairs {
        if on == "jivapay-admin" && !MAY_USE_ADMIN.contains(&package.as_str()) {
            found.insert(format!(
                "{package} depends on jivapay-admin (the management API is a leaf)"
            ));
        }
        if package == "jivapay-ingest" && matches!(on.as_str(), "jivapay-sinks" | "jivapay-admin") {
            found.insert(format!("jivapay-ingest depends on {on}"));
        }
        if COMPONENTS.contains(&package.as_str()) && COMPONENTS.contains(&on.as_str()) {
            found.insert(format!(
                "component {package} depends on component {on} (share through the core)"
            ));
        }
    }
    found
}

#[test]
fn components_depend_downward_only() {
    let found = violations(&dependencies());
    assert!(
        found.is_empty(),
        "the crate graph is not layered:\n{found:#?}"
    );
}

#[test]
fn the_rules_catch_what_they_name() {
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // ingest on sinks breaks two rules: the gateway's own and the components' one.
    assert_eq!(
        violations(&[
            pair("jivapay-ingest", "jivapay-sinks"),
            pair("jivapay-platform", "jivapay-admin"),
            pair("jivapay-processors", "jivapay-sinks"),
        ])
        .len(),
        4
    );
    assert!(violations(&[
        pair("jivapay", "jivapay-admin"),
        pair("jivapay-tests", "jivapay-admin"),
        pair("jivapay-ingest", "jivapay-core"),
    ])
    .is_empty());
}

/// The attribute that mounts a module from a file of the caller's choosing, written in two
/// pieces so that this file does not match itself.
const PATH_ATTRIBUTE: &str = concat!("#[", "path");

/// Whether `line` mounts a module through a path that goes up a folder.
fn mounts_from_above(line: &str) -> bool {
    let Some(at) = line.find(PATH_ATTRIBUTE) else {
        return false;
    };
    let rest = &line[at + PATH_ATTRIBUTE.len()..];
    let Some(value) = rest.split('"').nth(1) else {
        return false;
    };
    value.split(['/', '\\']).any(|part| part == "..")
}

/// Every `.rs` file under `folder`, skipping build output and hidden folders.
fn rust_files(folder: &Path, into: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(folder).expect("the folder is readable");
    for entry in entries {
        let path = entry.expect("a folder entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, into);
            }
        } else if name.ends_with(".rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_module_is_mounted_from_another_folder() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 50, "the workspace's sources were read");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file is text");
        for (n, line) in text.lines().enumerate() {
            if mounts_from_above(line) {
                let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "modules mounted across folders:\n{found:#?}"
    );
}

#[test]
fn the_mount_rule_reads_the_attribute() {
    let mount = |value: &str| format!("{PATH_ATTRIBUTE} = \"{value}\"]");
    assert!(mounts_from_above(&mount("../api_keys.rs")));
    assert!(mounts_from_above(&mount("a/../../b.rs")));
    assert!(!mounts_from_above(&mount("generated/b.rs")));
    assert!(!mounts_from_above("let path = \"../x\";"));
}
