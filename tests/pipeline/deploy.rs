//! Three Workers, least privilege: what each Worker's wrangler config
//! grants (natively), and what each Worker's environment holds in the local
//! runtime (e2e, from the binding names `scripts/dev.mjs` reports).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// The three Workers' configs: the producer's at the top, the others in
/// their role's directory.
pub(crate) const CONFIGS: [&str; 3] = [
    "wrangler.toml",
    "consumer/wrangler.toml",
    "dlq/wrangler.toml",
];

/// Secrets no Worker but the one named may hold.
const SECRETS: [(&str, &str); 5] = [
    ("API_TOKENS", "tsp-producer"),
    ("ADMIN_TOKENS", "tsp-producer"),
    ("ACE_API_TOKEN", "tsp-consumer"),
    ("ALERT_WEBHOOK_URL", "tsp-dlq"),
    ("CALLBACK_SIGNING_KEY", "tsp-dlq"),
];

fn config(path: &str) -> toml::Table {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(path)).unwrap();
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The secrets a config says its Worker holds (its `#   NAME` comment lines).
fn listed_secrets(path: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(path)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

fn names(t: &toml::Table, section: &str, key: &str) -> BTreeSet<String> {
    let (outer, inner) = section.split_once('.').unwrap_or((section, ""));
    let list = t.get(outer).and_then(|v| {
        if inner.is_empty() {
            Some(v)
        } else {
            v.get(inner)
        }
    });
    list.and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get(key)?.as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_workers_config_grants_only_what_its_role_uses() {
    let [p, c, d] = CONFIGS.map(config);
    for (t, role) in [(&p, "producer"), (&c, "consumer"), (&d, "dlq")] {
        let main = t["main"].as_str().unwrap();
        assert!(
            main.ends_with(&format!("build/{role}/index.js")),
            "{role}: {main}"
        );
        assert!(
            t["limits"]["cpu_ms"].as_integer().is_some(),
            "{role} has [limits]"
        );
        assert_eq!(names(t, "d1_databases", "binding"), set(&["DB"]), "{role}");
        assert_eq!(
            names(t, "r2_buckets", "binding"),
            set(&["RESULTS"]),
            "{role}"
        );
    }
    assert_eq!(names(&p, "queues.producers", "binding"), set(&["JOBS"]));
    assert!(
        names(&p, "queues.consumers", "queue").is_empty(),
        "the producer consumes nothing"
    );
    assert!(p.get("triggers").is_none(), "the producer runs no cron");

    assert_eq!(
        names(&c, "queues.producers", "binding"),
        set(&["JOBS", "NOTIFY"])
    );
    assert_eq!(names(&c, "queues.consumers", "queue"), set(&["tsp-jobs"]));
    assert_eq!(
        names(&c, "queues.consumers", "dead_letter_queue"),
        set(&["tsp-jobs-dlq"])
    );
    assert!(c.get("triggers").is_none(), "the consumer runs no cron");

    assert_eq!(
        names(&d, "queues.producers", "binding"),
        set(&["JOBS"]),
        "the reaper resends"
    );
    assert_eq!(
        names(&d, "queues.consumers", "queue"),
        set(&["tsp-jobs-dlq", "tsp-notify"])
    );
    assert!(
        d["triggers"]["crons"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "the reaper"
    );

    let workers = [
        ("tsp-producer", CONFIGS[0]),
        ("tsp-consumer", CONFIGS[1]),
        ("tsp-dlq", CONFIGS[2]),
    ];
    for (name, path) in workers {
        assert_eq!(config(path)["name"].as_str(), Some(name));
        let want: BTreeSet<String> = SECRETS
            .iter()
            .filter(|(_, w)| *w == name)
            .map(|(s, _)| s.to_string())
            .collect();
        assert_eq!(listed_secrets(path), want, "{name}'s secrets");
    }
    // Every secret the core reads is some Worker's.
    for s in tsp_core::config::SETTINGS.iter().filter(|s| s.secret) {
        assert!(
            SECRETS.iter().any(|(k, _)| *k == s.key),
            "{} has a Worker",
            s.key
        );
    }
}

#[test]
fn a_var_two_workers_share_has_one_value() {
    let mut seen: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for path in CONFIGS {
        let t = config(path);
        for (k, v) in t["vars"].as_table().unwrap() {
            let v = v.as_str().unwrap().to_owned();
            if let Some((first, at)) = seen.get(k) {
                assert_eq!(first, &v, "{k}: {at} says {first}, {path} says {v}");
            } else {
                seen.insert(k.clone(), (v, path));
            }
        }
    }
    for k in [
        "MAX_UPSTREAM_WAIT_MS",
        "STORE_MAX_BYTES",
        "STORAGE_TIMEOUT_MS",
        "MAX_RETRIES",
    ] {
        assert!(seen.contains_key(k), "{k} is set");
    }
}

/// The environment each Worker got in the local runtime, by binding name.
fn runtime_bindings() -> Value {
    let state = std::env::var("TSP_STATE").expect("TSP_STATE: run scripts/test.sh");
    let path = Path::new(&state).join("bindings.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "needs the local stack (scripts/test.sh)"]
fn e2e_each_worker_runs_with_only_its_own_secrets_and_bindings() {
    let report = runtime_bindings();
    let has = |worker: &str, name: &str| {
        report[worker]["bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("{worker} runs"))
            .iter()
            .any(|b| b == name)
    };
    for (secret, owner) in SECRETS {
        for worker in ["tsp-producer", "tsp-consumer", "tsp-dlq"] {
            assert_eq!(
                has(worker, secret),
                worker == owner,
                "{worker} holding {secret}"
            );
        }
    }
    // The public entry point holds neither the upstream token nor the
    // webhook, and consumes no queue.
    assert!(!has("tsp-producer", "ACE_API_TOKEN"));
    assert!(!has("tsp-producer", "NOTIFY"));
    for b in ["DB", "RESULTS", "JOBS"] {
        assert!(has("tsp-producer", b), "producer has {b}");
    }
    let consumes = |w: &str| report[w]["consumes"].as_array().unwrap().len();
    assert_eq!(consumes("tsp-producer"), 0);
    assert_eq!(
        report["tsp-consumer"]["consumes"],
        serde_json::json!(["tsp-jobs"])
    );
    assert_eq!(
        report["tsp-dlq"]["consumes"],
        serde_json::json!(["tsp-jobs-dlq", "tsp-notify"])
    );
    assert!(
        has("tsp-consumer", "NOTIFY"),
        "the consumer nudges the dead-letter Worker"
    );
    assert_eq!(report["tsp-producer"]["crons"], serde_json::json!([]));
    assert_eq!(report["tsp-dlq"]["crons"], serde_json::json!(["* * * * *"]));
}
