//! `tsp` against the running local stack (the wasm Worker in workerd, the
//! simulator as its upstream): CSV, Parquet and raw results, aggregates,
//! errors. `scripts/check-parquet.sh` reads the Parquet output with DuckDB,
//! pyarrow, pandas and polars. Start the stack and run these with:
//!
//! ```sh
//! source scripts/stack.sh; tsp_build; tsp_up /tmp/cli-state
//! cargo test -p tsp-cli --test e2e -- --ignored
//! tsp_down
//! ```
//!
//! They read `TSP_URL` and `TSP_TOKEN` from the environment (the binary
//! inherits them).

use std::path::PathBuf;
use std::process::{Command, Output};

use tsp_format::codec::Decoded;
use tsp_format::export::csv_text;
use tsp_format::time::{format_rfc3339, parse_rfc3339};

mod support;
use support::parquet_rows;

const SITE: &str = "cli-e2e";
const START: &str = "2025-09-28T00:00:00Z";
const END: &str = "2025-10-03T00:00:00Z";
const FIVE_MIN: i64 = 300_000;

fn require_stack() {
    for k in ["TSP_URL", "TSP_TOKEN"] {
        assert!(
            std::env::var(k).is_ok(),
            "{k} is not set: start the stack (scripts/stack.sh tsp_up)"
        );
    }
}

fn tsp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsp"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tsp")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two points of the site's catalogue that report (the simulator, like ACE,
/// lists points that never report), in the order the job stores them.
fn points() -> Vec<String> {
    let mut p = ace_sim::reporting_points(SITE, &ace_sim::SimConfig::default());
    p.truncate(2);
    p.sort();
    p
}

/// The simulator's samples of the job in the result object's order (the
/// order `fetch` writes): window by window (whole UTC days within a month,
/// sized as a submit with the default settings sizes them), and within a
/// window point by point.
fn expected_samples() -> Vec<(String, i64, String)> {
    let (start, end) = (
        parse_rfc3339(START).expect("start"),
        parse_rfc3339(END).expect("end"),
    );
    let points = points();
    let days = tsp_format::chunk::window_days(
        points.len(),
        tsp_format::chunk::DEFAULT_SAMPLE_SECS,
        tsp_format::chunk::DEFAULT_WINDOW_MAX_SAMPLES,
    );
    let mut want = Vec::new();
    for w in tsp_format::chunk::plan(start, end, days) {
        for p in &points {
            for (t, v) in ace_sim::samples(SITE, p, w.start.ms(), w.end.ms(), FIVE_MIN) {
                want.push((p.clone(), t, v));
            }
        }
    }
    want
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsp-cli-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Submits the test job and waits; returns its id.
fn submit_and_wait() -> String {
    let points = points();
    let mut args = vec!["submit", "--site", SITE];
    for p in &points {
        args.extend(["--point", p.as_str()]);
    }
    args.extend([
        "--start",
        START,
        "--end",
        END,
        "--wait",
        "--wait-timeout",
        "300",
    ]);
    let o = tsp(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let id = out.lines().next().unwrap_or_default().trim().to_owned();
    assert_eq!(id.len(), 32, "{out}");
    assert!(out.contains("status    completed"), "{out}");
    id
}

#[test]
#[ignore = "needs the local stack: scripts/test.sh"]
fn e2e_submit_wait_fetch_csv_matches_the_simulator_and_aggregates_print() {
    require_stack();
    let id = submit_and_wait();

    // fetch: streamed, decoded client-side, hash-checked.
    let file = temp_path("result.csv");
    let file_arg = file.to_string_lossy().into_owned();
    let o = tsp(&["fetch", &id, "--format", "csv", "-o", &file_arg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(&file).expect("the CSV file");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("point,time,value"));
    let want: Vec<String> = expected_samples()
        .into_iter()
        .map(|(p, t, v)| {
            let value = match Decoded::of_upstream(&v) {
                Decoded::Number(n) => n.to_string(),
                Decoded::Text(t) => csv_text(&t),
            };
            format!("{},{},{value}", csv_text(&p), format_rfc3339(t))
        })
        .collect();
    let got: Vec<&str> = lines.collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
    let _ = std::fs::remove_file(&file);

    // aggregates: every point, CSV (five daily rows) and a table.
    for p in points() {
        let base = [
            "aggregates",
            "--site",
            SITE,
            "--point",
            p.as_str(),
            "--from",
            START,
            "--to",
            END,
        ];
        let mut csv_args = base.to_vec();
        csv_args.push("--csv");
        let o = tsp(&csv_args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert_eq!(out.lines().count(), 1 + 5, "{out}");
        assert!(
            out.lines().nth(1).unwrap_or_default().starts_with(START),
            "{out}"
        );

        // Hourly, in pages of 50: 120 buckets over three pages.
        let mut hourly = base.to_vec();
        hourly.extend(["--resolution", "1h", "--csv", "--page-size", "50"]);
        let o = tsp(&hourly);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(text(&o.stdout).lines().count(), 1 + 5 * 24);

        let o = tsp(&base);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains("2025-10-02T00:00:00Z"));
    }
}

#[test]
#[ignore = "needs the local stack: scripts/test.sh"]
fn e2e_fetch_parquet_holds_the_simulators_samples_exactly() {
    require_stack();
    let id = submit_and_wait();
    let file = temp_path("result.parquet");
    let file_arg = file.to_string_lossy().into_owned();
    let o = tsp(&["fetch", &id, "--format", "parquet", "-o", &file_arg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let got = parquet_rows(std::fs::read(&file).expect("the Parquet file"));
    let want: Vec<(String, i64, Decoded)> = expected_samples()
        .into_iter()
        .map(|(p, t, v)| (p, t, Decoded::of_upstream(&v)))
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!((&g.0, g.1), (&w.0, w.1), "row {i}");
        match (&g.2, &w.2) {
            (Decoded::Number(a), Decoded::Number(b)) => {
                assert_eq!(a.to_bits(), b.to_bits(), "row {i}")
            }
            (a, b) => assert_eq!(a, b, "row {i}"),
        }
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
#[ignore = "needs the local stack: scripts/test.sh"]
fn e2e_status_raw_fetch_and_cancel_of_a_completed_job() {
    require_stack();
    let id = submit_and_wait();

    let o = tsp(&["status", &id, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(job["status"], "completed");
    // Both points reported, and the job says how it fetched them.
    assert_eq!(job["points_without_data"], serde_json::json!([]), "{job}");
    let up = &job["upstream"];
    assert_eq!(up["plan_requested"], "auto", "{job}");
    assert!(
        matches!(up["plan"].as_str(), Some("site" | "point")),
        "{job}"
    );
    assert!(up["requests"].as_u64().is_some_and(|n| n > 0), "{job}");
    assert!(up["bytes"].as_u64().is_some_and(|n| n > 0), "{job}");

    // Raw bytes: exactly the object the job describes.
    let file = temp_path(&format!("{id}.msgpack.gz"));
    let file_arg = file.to_string_lossy().into_owned();
    let o = tsp(&["fetch", &id, "--format", "raw", "-o", &file_arg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let bytes = std::fs::read(&file).expect("raw file");
    assert_eq!(job["result"]["bytes"], bytes.len());
    let (header, series) = tsp_format::codec::decode_object(&bytes).expect("decodes");
    assert_eq!(header.points, points());
    let (start, end) = (
        parse_rfc3339(START).expect("start"),
        parse_rfc3339(END).expect("end"),
    );
    let want: usize = points()
        .iter()
        .map(|p| ace_sim::samples(SITE, p, start.ms(), end.ms(), FIVE_MIN).len())
        .sum();
    assert_eq!(series.iter().map(Vec::len).sum::<usize>(), want);
    let _ = std::fs::remove_file(&file);

    // A completed job cannot be cancelled: a problem, exit 1.
    let o = tsp(&["cancel", &id]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.starts_with("error: Conflict"), "{err}");

    // An unknown id is a 404 problem.
    let o = tsp(&["status", "00000000000000000000000000000000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("error: Not found"));

    let o = tsp(&["dead-letters"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}
