//! Imports run one way: the roles and adapters on top, then `tsp-core`,
//! then `tsp-format` and `tsp-api`. These tests read `cargo metadata` and
//! walk each crate's normal (non-dev) dependencies.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// The resolved dependency graph of the workspace.
fn metadata() -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Every crate `name` depends on at run time (build and dev dependencies
/// left out), by name.
fn closure(meta: &Value, name: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{name} is not in the workspace"));
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[pkg].to_owned()) {
                todo.push(pkg);
            }
        }
    }
    seen
}

fn assert_free_of(meta: &Value, name: &str, banned: &[&str]) {
    let deps = closure(meta, name);
    let found: Vec<&&str> = banned.iter().filter(|b| deps.contains(**b)).collect();
    assert!(found.is_empty(), "{name} depends on {found:?}");
}

/// The Workers runtime, the native runtime and its database, and an HTTP client.
const PLATFORM: [&str; 5] = ["worker", "worker-sys", "tokio", "rusqlite", "reqwest"];

#[test]
fn the_engine_depends_on_no_platform_no_sql_no_schema_and_no_secrets() {
    let meta = metadata();
    let mut banned = PLATFORM.to_vec();
    banned.extend(["utoipa", "secrecy", "tsp-core", "tsp-api"]);
    assert_free_of(&meta, "tsp-format", &banned);
}

#[test]
fn the_wire_types_depend_on_the_engine_at_most() {
    let meta = metadata();
    let mut banned = PLATFORM.to_vec();
    banned.extend(["secrecy", "tsp-core"]);
    assert_free_of(&meta, "tsp-api", &banned);
}

#[test]
fn the_parquet_writer_depends_on_the_engine_alone() {
    let meta = metadata();
    let mut banned = PLATFORM.to_vec();
    banned.extend(["utoipa", "secrecy", "tsp-core", "tsp-api"]);
    assert_free_of(&meta, "tsp-parquet", &banned);
    assert!(closure(&meta, "tsp-parquet").contains("tsp-format"));
}

#[test]
fn the_core_is_platform_free() {
    assert_free_of(&metadata(), "tsp-core", &PLATFORM);
}

#[test]
fn the_cli_and_the_benchmarks_use_the_engine_and_the_wire_types_only() {
    let meta = metadata();
    for name in ["tsp-cli", "tsp-bench"] {
        assert_free_of(&meta, name, &["tsp-core", "secrecy", "worker"]);
        assert!(closure(&meta, name).contains("tsp-format"), "{name}");
    }
}
