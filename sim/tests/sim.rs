//! End-to-end tests of the simulator over real HTTP (port 0, reqwest).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ace_sim::{default_points, format_time, is_state_point, samples, SimConfig};
use serde_json::Value;

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
    let base = start(SimConfig::default()).await;
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
    let base = start(SimConfig::default()).await;
    let (s, e) = ("2025-10-16T00:00:00Z", "2025-10-16T02:00:00Z");
    let (got, _) = fetch_all(&base, "demo", s, e, 50, &[], Names::None).await;
    assert_eq!(got, expected("demo", &default_points("demo", 10), s, e));
    assert_eq!(got.len(), 10 * 24);
}

#[tokio::test]
async fn full_year_is_eleven_pages() {
    let base = start(SimConfig::default()).await;
    let (s, e) = ("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
    let points = vec!["ses/ses_x/1.2.3.4/n4/B/C.Drivers.Net.AHU1.points.Zone_Temp".to_owned()];
    let (got, pages) = fetch_all(&base, "x", s, e, 10_000, &points, Names::Comma).await;
    assert_eq!((got.len(), pages), (105_120, 11));
    assert_eq!(got, expected("x", &points, s, e));
}

#[tokio::test]
async fn empty_range_is_one_empty_page() {
    let base = start(SimConfig::default()).await;
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
async fn error_statuses() {
    let base = start(SimConfig::default()).await;
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
    let base = start(SimConfig::default()).await;
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
    let base = start(SimConfig::default()).await;
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
