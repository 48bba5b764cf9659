//! End-to-end tests of the simulator over real HTTP (port 0, reqwest).
//!
//! The first tests pin kind mode (`--mode kind`, the older behaviour); the
//! fault tests run in the default faithful mode; the faithful-mode API is
//! tested from `faithful_*` on.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ace_sim::{
    catalogue, default_points, format_naive, format_sample_time, format_time, is_state_point,
    reporting_points, samples, silent_points, Mode, SimConfig, TimeFormat,
};
use serde_json::Value;

/// Kind mode: the older, kinder API.
fn kind() -> SimConfig {
    SimConfig {
        mode: Mode::Kind,
        ..SimConfig::default()
    }
}

const TOKEN: &str = "dev-token";
const INTERVAL_MS: i64 = 300_000;

async fn start(cfg: SimConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ace_sim::serve(listener, cfg));
    format!("http://{addr}")
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// How the point list goes on the wire.
#[derive(Clone, Copy)]
enum Names {
    None,
    Comma,
    Repeated,
}

/// One page request's query pairs.
fn page_query(
    start: &str,
    end: &str,
    page_size: u64,
    points: &[String],
    names: Names,
    cursor: Option<&str>,
) -> Vec<(String, String)> {
    let mut q = vec![
        ("start_time".to_owned(), start.to_owned()),
        ("end_time".to_owned(), end.to_owned()),
        ("page_size".to_owned(), page_size.to_string()),
        ("raw_data".to_owned(), "true".to_owned()),
    ];
    match names {
        Names::None => {}
        Names::Comma => q.push(("point_names".to_owned(), points.join(","))),
        Names::Repeated => {
            for p in points {
                q.push(("point_names".to_owned(), p.clone()));
            }
        }
    }
    if let Some(c) = cursor {
        q.push(("cursor".to_owned(), c.to_owned()));
    }
    q
}

/// Pages through a whole query; returns (name, time, value) and the page count.
async fn fetch_all(
    base: &str,
    site: &str,
    start: &str,
    end: &str,
    page_size: u64,
    points: &[String],
    names: Names,
) -> (Vec<(String, String, String)>, usize) {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let resp = client
            .get(format!("{base}/sites/{site}/timeseries/paginated"))
            .bearer_auth(TOKEN)
            .query(&page_query(
                start,
                end,
                page_size,
                points,
                names,
                cursor.as_deref(),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        pages += 1;
        let items = page["point_samples"].as_array().unwrap();
        assert!(items.len() as u64 <= page_size);
        for s in items {
            out.push((
                s["name"].as_str().unwrap().to_owned(),
                s["time"].as_str().unwrap().to_owned(),
                s["value"].as_str().expect("value is a string").to_owned(),
            ));
        }
        if page["has_more"].as_bool().unwrap() {
            assert_eq!(items.len() as u64, page_size, "only the last page is short");
            cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        } else {
            assert!(page["next_cursor"].is_null());
            return (out, pages);
        }
    }
}

fn expected(
    site: &str,
    points: &[String],
    start: &str,
    end: &str,
) -> Vec<(String, String, String)> {
    points
        .iter()
        .flat_map(|p| {
            samples(site, p, ms(start), ms(end), INTERVAL_MS)
                .into_iter()
                .map(move |(t, v)| (p.clone(), format_time(t), v))
        })
        .collect()
}

#[tokio::test]
async fn paging_returns_exactly_the_samples() {
    let base = start(kind()).await;
    let site = "FallsCity";
    // Unaligned start (inclusive) and aligned end (exclusive).
    let (s, e) = ("2025-10-16T00:02:00Z", "2025-10-16T06:00:00Z");
    let mut points = default_points(site, 3);
    points.push("odd/name.with spaces & ampersand+plus".to_owned());
    points.push("Fan Status".to_owned());
    let want = expected(site, &points, s, e);
    assert_eq!(want.len(), 5 * 71);
    assert_eq!(want[0].1, "2025-10-16T00:05:00Z");
    for page_size in [3, 10, 50, 100, 10_000] {
        let (got, pages) = fetch_all(&base, site, s, e, page_size, &points, Names::Comma).await;
        assert_eq!(got, want, "page_size {page_size}");
        assert_eq!(pages, want.len().div_ceil(page_size as usize).max(1));
    }

    // A name with a comma needs the repeated form.
    let points = vec!["a,b/c".to_owned(), "d".to_owned()];
    let (got, _) = fetch_all(&base, site, s, e, 50, &points, Names::Repeated).await;
    assert_eq!(got, expected(site, &points, s, e));
}

#[tokio::test]
async fn default_points_when_unfiltered() {
    let base = start(kind()).await;
    let (s, e) = ("2025-10-16T00:00:00Z", "2025-10-16T02:00:00Z");
    let (got, _) = fetch_all(&base, "demo", s, e, 50, &[], Names::None).await;
    assert_eq!(got, expected("demo", &default_points("demo", 10), s, e));
    assert_eq!(got.len(), 10 * 24);
}

#[tokio::test]
async fn full_year_is_eleven_pages() {
    let base = start(kind()).await;
    let (s, e) = ("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
    let points = vec!["ses/ses_x/1.2.3.4/n4/B/C.Drivers.Net.AHU1.points.Zone_Temp".to_owned()];
    let (got, pages) = fetch_all(&base, "x", s, e, 10_000, &points, Names::Comma).await;
    assert_eq!((got.len(), pages), (105_120, 11));
    assert_eq!(got, expected("x", &points, s, e));
}

#[tokio::test]
async fn empty_range_is_one_empty_page() {
    let base = start(kind()).await;
    let t = "2025-10-16T00:00:01Z";
    let (got, pages) = fetch_all(&base, "x", t, t, 3, &[], Names::None).await;
    assert_eq!((got.len(), pages), (0, 1));
}

async fn status_of(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn kind_error_statuses() {
    let base = start(kind()).await;
    let c = reqwest::Client::new();
    let q = "start_time=2025-10-16T00:00:00Z&end_time=2025-10-16T01:00:00Z";
    let ok = format!("{base}/sites/demo/timeseries/paginated?{q}");

    assert_eq!(status_of(&c, &ok, Some(TOKEN)).await.status(), 200);
    let r = status_of(&c, &ok, None).await;
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    assert_eq!(status_of(&c, &ok, Some("wrong")).await.status(), 401);

    let unknown = format!("{base}/sites/unknown-site/timeseries/paginated?{q}");
    let r = status_of(&c, &unknown, Some(TOKEN)).await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());

    for bad in [
        format!("{ok}&page_size=7"),
        format!("{ok}&page_size=20000"),
        format!("{ok}&cursor=garbage"),
        format!("{base}/sites/demo/timeseries/paginated?start_time=2025-10-16T00:00:00Z"),
        format!("{base}/sites/demo/timeseries/paginated?start_time=x&end_time=y"),
    ] {
        let r = status_of(&c, &bad, Some(TOKEN)).await;
        assert_eq!(r.status(), 422, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    }

    let failing = format!("{base}/sites/always-fails/timeseries/paginated?{q}");
    for _ in 0..5 {
        assert_eq!(status_of(&c, &failing, Some(TOKEN)).await.status(), 503);
    }
}

#[tokio::test]
async fn seeded_faults_are_reproducible_and_retries_succeed() {
    let cfg = SimConfig {
        seed: 42,
        rate_503: 0.5,
        ..SimConfig::default()
    };
    let urls: Vec<String> = (0..10)
        .map(|h| {
            format!(
                "/sites/demo/timeseries/paginated?start_time=2025-10-16T{h:02}:00:00Z&end_time=2025-10-16T{h:02}:30:00Z&page_size=3"
            )
        })
        .collect();
    let run = |base: String| {
        let urls = urls.clone();
        async move {
            let c = reqwest::Client::new();
            let mut statuses = Vec::new();
            for u in &urls {
                for _ in 0..3 {
                    let r = status_of(&c, &format!("{base}{u}"), Some(TOKEN)).await;
                    statuses.push(r.status().as_u16());
                }
            }
            statuses
        }
    };
    let a = run(start(cfg.clone()).await).await;
    let b = run(start(cfg.clone()).await).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    assert!(a.iter().all(|s| *s == 200 || *s == 503));

    // A failing URL succeeds on some retry.
    let base = start(cfg).await;
    let c = reqwest::Client::new();
    let url = format!("{base}{}", urls[0]);
    let mut tries = 0;
    loop {
        tries += 1;
        if status_of(&c, &url, Some(TOKEN)).await.status() == 200 {
            break;
        }
        assert!(tries < 50, "never succeeded");
    }
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let base = start(SimConfig {
        rate_429: 1.0,
        retry_after_secs: 7,
        ..SimConfig::default()
    })
    .await;
    let url = format!(
        "{base}/sites/demo/timeseries/paginated?start_time=2025-10-16T00:00:00Z&end_time=2025-10-16T01:00:00Z"
    );
    let r = status_of(&reqwest::Client::new(), &url, Some(TOKEN)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
}

#[tokio::test]
async fn truncated_and_garbage_bodies_are_not_json() {
    for cfg in [
        SimConfig {
            rate_truncated: 1.0,
            ..SimConfig::default()
        },
        SimConfig {
            rate_garbage: 1.0,
            ..SimConfig::default()
        },
    ] {
        let base = start(cfg).await;
        let url = format!(
            "{base}/sites/demo/timeseries/paginated?start_time=2025-10-16T00:00:00Z&end_time=2025-10-16T01:00:00Z"
        );
        let c = reqwest::Client::new();
        let r = status_of(&c, &url, Some(TOKEN)).await;
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert!(!body.is_empty());
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        let stats: Value = c
            .get(format!("{base}/__stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["faults"], 1);
        assert_eq!(stats["pages_ok"], 0);
    }
}

#[tokio::test]
async fn stats_count_requests_pages_and_samples() {
    let base = start(kind()).await;
    let c = reqwest::Client::new();
    let (s, e) = ("2025-10-16T00:00:00Z", "2025-10-16T01:00:00Z");
    let (got, pages) = fetch_all(&base, "demo", s, e, 50, &[], Names::None).await;
    let failing =
        format!("{base}/sites/always-fails/timeseries/paginated?start_time={s}&end_time={e}");
    status_of(&c, &failing, Some(TOKEN)).await;
    let stats: Value = c
        .get(format!("{base}/__stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], pages as u64 + 1);
    assert_eq!(stats["pages_ok"], pages as u64);
    assert_eq!(stats["samples_served"], got.len() as u64);
    assert_eq!(stats["faults"], 1);
}

#[tokio::test]
async fn alert_receiver_records_and_fails_on_demand() {
    let base = start(SimConfig::default()).await;
    let c = reqwest::Client::new();
    let post = |body: Value| {
        let c = c.clone();
        let url = format!("{base}/alerts");
        async move { c.post(url).json(&body).send().await.unwrap().status() }
    };
    assert_eq!(post(serde_json::json!({"alert": 1})).await, 200);
    let r = c
        .post(format!("{base}/alerts/fail-next?n=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(post(serde_json::json!({"alert": 2})).await, 500);
    assert_eq!(post(serde_json::json!({"alert": 2})).await, 500);
    assert_eq!(post(serde_json::json!({"alert": 2})).await, 200);
    let all: Value = c
        .get(format!("{base}/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, serde_json::json!([{"alert": 1}, {"alert": 2}]));

    // Failures for one site leave other sites' alerts alone.
    let r = c
        .post(format!("{base}/alerts/fail-next?n=1&site=flaky"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(post(serde_json::json!({"site": "other"})).await, 200);
    assert_eq!(post(serde_json::json!({"site": "flaky"})).await, 500);
    assert_eq!(post(serde_json::json!({"site": "flaky"})).await, 200);
}

#[tokio::test]
async fn healthz_and_latency() {
    let base = start(SimConfig {
        latency_ms: 120,
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    assert!(started.elapsed() >= Duration::from_millis(120));
}

#[test]
fn values_are_well_formed() {
    let site = "FallsCity";
    let mut points = default_points(site, 24);
    points.extend((0..40).map(|i| format!("misc/point_{i}")));
    points.push("AHU1 Occupancy State".to_owned());
    let (s, e) = (ms("2025-10-01T00:00:00Z"), ms("2025-10-15T00:00:00Z"));
    let mut state_points = 0;
    let mut nans = 0;
    for p in &points {
        let vals = samples(site, p, s, e, INTERVAL_MS);
        assert_eq!(vals.len(), 14 * 288);
        if p.contains("Status") || p.contains("State") {
            assert!(is_state_point(site, p));
        }
        if is_state_point(site, p) {
            state_points += 1;
            let kinds: HashSet<&str> = vals.iter().map(|(_, v)| v.as_str()).collect();
            assert_eq!(kinds, HashSet::from(["active", "inactive"]), "{p}");
            continue;
        }
        let mut decimals = HashSet::new();
        for (_, v) in &vals {
            let x: f64 = v.parse().unwrap_or_else(|_| panic!("{p}: {v:?}"));
            if x.is_nan() {
                nans += 1;
                continue;
            }
            let d = v.split_once('.').map_or(0, |(_, f)| f.len());
            assert!((1..=2).contains(&d), "{p}: {v}");
            decimals.insert(d);
        }
        assert_eq!(decimals.len(), 1, "{p}: fixed decimals per point");
    }
    assert!(state_points >= 4, "{state_points}");
    // ~1 in 5000 numeric samples; loose bounds, the exact count is fixed by the hash.
    assert!(nans < 100, "{nans}");
}

#[tokio::test]
async fn status_point_over_http_is_active_or_inactive() {
    let base = start(kind()).await;
    let points = vec!["ses/x/C.Drivers.AHU1.points.Supply_Fan_Status".to_owned()];
    let (got, _) = fetch_all(
        &base,
        "x",
        "2025-10-16T00:00:00Z",
        "2025-10-18T00:00:00Z",
        100,
        &points,
        Names::Comma,
    )
    .await;
    assert!(got.iter().all(|(_, _, v)| v == "active" || v == "inactive"));
}

/// The binary prints its port, serves, and exits on SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn binary_prints_port_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_ace-sim"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("ace-sim listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

fn page_url(base: &str, site: &str) -> String {
    format!(
        "{base}/sites/{site}/timeseries/paginated?start_time=2025-10-16T00:00:00Z&end_time=2025-10-16T01:00:00Z"
    )
}

/// Picks the first `site-N` whose windows `w` and `w + 1` are as asked.
fn site_with(cfg: &SimConfig, w: u64, now: Option<u16>, next: Option<u16>) -> String {
    (0..10_000)
        .map(|i| format!("site-{i}"))
        .find(|site| {
            ace_sim::window_fault(cfg, site, w).map(ace_sim::WindowFault::status) == now
                && ace_sim::window_fault(cfg, site, w + 1).map(ace_sim::WindowFault::status) == next
        })
        .unwrap()
}

#[tokio::test]
async fn windowed_faults_hit_every_request_of_a_site_in_a_faulty_window() {
    let cfg = SimConfig {
        seed: 7,
        window_fault_rate: 0.5,
        fault_window_secs: 1,
        retry_after_secs: 3,
        ..SimConfig::default()
    };
    let base = start(cfg.clone()).await;
    let c = reqwest::Client::new();
    let faults_url = format!("{base}/faults");

    // The window index is only read from the server, so a slow machine that
    // crosses a boundary mid-batch just tries the next window.
    let mut tries = 0;
    let (w, sites, f) = loop {
        tries += 1;
        assert!(tries <= 5, "could not stay inside one window");
        let f = get_json(&c, &faults_url).await;
        assert_eq!(f["fault_window_secs"], 1);
        assert_eq!(f["window_fault_rate"], 0.5);
        assert_eq!(f["window_basis"], "server_start");
        let w = f["window_index"].as_u64().unwrap();
        let rejected_before = f["window_rejections"].as_u64().unwrap();
        let sites = [
            (site_with(&cfg, w, Some(503), None), Some(503), None),
            (site_with(&cfg, w, Some(429), None), Some(429), None),
            (site_with(&cfg, w, None, Some(503)), None, Some(503)),
            (site_with(&cfg, w, None, None), None, None),
        ];
        let mut got = Vec::new();
        for (site, _, _) in &sites {
            for _ in 0..5 {
                let r = status_of(&c, &page_url(&base, site), Some(TOKEN)).await;
                if r.status() == 429 {
                    assert_eq!(r.headers()["retry-after"], "3");
                }
                got.push(r.status().as_u16());
            }
        }
        let after = get_json(&c, &faults_url).await;
        if after["window_index"].as_u64() != Some(w) {
            continue;
        }
        let want: Vec<u16> = sites
            .iter()
            .flat_map(|(_, now, _)| [now.unwrap_or(200); 5])
            .collect();
        assert_eq!(got, want, "window {w}");
        assert_eq!(
            after["window_rejections"].as_u64(),
            Some(rejected_before + 10)
        );
        let site = get_json(&c, &format!("{faults_url}?site={}", sites[0].0)).await;
        if site["window_index"].as_u64() == Some(w) {
            assert_eq!(site["site"]["window_fault"], 503);
        }
        break (w, sites, after);
    };

    // Into the next window: the faulty sites recover, the clean one fails.
    let now_ms = f["now_ms"].as_u64().unwrap();
    let ends = f["window_ends_at_ms"].as_u64().unwrap();
    assert!(ends > now_ms && ends - now_ms <= 1000, "{f}");
    tokio::time::sleep(Duration::from_millis(ends - now_ms + 30)).await;
    let f = get_json(&c, &faults_url).await;
    assert_eq!(f["window_index"].as_u64(), Some(w + 1));
    let mut got = Vec::new();
    for (site, _, _) in &sites {
        got.push(
            status_of(&c, &page_url(&base, site), Some(TOKEN))
                .await
                .status()
                .as_u16(),
        );
    }
    if get_json(&c, &faults_url).await["window_index"].as_u64() == Some(w + 1) {
        let want: Vec<u16> = sites.iter().map(|(_, _, n)| n.unwrap_or(200)).collect();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn outage_answers_503_until_ended() {
    let base = start(SimConfig::default()).await;
    let c = reqwest::Client::new();
    let f = get_json(&c, &format!("{base}/faults")).await;
    assert!(f["outage_until_ms"].is_null(), "{f}");
    assert_eq!(f["outage_rejections"], 0);
    assert_eq!(
        status_of(&c, &page_url(&base, "demo"), Some(TOKEN))
            .await
            .status(),
        200
    );

    let r = c
        .post(format!("{base}/faults/outage?secs=30"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f: Value = r.json().await.unwrap();
    let until = f["outage_until_ms"].as_u64().unwrap();
    let now = f["now_ms"].as_u64().unwrap();
    assert!((29_000..=30_000).contains(&(until - now)), "{f}");
    for site in ["demo", "FallsCity", "other"] {
        let r = status_of(&c, &page_url(&base, site), Some(TOKEN)).await;
        assert_eq!(r.status(), 503, "{site}");
        assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    }
    // The gateway is down: even unauthenticated requests get the 503.
    assert_eq!(
        status_of(&c, &page_url(&base, "demo"), None).await.status(),
        503
    );
    // Other endpoints are unaffected.
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let f = get_json(&c, &format!("{base}/faults")).await;
    assert_eq!(f["outage_until_ms"].as_u64(), Some(until));
    assert_eq!(f["outage_rejections"], 4);
    let stats = get_json(&c, &format!("{base}/__stats")).await;
    assert_eq!(stats["faults"], 4);

    let f: Value = c
        .post(format!("{base}/faults/outage?secs=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(f["outage_until_ms"].is_null(), "{f}");
    assert_eq!(
        status_of(&c, &page_url(&base, "demo"), Some(TOKEN))
            .await
            .status(),
        200
    );

    // A short outage ends on its own.
    let r = c
        .post(format!("{base}/faults/outage?ms=300"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(&c, &page_url(&base, "demo"), Some(TOKEN))
            .await
            .status(),
        503
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        status_of(&c, &page_url(&base, "demo"), Some(TOKEN))
            .await
            .status(),
        200
    );
    let f = get_json(&c, &format!("{base}/faults")).await;
    assert!(f["outage_until_ms"].is_null());
    assert_eq!(f["outage_rejections"], 5);

    // Bad control requests are refused, not panicked on.
    for q in ["", "?secs=x", "?secs=-1", "?secs=1&ms=5"] {
        let r = c
            .post(format!("{base}/faults/outage{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{q}");
        assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    }
    assert!(get_json(&c, &format!("{base}/faults")).await["outage_until_ms"].is_null());
}

#[tokio::test]
async fn dropped_connections_fail_while_reading_the_body() {
    let c = reqwest::Client::new();
    let good = start(SimConfig::default()).await;
    let full = status_of(&c, &page_url(&good, "demo"), Some(TOKEN))
        .await
        .bytes()
        .await
        .unwrap();

    let base = start(SimConfig {
        rate_drop: 1.0,
        ..SimConfig::default()
    })
    .await;
    let r = status_of(&c, &page_url(&base, "demo"), Some(TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(full.len() as u64));
    assert!(r.bytes().await.is_err(), "the body must be cut short");
    let f = get_json(&c, &format!("{base}/faults")).await;
    assert_eq!(f["drops"], 1);
    let stats = get_json(&c, &format!("{base}/__stats")).await;
    assert_eq!(
        (stats["faults"].as_u64(), stats["pages_ok"].as_u64()),
        (Some(1), Some(0))
    );
    // The server keeps serving after the abort.
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Seeded: the same seed drops the same requests.
    let cfg = SimConfig {
        seed: 3,
        rate_drop: 0.5,
        ..SimConfig::default()
    };
    let run = |base: String| async move {
        let c = reqwest::Client::new();
        let mut out = Vec::new();
        for h in 0..12 {
            let url = format!(
                "{base}/sites/demo/timeseries/paginated?start_time=2025-10-16T{h:02}:00:00Z&end_time=2025-10-16T{h:02}:30:00Z"
            );
            let r = status_of(&c, &url, Some(TOKEN)).await;
            assert_eq!(r.status(), 200);
            out.push(r.bytes().await.is_ok());
        }
        out
    };
    let (a, b) = tokio::join!(run(start(cfg.clone()).await), run(start(cfg.clone()).await));
    assert_eq!(a, b);
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
}

#[tokio::test]
async fn slow_pages_are_delayed_per_request() {
    let c = reqwest::Client::new();
    let base = start(SimConfig {
        rate_slow: 1.0,
        slow_ms: 200,
        ..SimConfig::default()
    })
    .await;
    let t = Instant::now();
    let r = status_of(&c, &page_url(&base, "demo"), Some(TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    let f = get_json(&c, &format!("{base}/faults")).await;
    assert_eq!(
        (f["slow_responses"].as_u64(), f["slow_ms"].as_u64()),
        (Some(1), Some(200))
    );

    // Seeded: the same seed slows the same requests, and only those.
    let cfg = SimConfig {
        seed: 5,
        rate_slow: 0.5,
        slow_ms: 150,
        ..SimConfig::default()
    };
    let run = |base: String| async move {
        let c = reqwest::Client::new();
        let mut out = Vec::new();
        for h in 0..8 {
            let url = format!(
                "{base}/sites/demo/timeseries/paginated?start_time=2025-10-16T{h:02}:00:00Z&end_time=2025-10-16T{h:02}:30:00Z"
            );
            let t = Instant::now();
            assert_eq!(status_of(&c, &url, Some(TOKEN)).await.status(), 200);
            out.push(t.elapsed() >= Duration::from_millis(150));
        }
        let f = get_json(&c, &format!("{base}/faults")).await;
        assert_eq!(
            f["slow_responses"].as_u64(),
            Some(out.iter().filter(|s| **s).count() as u64)
        );
        out
    };
    let (a, b) = tokio::join!(run(start(cfg.clone()).await), run(start(cfg.clone()).await));
    assert_eq!(a, b);
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
}

#[test]
fn help_documents_the_fault_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ace-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--mode",
        "--site-points",
        "--silent-share",
        "--time-format",
        "--fix-cursor",
        "--collect-interval-secs",
        "ACE_SIM_MODE",
        "configured_points",
        "--rate-drop",
        "--rate-slow",
        "--slow-ms",
        "--fault-window-secs",
        "--window-fault-rate",
        "POST /faults/outage",
        "GET  /faults",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

// ---------------------------------------------------------------------------
// Faithful mode (the default).
// ---------------------------------------------------------------------------

/// A sample row: (name, time, value).
type Row = (String, String, String);

/// `base` + path segments, each percent-encoded as one segment.
fn url(base: &str, segments: &[&str]) -> reqwest::Url {
    let mut u = reqwest::Url::parse(base).unwrap();
    u.path_segments_mut().unwrap().extend(segments);
    u
}

async fn get_text(
    c: &reqwest::Client,
    u: reqwest::Url,
    query: &[(&str, &str)],
    token: Option<&str>,
) -> (u16, String) {
    let mut req = c.get(u).query(query);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn rows_of(body: &Value) -> Vec<Row> {
    body["point_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["time"].as_str().unwrap().to_owned(),
                s["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// One page: (rows, next_cursor, raw body).
async fn ace_page(
    c: &reqwest::Client,
    base: &str,
    site: &str,
    query: &[(&str, &str)],
    cursor: Option<&str>,
) -> (Vec<Row>, Option<String>, String) {
    let mut q = query.to_vec();
    if let Some(cur) = cursor {
        q.push(("cursor", cur));
    }
    let (status, body) = get_text(
        c,
        url(base, &["sites", site, "timeseries", "paginated"]),
        &q,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let next = v["next_cursor"].as_str().map(str::to_owned);
    assert_eq!(v["has_more"].as_bool(), Some(next.is_some()), "{body}");
    (rows_of(&v), next, body)
}

/// Follows the server's cursors until the end, or until `max_pages`.
async fn ace_walk(
    c: &reqwest::Client,
    base: &str,
    site: &str,
    query: &[(&str, &str)],
    max_pages: usize,
) -> (Vec<Row>, Vec<String>, Vec<String>) {
    let (mut rows, mut cursors, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let (r, next, body) = ace_page(c, base, site, query, cursor.as_deref()).await;
        rows.extend(r);
        bodies.push(body);
        match next {
            Some(n) => {
                cursors.push(n.clone());
                cursor = Some(n);
            }
            None => break,
        }
    }
    (rows, cursors, bodies)
}

/// What faithful mode serves for `site` over `[start, end)`: every
/// reporting point at every bucket, ordered by (time, name).
fn expected_site(cfg: &SimConfig, site: &str, start: i64, end: i64, fmt: TimeFormat) -> Vec<Row> {
    let mut names = reporting_points(site, cfg);
    names.sort();
    let series: Vec<Vec<(i64, String)>> = names
        .iter()
        .map(|n| samples(site, n, start, end, INTERVAL_MS))
        .collect();
    let buckets = series.first().map_or(0, Vec::len);
    let mut out = Vec::new();
    for b in 0..buckets {
        for (name, s) in names.iter().zip(&series) {
            let (t, v) = &s[b];
            out.push((
                name.clone(),
                format_sample_time(site, name, *t, fmt),
                v.clone(),
            ));
        }
    }
    out
}

const DAY_START: &str = "2025-10-16T00:00:00";
const HOURS_2: &str = "2025-10-16T02:00:00";

#[tokio::test]
async fn faithful_walk_is_time_major_and_ignores_point_names() {
    let cfg = SimConfig::default();
    let base = start(cfg.clone()).await;
    let c = reqwest::Client::new();
    let site = "fa-12pts";
    let want = expected_site(
        &cfg,
        site,
        ms("2025-10-16T00:00:00Z"),
        ms("2025-10-16T02:00:00Z"),
        TimeFormat::Naive,
    );
    // 12 points, the last floor(12 * 0.25) = 3 silent, 24 buckets.
    assert_eq!(want.len(), 9 * 24);
    assert_eq!(want[0].1, "2025-10-16T00:00:00");
    let keys: Vec<(&str, &str)> = want.iter().map(|r| (r.1.as_str(), r.0.as_str())).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "ordered by (time, name)"
    );

    for page_size in ["10", "50", "500000"] {
        let q = [
            ("start_time", DAY_START),
            ("end_time", HOURS_2),
            ("page_size", page_size),
        ];
        let (got, _, _) = ace_walk(&c, &base, site, &q, 100).await;
        assert_eq!(got, want, "page_size {page_size}");
    }
    // point_names is ignored, in either shape: the whole site comes back.
    let one = &reporting_points(site, &cfg)[0];
    let two = &reporting_points(site, &cfg)[1];
    for extra in [vec![one.as_str()], vec![one.as_str(), two.as_str()]] {
        let mut q = vec![
            ("start_time", DAY_START),
            ("end_time", HOURS_2),
            ("page_size", "50"),
        ];
        q.extend(extra.iter().map(|n| ("point_names", *n)));
        let (got, _, _) = ace_walk(&c, &base, site, &q, 100).await;
        assert_eq!(got, want);
    }
    let joined = format!("{one},{two}");
    let q = [
        ("start_time", DAY_START),
        ("end_time", HOURS_2),
        ("point_names", joined.as_str()),
        ("raw_data", "true"),
    ];
    assert_eq!(ace_walk(&c, &base, site, &q, 100).await.0, want);

    // Silent points never appear.
    let names: HashSet<String> = want.iter().map(|r| r.0.clone()).collect();
    assert_eq!(names.len(), 9);
    for silent in silent_points(site, &cfg) {
        assert!(!names.contains(&silent));
    }

    // The exact body shape, no whitespace; the start/end forms ACE clients send.
    let (_, _, body) = ace_page(
        &c,
        &base,
        site,
        &[
            ("start_time", "2025-10-16"),
            ("end_time", "2025-10-16T00:05:00.000Z"),
            ("page_size", "3"),
        ],
        None,
    )
    .await;
    let rows: Vec<String> = want[..3]
        .iter()
        .map(|(n, t, v)| format!(r#"{{"name":"{n}","value":"{v}","time":"{t}"}}"#))
        .collect();
    let cursor = base64_std(&format!(r#"{{"offset": 3, "timestamp": "{DAY_START}"}}"#));
    assert_eq!(
        body,
        format!(
            r#"{{"point_samples":[{}],"next_cursor":"{cursor}","has_more":true}}"#,
            rows.join(",")
        )
    );
    for (s, e) in [
        ("2025-10-16T00:00:00Z", "2025-10-16T02:00:00Z"),
        ("2025-10-16T02:00:00+02:00", "2025-10-16T04:00:00+02:00"),
        ("2025-10-15T23:59:59.5", "2025-10-16T01:55:00.001"),
    ] {
        let q = [("start_time", s), ("end_time", e), ("page_size", "500000")];
        assert_eq!(ace_walk(&c, &base, site, &q, 2).await.0, want, "{s} {e}");
    }
}

/// Standard base64 with padding, as Python's `base64.b64encode`.
fn base64_std(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn faithful_time_formats() {
    let c = reqwest::Client::new();
    let site = "tf-8pts";
    for (flag, fmt) in [
        ("naive", TimeFormat::Naive),
        ("micros", TimeFormat::Micros),
        ("z", TimeFormat::Z),
    ] {
        let cfg = SimConfig {
            time_format: fmt,
            ..SimConfig::default()
        };
        let base = start(cfg.clone()).await;
        let q = [
            ("start_time", DAY_START),
            ("end_time", HOURS_2),
            ("page_size", "500"),
        ];
        let (got, _, _) = ace_walk(&c, &base, site, &q, 10).await;
        let want = expected_site(
            &cfg,
            site,
            ms("2025-10-16T00:00:00Z"),
            ms("2025-10-16T02:00:00Z"),
            fmt,
        );
        assert_eq!(got, want, "{flag}");
        let t = &got[1].1;
        match fmt {
            TimeFormat::Naive => assert_eq!(t, "2025-10-16T00:00:00"),
            TimeFormat::Z => assert_eq!(t, "2025-10-16T00:00:00Z"),
            TimeFormat::Micros => {
                assert!(
                    t.starts_with("2025-10-16T00:00:00.000") && t.len() == 26,
                    "{t}"
                );
                let distinct: HashSet<&str> = got.iter().map(|r| &r.1[19..]).collect();
                assert!(distinct.len() > 50, "fractions vary per (point, t)");
                for (_, t, _) in &got {
                    let p =
                        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
                    assert_eq!(p.and_utc().timestamp_millis() % INTERVAL_MS, 0, "{t}");
                }
            }
        }
        // The point endpoint writes the same times.
        let name = &reporting_points(site, &cfg)[2];
        let (status, body) = get_text(
            &c,
            url(&base, &["points", name, "timeseries"]),
            &[("start_time", DAY_START), ("end_time", HOURS_2)],
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 200);
        let mine: Vec<Row> = got.iter().filter(|r| &r.0 == name).cloned().collect();
        assert_eq!(
            rows_of(&serde_json::from_str(&body).unwrap()),
            mine,
            "{flag}"
        );
    }
}

#[tokio::test]
async fn faithful_page_size_and_cursor_errors_are_400() {
    let base = start(SimConfig::default()).await;
    let c = reqwest::Client::new();
    let u = url(&base, &["sites", "demo", "timeseries", "paginated"]);
    let ok = [("start_time", DAY_START), ("end_time", HOURS_2)];
    for ps in [
        "3", "10", "50", "100", "500", "1000", "5000", "10000", "50000", "100000", "300000",
        "500000",
    ] {
        let mut q = ok.to_vec();
        q.push(("page_size", ps));
        assert_eq!(
            get_text(&c, u.clone(), &q, Some(TOKEN)).await.0,
            200,
            "{ps}"
        );
    }
    for (k, v, field) in [
        ("page_size", "7", "page_size"),
        ("page_size", "20000", "page_size"),
        ("page_size", "0", "page_size"),
        ("page_size", "ten", "page_size"),
        ("cursor", "garbage", "cursor"),
        ("cursor", "eyJvIjozfQ", "cursor"), // kind mode's {"o":3}
    ] {
        let mut q = ok.to_vec();
        q.push((k, v));
        let (status, body) = get_text(&c, u.clone(), &q, Some(TOKEN)).await;
        assert_eq!(status, 400, "{k}={v}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["errors"][field].is_string(), "{body}");
        assert!(v["message"].is_string(), "{body}");
    }
    let (status, body) = get_text(
        &c,
        u.clone(),
        &[("start_time", "soon"), ("page_size", "4")],
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    for field in ["start_time", "end_time", "page_size"] {
        assert!(v["errors"][field].is_string(), "{field}: {body}");
    }
    // The point endpoint validates its range the same way.
    let name = &reporting_points("demo", &SimConfig::default())[0];
    let (status, body) = get_text(
        &c,
        url(&base, &["points", name, "timeseries"]),
        &[("start_time", DAY_START)],
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["errors"]["end_time"].is_string());
}

#[tokio::test]
async fn faithful_cursor_bug_and_fix() {
    let site = "walk-10pts";
    let buggy = SimConfig {
        silent_share: 0.0,
        ..SimConfig::default()
    };
    let fixed = SimConfig {
        fix_cursor: true,
        ..buggy.clone()
    };
    let c = reqwest::Client::new();
    let q = [
        ("start_time", DAY_START),
        ("end_time", HOURS_2),
        ("page_size", "3"),
    ];
    let want = expected_site(
        &buggy,
        site,
        ms("2025-10-16T00:00:00Z"),
        ms("2025-10-16T02:00:00Z"),
        TimeFormat::Naive,
    );
    assert_eq!(want.len(), 10 * 24);

    // ACE's bug: the second page, which starts and ends in the first bucket,
    // hands back the cursor it was given, and the third page repeats it.
    let base = start(buggy).await;
    let (p1, c1, _) = ace_page(&c, &base, site, &q, None).await;
    let c1 = c1.unwrap();
    let (p2, c2, body2) = ace_page(&c, &base, site, &q, Some(&c1)).await;
    assert_eq!(
        c2.as_deref(),
        Some(c1.as_str()),
        "the second page's cursor equals the first's"
    );
    let (p3, _, body3) = ace_page(&c, &base, site, &q, c2.as_deref()).await;
    assert_eq!((body3, p3.clone()), (body2, p2.clone()));
    assert_eq!([p1, p2].concat(), want[..6].to_vec());
    let (rows, cursors, _) = ace_walk(&c, &base, site, &q, 20).await;
    assert_eq!(rows.len(), 60, "never ends on its own");
    assert!(cursors.iter().all(|k| *k == c1));
    // The cursor decodes to ACE's JSON; unpadded and url-safe forms work too.
    let padded = c1.clone();
    assert_eq!(
        padded,
        base64_std(r#"{"offset": 3, "timestamp": "2025-10-16T00:00:00"}"#)
    );
    let unpadded = padded
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let (again, _, _) = ace_page(&c, &base, site, &q, Some(&unpadded)).await;
    assert_eq!(again, want[3..6].to_vec());
    // A repaired cursor (incoming offset + rows) is honoured.
    let repaired = base64_std(r#"{"offset": 6, "timestamp": "2025-10-16T00:00:00"}"#);
    let (next, _, _) = ace_page(&c, &base, site, &q, Some(&repaired)).await;
    assert_eq!(next, want[6..9].to_vec());

    // --fix-cursor: one walk covers the site once, every row exactly once.
    let base = start(fixed).await;
    let (rows, cursors, _) = ace_walk(&c, &base, site, &q, 1000).await;
    assert_eq!(rows, want);
    assert_eq!(cursors.len(), want.len().div_ceil(3) - 1);
    let unique: HashSet<(String, String)> =
        rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    assert_eq!(unique.len(), rows.len());
}

#[tokio::test]
async fn faithful_configured_points() {
    let cfg = SimConfig::default();
    let base = start(cfg.clone()).await;
    let c = reqwest::Client::new();
    let site = "cp-25pts";
    let u = url(&base, &["sites", site, "configured_points"]);
    let (status, body) = get_text(&c, u.clone(), &[], Some(TOKEN)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["page"].as_u64(),
            v["pages"].as_u64(),
            v["per_page"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(1), Some(3), Some(10), Some(25))
    );

    let mut names = Vec::new();
    for page in 1..=3 {
        let p = page.to_string();
        let (status, body) = get_text(
            &c,
            u.clone(),
            &[("page", p.as_str()), ("per_page", "10")],
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["page"], page);
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), if page < 3 { 10 } else { 5 });
        for it in items {
            assert_eq!(it["site"], site);
            assert_eq!(it["collect_enabled"], true);
            assert_eq!(it["collect_interval"], 30);
            names.push(it["name"].as_str().unwrap().to_owned());
        }
    }
    // The whole catalogue, silent points included.
    assert_eq!(names, catalogue(site, &cfg));
    assert_eq!(
        names.len(),
        reporting_points(site, &cfg).len() + silent_points(site, &cfg).len()
    );
    let (_, body) = get_text(&c, u.clone(), &[("page", "4")], Some(TOKEN)).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["items"],
        serde_json::json!([])
    );
    let (_, body) = get_text(&c, u.clone(), &[("per_page", "100000")], Some(TOKEN)).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["items"].as_array().unwrap().len(), v["pages"].as_u64()),
        (25, Some(1))
    );
    // A plain name gets --site-points.
    let (_, body) = get_text(
        &c,
        url(&base, &["sites", "plain", "configured_points"]),
        &[("per_page", "2")],
        Some(TOKEN),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["pages"].as_u64()),
        (Some(50), Some(25))
    );

    for bad in [
        ("per_page", "3"),
        ("per_page", "25"),
        ("page", "0"),
        ("page", "x"),
    ] {
        let (status, body) = get_text(&c, u.clone(), &[bad], Some(TOKEN)).await;
        assert_eq!(status, 400, "{bad:?}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["errors"][bad.0].is_string());
    }

    let slow = start(SimConfig {
        collect_interval_secs: 60,
        ..SimConfig::default()
    })
    .await;
    let (_, body) = get_text(
        &c,
        url(&slow, &["sites", site, "configured_points"]),
        &[("per_page", "2")],
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["items"][0]["collect_interval"],
        60
    );
}

#[tokio::test]
async fn faithful_point_endpoint_matches_the_site_walk() {
    let cfg = SimConfig::default();
    let base = start(cfg.clone()).await;
    let c = reqwest::Client::new();
    // The site name puts a comma and a space into every point name.
    let site = "Bldg 7, East-12pts";
    let q = [
        ("start_time", DAY_START),
        ("end_time", HOURS_2),
        ("page_size", "50"),
    ];
    let (walk, _, _) = ace_walk(&c, &base, site, &q, 100).await;
    assert_eq!(walk.len(), 9 * 24);
    let range = [("start_time", DAY_START), ("end_time", HOURS_2)];
    for name in reporting_points(site, &cfg) {
        assert!(
            name.contains('/') && name.contains(',') && name.contains(' '),
            "{name}"
        );
        let (status, body) = get_text(
            &c,
            url(&base, &["points", &name, "timeseries"]),
            &range,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "unpaginated: {body}");
        let mine: Vec<Row> = walk.iter().filter(|r| r.0 == name).cloned().collect();
        assert_eq!(mine.len(), 24);
        assert_eq!(rows_of(&v), mine, "{name}");
    }
    // Encoded by hand, commas too.
    let name = &reporting_points(site, &cfg)[0];
    let enc = name
        .replace('/', "%2F")
        .replace(' ', "%20")
        .replace(',', "%2C");
    let r = c
        .get(format!(
            "{base}/points/{enc}/timeseries?start_time={DAY_START}&end_time={HOURS_2}"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rows_of(&r.json().await.unwrap()).len(), 24);

    // A silent point is known but has no data.
    for name in silent_points(site, &cfg) {
        let (status, body) = get_text(
            &c,
            url(&base, &["points", &name, "timeseries"]),
            &range,
            Some(TOKEN),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"point_samples":[]}"#),
            "{name}"
        );
    }
    // A year of one point, unpaginated.
    let (status, body) = get_text(
        &c,
        url(&base, &["points", name, "timeseries"]),
        &[("start_time", "2025-01-01"), ("end_time", "2026-01-01")],
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        rows_of(&serde_json::from_str(&body).unwrap()).len(),
        105_120
    );

    // Not in the catalogue: 404.
    let beyond = ace_sim::default_point(site, 12);
    let forged = name
        .replace("Zone_Temp", "Zone_Tmp")
        .replace("Supply_Air_Temp", "Supply_Air_Tmp");
    assert_ne!(&forged, name);
    for bad in [
        beyond.as_str(),
        forged.as_str(),
        "no/such/point",
        "ses/ses_demo/x.points.y",
    ] {
        let (status, body) = get_text(
            &c,
            url(&base, &["points", bad, "timeseries"]),
            &range,
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 404, "{bad}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["detail"].is_string());
    }
}

#[tokio::test]
async fn faithful_error_bodies() {
    let base = start(SimConfig::default()).await;
    let c = reqwest::Client::new();
    let range = [("start_time", DAY_START), ("end_time", HOURS_2)];
    let point = ace_sim::default_point("demo", 0);
    let endpoints = [
        url(&base, &["sites", "demo", "timeseries", "paginated"]),
        url(&base, &["points", &point, "timeseries"]),
        url(&base, &["sites", "demo", "configured_points"]),
    ];
    for u in &endpoints {
        assert_eq!(
            get_text(&c, u.clone(), &range, Some(TOKEN)).await.0,
            200,
            "{u}"
        );
        let (status, body) = get_text(&c, u.clone(), &range, None).await;
        assert_eq!(status, 401, "{u}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({"detail": "Not authenticated"})
        );
        let (status, body) = get_text(&c, u.clone(), &range, Some("wrong")).await;
        assert_eq!(status, 500, "{u}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({"message": "An unhandled exception occurred."})
        );
    }
    let null_site = serde_json::json!({"id": null, "name": null, "description": null, "address": null, "client": null});
    let unknown_point = ace_sim::default_point("unknown-site", 0);
    for u in [
        url(&base, &["sites", "unknown-site", "timeseries", "paginated"]),
        url(&base, &["sites", "unknown-site", "configured_points"]),
        url(&base, &["points", &unknown_point, "timeseries"]),
    ] {
        let (status, body) = get_text(&c, u.clone(), &range, Some(TOKEN)).await;
        assert_eq!(status, 403, "{u}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            null_site,
            "{u}"
        );
    }
    let (status, body) = get_text(
        &c,
        url(&base, &["points", "nope", "timeseries"]),
        &range,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let r = c
        .post(format!("{base}/points/get_timeseries"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"points": [{"name": point}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn faithful_faults_apply_to_the_point_endpoint() {
    let c = reqwest::Client::new();
    let range = [("start_time", DAY_START), ("end_time", HOURS_2)];
    let base = start(SimConfig {
        rate_429: 1.0,
        ..SimConfig::default()
    })
    .await;
    let point = ace_sim::default_point("demo", 0);
    let r = c
        .get(url(&base, &["points", &point, "timeseries"]))
        .query(&range)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // configured_points is not a timeseries endpoint: no faults.
    assert_eq!(
        get_text(
            &c,
            url(&base, &["sites", "demo", "configured_points"]),
            &[],
            Some(TOKEN)
        )
        .await
        .0,
        200
    );

    let base = start(SimConfig::default()).await;
    let failing = ace_sim::default_point("always-fails", 0);
    assert_eq!(
        get_text(
            &c,
            url(&base, &["points", &failing, "timeseries"]),
            &range,
            Some(TOKEN)
        )
        .await
        .0,
        503
    );
    c.post(format!("{base}/faults/outage?secs=30"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_text(
            &c,
            url(&base, &["points", &point, "timeseries"]),
            &range,
            Some(TOKEN)
        )
        .await
        .0,
        503
    );
    let stats = get_json(&c, &format!("{base}/__stats")).await;
    assert_eq!(stats["faults"], 2);
}

#[tokio::test]
async fn faithful_stats_count_bytes_rows_and_requests() {
    let base = start(SimConfig::default()).await;
    let c = reqwest::Client::new();
    let q = [
        ("start_time", DAY_START),
        ("end_time", HOURS_2),
        ("page_size", "50"),
    ];
    let (rows_a, _, bodies_a) = ace_walk(&c, &base, "sa-8pts", &q, 100).await;
    let (rows_b, _, bodies_b) = ace_walk(&c, &base, "sb-4pts", &q, 100).await;
    let point = reporting_points("sb-4pts", &SimConfig::default()).remove(0);
    let (status, point_body) = get_text(
        &c,
        url(&base, &["points", &point, "timeseries"]),
        &q[..2],
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    // Not counted as served: a 401, and configured_points.
    assert_eq!(
        get_text(
            &c,
            url(&base, &["sites", "sa-8pts", "timeseries", "paginated"]),
            &q,
            None
        )
        .await
        .0,
        401
    );
    get_text(
        &c,
        url(&base, &["sites", "sa-8pts", "configured_points"]),
        &[],
        Some(TOKEN),
    )
    .await;

    let len = |bodies: &[String]| bodies.iter().map(|b| b.len() as u64).sum::<u64>();
    let stats = get_json(&c, &format!("{base}/__stats")).await;
    let (a_bytes, b_bytes) = (len(&bodies_a), len(&bodies_b) + point_body.len() as u64);
    assert_eq!(stats["bytes_served"].as_u64(), Some(a_bytes + b_bytes));
    assert_eq!(
        stats["rows_served"].as_u64(),
        Some((rows_a.len() + rows_b.len() + 24) as u64)
    );
    assert_eq!(
        stats["requests_paginated"].as_u64(),
        Some((bodies_a.len() + bodies_b.len() + 1) as u64)
    );
    assert_eq!(stats["requests_point"], 1);
    assert_eq!(stats["requests_configured_points"], 1);
    assert_eq!(
        stats["requests"].as_u64(),
        Some((bodies_a.len() + bodies_b.len() + 2) as u64)
    );
    assert_eq!(
        stats["pages_ok"].as_u64(),
        Some((bodies_a.len() + bodies_b.len() + 1) as u64)
    );
    let by_site: BTreeMap<String, Value> =
        serde_json::from_value(stats["by_site"].clone()).unwrap();
    assert_eq!(by_site.len(), 2, "{by_site:?}");
    assert_eq!(by_site["sa-8pts"]["bytes"].as_u64(), Some(a_bytes));
    assert_eq!(
        by_site["sa-8pts"]["rows"].as_u64(),
        Some(rows_a.len() as u64)
    );
    assert_eq!(
        by_site["sa-8pts"]["requests"].as_u64(),
        Some(bodies_a.len() as u64 + 1)
    );
    assert_eq!(by_site["sb-4pts"]["bytes"].as_u64(), Some(b_bytes));
    assert_eq!(
        by_site["sb-4pts"]["rows"].as_u64(),
        Some(rows_b.len() as u64 + 24)
    );
    assert_eq!(
        by_site["sb-4pts"]["requests"].as_u64(),
        Some(bodies_b.len() as u64 + 1)
    );
}

#[tokio::test]
async fn kind_mode_point_endpoint_and_configured_points() {
    let base = start(kind()).await;
    let c = reqwest::Client::new();
    // Any name is valid; times carry a Z; bad parameters are 422s.
    let name = "ses/ses_x/odd name, with comma";
    let range = [
        ("start_time", "2025-10-16T00:00:00Z"),
        ("end_time", "2025-10-16T01:00:00Z"),
    ];
    let (status, body) = get_text(
        &c,
        url(&base, &["points", name, "timeseries"]),
        &range,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let want: Vec<Row> = samples(
        "x",
        name,
        ms("2025-10-16T00:00:00Z"),
        ms("2025-10-16T01:00:00Z"),
        INTERVAL_MS,
    )
    .into_iter()
    .map(|(t, v)| (name.to_owned(), format_time(t), v))
    .collect();
    assert_eq!(rows_of(&serde_json::from_str(&body).unwrap()), want);
    assert_eq!(
        get_text(
            &c,
            url(&base, &["points", name, "timeseries"]),
            &range[..1],
            Some(TOKEN)
        )
        .await
        .0,
        422
    );
    let (status, body) = get_text(
        &c,
        url(&base, &["sites", "demo", "configured_points"]),
        &[],
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["total"], 10);
    assert_eq!(
        get_text(
            &c,
            url(&base, &["sites", "demo", "configured_points"]),
            &[("per_page", "3")],
            Some(TOKEN)
        )
        .await
        .0,
        422
    );
}

#[test]
fn lib_catalogue_functions() {
    let cfg = SimConfig::default();
    assert_eq!(ace_sim::site_size("bldg-200pts", &cfg), 200);
    assert_eq!(ace_sim::site_size("bldg", &cfg), 50);
    assert_eq!(
        reporting_points("bldg-200pts", &cfg),
        default_points("bldg-200pts", 150)
    );
    assert_eq!(silent_points("bldg-200pts", &cfg).len(), 50);
    assert!(catalogue("bldg-200pts", &cfg)
        .iter()
        .all(|p| p.starts_with("ses/ses_bldg-200pts/")));
    assert_eq!(
        format_naive(ms("2026-08-07T16:25:00Z")),
        "2026-08-07T16:25:00"
    );
}

/// Release-mode throughput over HTTP:
/// `cargo test -p ace-sim --release --test sim -- --ignored http_site_year_speed --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn http_site_year_speed() {
    let base = start(SimConfig {
        silent_share: 0.0,
        ..SimConfig::default()
    })
    .await;
    let c = reqwest::Client::new();
    let q = [
        ("start_time", "2025-01-01"),
        ("end_time", "2026-01-01"),
        ("page_size", "500000"),
    ];
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let (mut bytes, mut pages) = (0usize, 0);
    loop {
        let mut qq = q.to_vec();
        if let Some(cur) = cursor.as_deref() {
            qq.push(("cursor", cur));
        }
        let body = c
            .get(url(
                &base,
                &["sites", "perf-200pts", "timeseries", "paginated"],
            ))
            .query(&qq)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bytes += body.len();
        pages += 1;
        let tail = std::str::from_utf8(&body[body.len().saturating_sub(200)..]).unwrap_or("");
        match tail.rfind("\"next_cursor\":\"") {
            Some(at) => {
                let rest = &tail[at + 15..];
                cursor = Some(rest[..rest.find('"').unwrap()].to_owned());
            }
            None => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = get_json(&c, &format!("{base}/__stats")).await;
    let rows = stats["rows_served"].as_u64().unwrap();
    assert_eq!(rows, 200 * 365 * 288);
    println!(
        "HTTP: {rows} rows, {pages} pages, {:.0} MB in {secs:.2} s = {:.2} M rows/s",
        bytes as f64 / 1e6,
        rows as f64 / secs / 1e6
    );
}
