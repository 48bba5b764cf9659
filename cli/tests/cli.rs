//! The `tsp` binary against a fake API (wiremock): error rendering, exit
//! codes, polling, streaming decode with the SHA-256 check, pagination.

use std::path::PathBuf;
use std::process::{Command, Output};
use tsp_format::time::EpochMs;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tsp_api::RESULT_GZIP_MEDIA_TYPE;
use tsp_format::codec::{
    encode_block, encode_header, Decoded, Header, FORMAT_NAME, FORMAT_VERSION,
};
use tsp_format::export::csv_text;
use tsp_format::sample::Samples;
use tsp_format::time::format_rfc3339;
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod support;
use support::parquet_rows;

const TOKEN: &str = "test-token";
const ID: &str = "0123456789abcdef0123456789abcdef";

/// Runs `tsp` with the mock's URL and the token in the environment.
async fn tsp(server: &str, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let server = server.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tsp"))
            .args(&args)
            .env("TSP_URL", server)
            .env("TSP_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .output()
            .expect("run tsp")
    })
    .await
    .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// No panic message, backtrace or `{:?}` dump ever reaches the user.
fn assert_clean_error(o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
    assert!(!err.contains("Problem {"), "{err}");
    assert!(!err.contains("Error {"), "{err}");
}

fn job(status: &str) -> Value {
    let done = status == "completed";
    json!({
        "job_id": ID,
        "status": status,
        "site": "s",
        "points": ["a", "b"],
        "start": "2025-09-28T00:00:00Z",
        "end": "2025-10-03T00:00:00Z",
        "attempts": 1,
        "progress": {"chunks_done": if done { 2 } else { 1 }, "chunks_total": 2, "samples": 2880, "percent": if done { 100.0 } else { 50.0 }},
        "last_error": if status == "failed_permanent" { Value::from("upstream 503") } else { Value::Null },
        "created_at": "2025-10-03T10:00:00Z",
        "updated_at": "2025-10-03T10:00:05Z",
        "started_at": "2025-10-03T10:00:01Z",
        "finished_at": if done { Value::from("2025-10-03T10:00:05Z") } else { Value::Null },
        "status_url": format!("/v1/jobs/{ID}"),
        "result": if done { json!({"url": format!("/v1/jobs/{ID}/result"), "bytes": 100, "sha256": "00"}) } else { Value::Null },
    })
}

fn problem(status: u16, title: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({"type": "about:blank", "title": title, "status": status, "detail": detail})
            .to_string(),
        "application/problem+json",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validation_problem_prints_title_detail_and_fields_and_exits_1() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/jobs"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(
            json!({"site": "s", "points": ["", "p"], "days": 7}),
        ))
        .respond_with(
            ResponseTemplate::new(422).set_body_raw(
                json!({
                    "type": "about:blank", "title": "Invalid request", "status": 422,
                    "detail": "1 invalid field", "instance": "/v1/jobs",
                    "errors": [{"field": "points[0]", "message": "must not be empty"}],
                })
                .to_string(),
                "application/problem+json",
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let o = tsp(
        &server.uri(),
        &[
            "submit", "--site", "s", "--point", "", "--point", "p", "--days", "7",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: Invalid request: 1 invalid field\n  points[0]: must not be empty\n"
    );
    assert_eq!(stdout(&o), "");
    assert_clean_error(&o);
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_conflict_and_non_json_errors_exit_1_with_one_line() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(problem(404, "Not found", "not found"))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(problem(
            409,
            "Conflict",
            "job is completed; it cannot be cancelled",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/jobs/{ID}/retry")))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    for (args, want) in [
        (vec!["status", ID], "error: Not found\n"),
        (
            vec!["cancel", ID],
            "error: Conflict: job is completed; it cannot be cancelled\n",
        ),
        (
            vec!["retry", ID],
            "error: HTTP 502 Bad Gateway: <html>bad gateway</html>\n",
        ),
    ] {
        let o = tsp(&server.uri(), &args).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&o), want, "{args:?}");
        assert_clean_error(&o);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn network_errors_and_usage_errors_exit_1_with_one_line() {
    // Nothing listens on port 9 of localhost in a test sandbox.
    let o = tsp("http://127.0.0.1:9", &["status", ID]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: cannot connect to http://127.0.0.1:9"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_clean_error(&o);

    let o = tsp(
        "http://127.0.0.1:9",
        &["submit", "--site", "s", "--days", "3"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "missing --point is a usage error");
    let o = tsp(
        "http://127.0.0.1:9",
        &["submit", "--site", "s", "--point", "p"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "a missing range is a usage error");
    assert!(stderr(&o).contains("no range"), "{}", stderr(&o));
    let o = tsp("http://127.0.0.1:9", &["fetch", ID, "--format", "xml"]).await;
    assert_eq!(o.status.code(), Some(1));
    let o = tsp("not a url", &["status", ID]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: invalid --url"),
        "{}",
        stderr(&o)
    );
    let o = tsp("http://127.0.0.1:9", &["--help"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Exit codes:"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_exit_codes_follow_the_terminal_state() {
    for (status, code) in [("completed", 0), ("failed_permanent", 3), ("cancelled", 4)] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/jobs/{ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(job(status)))
            .mount(&server)
            .await;
        for args in [vec!["status", ID, "--wait"], vec!["status", ID]] {
            let o = tsp(&server.uri(), &args).await;
            assert_eq!(
                o.status.code(),
                Some(code),
                "{status} {args:?}: {}",
                stderr(&o)
            );
            let out = stdout(&o);
            assert!(out.contains(&format!("status    {status}")), "{out}");
            assert!(out.contains(ID), "{out}");
        }
    }
    // A running job without --wait is just shown.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job("processing")))
        .mount(&server)
        .await;
    let o = tsp(&server.uri(), &["status", ID, "--json"]).await;
    assert_eq!(o.status.code(), Some(0));
    let shown: Value = serde_json::from_str(&stdout(&o)).expect("--json prints JSON");
    assert_eq!(shown, job("processing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_polls_through_running_and_transient_failures_until_terminal() {
    let server = MockServer::start().await;
    // Highest priority first: one processing answer, one 503, then completed.
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(job("processing"))
                .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(problem(
            503,
            "Service unavailable",
            "storage is unavailable; retry later",
        ))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job("completed")))
        .with_priority(3)
        .mount(&server)
        .await;
    let o = tsp(&server.uri(), &["status", ID, "--wait"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("processing"), "{err}");
    assert!(err.contains("storage is unavailable"), "{err}");
    assert!(stdout(&o).contains("status    completed"));
    let polls = server.received_requests().await.unwrap_or_default().len();
    assert_eq!(polls, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_with_wait_prints_the_id_then_follows_the_job() {
    let server = MockServer::start().await;
    let mut created = job("queued");
    created["note"] = Value::Null;
    Mock::given(method("POST"))
        .and(path("/v1/jobs"))
        .and(body_json(json!({
            "site": "s", "points": ["a", "b"],
            "start": "2025-09-28T00:00:00Z", "end": "2025-10-03T00:00:00Z", "force": true,
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(created))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job("cancelled")))
        .mount(&server)
        .await;
    let o = tsp(
        &server.uri(),
        &[
            "submit",
            "--site",
            "s",
            "--point",
            "a",
            "--point",
            "b",
            "--start",
            "2025-09-28T00:00:00Z",
            "--end",
            "2025-10-03T00:00:00Z",
            "--force",
            "--wait",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some(ID), "{out}");
    assert!(stderr(&o).contains(&format!("created job {ID} (queued)")));

    // A request file with flags laid over it.
    let file = temp_path("job.json");
    std::fs::write(
        &file,
        json!({"site": "s", "points": ["a", "b"], "days": 3}).to_string(),
    )
    .expect("write job.json");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/jobs"))
        .and(body_json(
            json!({"site": "s", "points": ["a", "b"], "days": 5}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(job("completed")))
        .expect(1)
        .mount(&server)
        .await;
    let path_arg = file.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &["submit", "--file", &path_arg, "--days", "5"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{ID}\n"));
    assert!(
        stderr(&o).contains("an identical job exists"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_file(file);
}

/// A small result object and the CSV it must decode to.
fn object() -> (Vec<u8>, String) {
    let points = vec!["a,b".to_owned(), "plain".to_owned()];
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        site: "s".into(),
        start_ms: EpochMs(1_759_017_600_000),
        end_ms: EpochMs(1_759_449_600_000),
        points: points.clone(),
    };
    let raw: [&[&str]; 2] = [
        &["21.4", "21.5", "on", "-0.125", "1e300", "NaN", "7"],
        &["45.13", "say \"hi\"", "0.1"],
    ];
    let mut obj = encode_header(&header).expect("header");
    let mut csv = "point,time,value\n".to_owned();
    for (p, values) in raw.iter().enumerate() {
        let at = |i: usize| header.start_ms + i as i64 * 300_000;
        let samples = Samples::from_raw(values.iter().enumerate().map(|(i, v)| (at(i), v)));
        obj.extend(encode_block(p as u32, &samples).expect("block"));
        for (s, v) in samples.iter().zip(values.iter()) {
            let value = match Decoded::of_upstream(v) {
                Decoded::Number(n) => n.to_string(),
                Decoded::Text(t) => csv_text(&t),
            };
            csv.push_str(&format!(
                "{},{},{value}\n",
                csv_text(&points[p]),
                format_rfc3339(s.ts)
            ));
        }
    }
    (obj, csv)
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tsp-cli-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

async fn result_server(body: &[u8], sha: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}/result")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-content-sha256", sha)
                .set_body_raw(body.to_vec(), RESULT_GZIP_MEDIA_TYPE),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_decodes_the_object_to_csv_jsonl_and_raw() {
    let (obj, want_csv) = object();
    let sha = hex::encode(Sha256::digest(&obj));
    let server = result_server(&obj, &sha).await;

    let o = tsp(&server.uri(), &["fetch", ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), want_csv);
    assert!(want_csv.contains("\"a,b\",2025-09-28T00:10:00Z,on\n"));
    assert!(want_csv.contains("plain,2025-09-28T00:05:00Z,\"say \"\"hi\"\"\"\n"));
    assert!(want_csv.contains("\"a,b\",2025-09-28T00:25:00Z,NaN\n"));

    let out = temp_path("result.csv");
    let out_arg = out.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &["fetch", ID, "--format", "csv", "-o", &out_arg],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&out).expect("csv file"), want_csv);

    let o = tsp(&server.uri(), &["fetch", ID, "--format", "jsonl"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), want_csv.lines().count() - 1);
    assert_eq!(lines[0]["point"], "a,b");
    assert_eq!(lines[0]["value"], 21.4);
    assert_eq!(lines[2]["value"], "on");

    let raw = temp_path("result.msgpack.gz");
    let raw_arg = raw.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &["fetch", ID, "--format", "raw", "-o", &raw_arg],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&raw).expect("raw file"), obj);
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(raw);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_with_a_sha_mismatch_is_an_error_and_leaves_no_file() {
    let (obj, _) = object();
    let server = result_server(&obj, &"ab".repeat(32)).await;
    let out = temp_path("mismatch.csv");
    let out_arg = out.to_string_lossy().into_owned();
    let o = tsp(&server.uri(), &["fetch", ID, "-o", &out_arg]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: SHA-256 mismatch"),
        "{}",
        stderr(&o)
    );
    assert_clean_error(&o);
    assert!(!out.exists(), "no output file after a mismatch");
    assert!(!out.with_file_name("mismatch.csv.part").exists());

    // A corrupted body is reported as the mismatch it is, on stdout too.
    let mut bad = obj.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let server = result_server(&bad, &hex::encode(Sha256::digest(&obj))).await;
    let o = tsp(&server.uri(), &["fetch", ID]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: SHA-256 mismatch"),
        "{}",
        stderr(&o)
    );

    // A truncated object whose hash matches still fails to decode.
    let cut = &obj[..obj.len() - 5];
    let server = result_server(cut, &hex::encode(Sha256::digest(cut))).await;
    let o = tsp(&server.uri(), &["fetch", ID]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not decode"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_of_an_unfinished_job_shows_the_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/jobs/{ID}/result")))
        .respond_with(problem(
            409,
            "Conflict",
            "job is processing; the result exists once it is completed",
        ))
        .mount(&server)
        .await;
    let o = tsp(&server.uri(), &["fetch", ID]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: Conflict: job is processing; the result exists once it is completed\n"
    );
}

fn agg_row(ms: i64, count: u64) -> Value {
    json!({"bucket_start": ms as f64, "count": count, "min": 1.5, "max": 3.0, "sum": 4.5,
           "mean": 2.25, "stddev": 0.75, "first_ts": ms as f64, "first_value": 1.5,
           "last_ts": (ms + 300_000) as f64, "last_value": 3.0, "non_numeric": 0, "non_finite": 0,
           "partial": count < 2})
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_follow_next_from_and_print_csv_or_a_table() {
    let server = MockServer::start().await;
    let day = 86_400_000i64;
    let t0 = 1_759_017_600_000i64; // 2025-09-28
    Mock::given(method("GET"))
        .and(path("/v1/aggregates"))
        .and(query_param("from", "2025-09-28T00:00:00Z"))
        .and(query_param("to", "2025-10-01T00:00:00Z"))
        .and(query_param("site", "s"))
        .and(query_param("point", "a b/c"))
        .and(query_param("resolution", "1d"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "site": "s", "point": "a b/c", "resolution": "1d",
            "rows": [agg_row(t0, 2), agg_row(t0 + day, 2)],
            "next_from": "2025-09-29T00:00:01Z",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/aggregates"))
        .and(query_param("from", "2025-09-29T00:00:01Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "site": "s", "point": "a b/c", "resolution": "1d",
            "rows": [agg_row(t0 + 2 * day, 1)], "next_from": null,
        })))
        .mount(&server)
        .await;
    let args = [
        "aggregates",
        "--site",
        "s",
        "--point",
        "a b/c",
        "--from",
        "2025-09-28T00:00:00Z",
        "--to",
        "2025-10-01T00:00:00Z",
    ];
    let mut csv_args = args.to_vec();
    csv_args.push("--csv");
    let o = tsp(&server.uri(), &csv_args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("bucket_start,count,min,max,mean"));
    assert_eq!(
        lines[1],
        "2025-09-28T00:00:00Z,2,1.5,3,2.25,0.75,4.5,2025-09-28T00:00:00Z,1.5,2025-09-28T00:05:00Z,3,0,0,false"
    );
    assert!(lines[3].starts_with("2025-09-30T00:00:00Z,1,"));
    assert!(
        lines[3].ends_with(",true"),
        "a partial bucket says so: {}",
        lines[3]
    );

    let o = tsp(&server.uri(), &args).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for day in [
        "2025-09-28T00:00:00Z",
        "2025-09-29T00:00:00Z",
        "2025-09-30T00:00:00Z",
    ] {
        assert!(out.contains(day), "{out}");
    }
    assert!(out.contains("2.25"), "{out}");

    let o = tsp(
        &server.uri(),
        &[
            "aggregates",
            "--site",
            "s",
            "--point",
            "p",
            "--from",
            "yesterday",
            "--to",
            "2025-10-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "a bad time is a usage error");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_list_all_pages_and_retry_and_cancel_print_the_job() {
    let server = MockServer::start().await;
    let mut dead = job("failed_permanent");
    dead["finished_at"] = "2025-10-03T11:00:00Z".into();
    let mut other = dead.clone();
    other["job_id"] = "ffffffffffffffffffffffffffffffff".into();
    Mock::given(method("GET"))
        .and(path("/v1/dead-letters"))
        .and(query_param("cursor", "123"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"dead_letters": [other], "next_cursor": null})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/dead-letters"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"dead_letters": [dead], "next_cursor": "123"})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/jobs/{ID}/retry")))
        .respond_with(ResponseTemplate::new(202).set_body_json(job("queued")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v1/jobs/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(job("cancelled")))
        .expect(1)
        .mount(&server)
        .await;

    let o = tsp(&server.uri(), &["dead-letters"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(ID), "{out}");
    assert!(out.contains("ffffffffffffffffffffffffffffffff"), "{out}");
    assert!(out.contains("upstream 503"), "{out}");
    assert!(out.contains("2025-10-03T11:00:00Z"), "{out}");

    let o = tsp(&server.uri(), &["retry", ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{ID}\tqueued\n"));
    let o = tsp(&server.uri(), &["cancel", ID]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{ID}\tcancelled\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_to_parquet_holds_the_decoded_object_and_a_mismatch_leaves_no_file() {
    let (obj, _) = object();
    let sha = hex::encode(Sha256::digest(&obj));
    let server = result_server(&obj, &sha).await;
    let out = temp_path("result.parquet");
    let out_arg = out.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &["fetch", ID, "--format", "parquet", "-o", &out_arg],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let file = std::fs::read(&out).expect("parquet file");
    let (header, series) = tsp_format::codec::decode_object(&obj).expect("decodes");
    let want: Vec<(String, i64, Decoded)> = series
        .iter()
        .enumerate()
        .flat_map(|(p, s)| s.iter().map(move |(t, v)| (p, t.ms(), v.clone())))
        .map(|(p, t, v)| (header.points[p].clone(), t, v))
        .collect();
    let got = parquet_rows(file.clone());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.1), (&w.0, w.1));
        match (&g.2, &w.2) {
            (Decoded::Number(a), Decoded::Number(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            (a, b) => assert_eq!(a, b),
        }
    }
    assert!(got
        .iter()
        .any(|r| r.2 == Decoded::Text("say \"hi\"".into())));

    // Piped stdout takes the same bytes.
    let o = tsp(&server.uri(), &["fetch", ID, "--format", "parquet"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, file);

    let server = result_server(&obj, &"ab".repeat(32)).await;
    let bad = temp_path("mismatch.parquet");
    let bad_arg = bad.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &["fetch", ID, "--format", "parquet", "-o", &bad_arg],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: SHA-256 mismatch"),
        "{}",
        stderr(&o)
    );
    assert!(!bad.exists() && !bad.with_file_name("mismatch.parquet.part").exists());
    let _ = std::fs::remove_file(out);
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_to_parquet_hold_every_page_row_for_row() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    let server = MockServer::start().await;
    let day = 86_400_000i64;
    let t0 = 1_759_017_600_000i64;
    let pages = [
        (
            vec![agg_row(t0, 2), agg_row(t0 + day, 2)],
            json!("2025-09-29T00:00:01Z"),
        ),
        (vec![agg_row(t0 + 2 * day, 1)], json!(null)),
    ];
    for (i, (rows, next)) in pages.iter().enumerate() {
        let from = if i == 0 {
            "2025-09-28T00:00:00Z"
        } else {
            "2025-09-29T00:00:01Z"
        };
        Mock::given(method("GET"))
            .and(path("/v1/aggregates"))
            .and(query_param("from", from))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "site": "s", "point": "p", "resolution": "1d", "rows": rows, "next_from": next,
            })))
            .mount(&server)
            .await;
    }
    let out = temp_path("agg.parquet");
    let out_arg = out.to_string_lossy().into_owned();
    let o = tsp(
        &server.uri(),
        &[
            "aggregates",
            "--site",
            "s",
            "--point",
            "p",
            "--from",
            "2025-09-28T00:00:00Z",
            "--to",
            "2025-10-01T00:00:00Z",
            "--format",
            "parquet",
            "-o",
            &out_arg,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("(3 buckets)"), "{}", stderr(&o));
    let bytes = bytes::Bytes::from(std::fs::read(&out).expect("parquet file"));
    let batches: Vec<_> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("a Parquet file")
            .build()
            .expect("a reader")
            .collect::<Result<_, _>>()
            .expect("batches");
    let want: Vec<&Value> = pages.iter().flat_map(|p| p.0.iter()).collect();
    let mut i = 0;
    for b in &batches {
        let start = b.column_by_name("bucket_start").expect("bucket_start");
        let count = b.column_by_name("count").expect("count");
        let mean = b.column_by_name("mean").expect("mean");
        let partial = b.column_by_name("partial").expect("partial");
        for r in 0..b.num_rows() {
            let w = want[i];
            assert_eq!(
                start.as_primitive::<TimestampMillisecondType>().value(r),
                w["bucket_start"].as_f64().unwrap_or_default() as i64
            );
            assert_eq!(
                count.as_primitive::<Int64Type>().value(r),
                w["count"].as_i64().unwrap_or_default()
            );
            assert_eq!(
                mean.as_primitive::<Float64Type>().value(r),
                w["mean"].as_f64().unwrap_or_default()
            );
            assert_eq!(partial.as_boolean().value(r), w["partial"] == true);
            i += 1;
        }
    }
    assert_eq!(i, 3);
    let _ = std::fs::remove_file(out);

    // -o with a table makes no sense.
    let o = tsp(
        &server.uri(),
        &[
            "aggregates",
            "--site",
            "s",
            "--point",
            "p",
            "--from",
            "2025-09-28T00:00:00Z",
            "--to",
            "2025-10-01T00:00:00Z",
            "-o",
            &out_arg,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("-o needs --format csv or --format parquet"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn admin_pauses_resumes_and_retries_dead_jobs_in_bulk() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/admin/sites/a%2Fb/pause"))
        .and(query_param("reason", "ACE maintenance"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"site": "a/b",
            "paused_at": "2026-12-03T10:00:00Z", "paused_by": "ops", "reason": "ACE maintenance"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/admin/sites/a%2Fb/pause"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"site": "a/b", "was_paused": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/admin/dead-letters/retry"))
        .and(body_partial_json(
            json!({"site": "s", "error_contains": "503", "dry_run": true, "limit": 100}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"dry_run": true, "retried": 0,
            "matched": [{"job_id": ID, "owner": "alice", "site": "s", "last_error": "upstream 503",
                         "finished_at": "2026-12-02T10:00:00Z"}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let url = server.uri();
    let paused = tsp(
        &url,
        &["admin", "pause", "a/b", "--reason", "ACE maintenance"],
    )
    .await;
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert!(
        stdout(&paused).starts_with("a/b\tpaused since 2026-12-03T10:00:00Z"),
        "{}",
        stdout(&paused)
    );
    let resumed = tsp(&url, &["admin", "resume", "a/b"]).await;
    assert_eq!(stdout(&resumed), "a/b\tresumed\n");
    let listed = tsp(
        &url,
        &[
            "admin",
            "retry-dead",
            "--site",
            "s",
            "--error",
            "503",
            "--dry-run",
        ],
    )
    .await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stdout(&listed).starts_with(&format!("{ID}\talice\ts\t")),
        "{}",
        stdout(&listed)
    );
    assert!(
        stderr(&listed).contains("would retry 1 of 1 matched"),
        "{}",
        stderr(&listed)
    );
}
