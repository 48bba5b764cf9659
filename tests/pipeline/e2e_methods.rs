//! End to end: method handling in the real runtime. HEAD answers as GET
//! does (status, headers, `Content-Length`) without the body, on every GET
//! route; another method on a known path answers 405 with `Allow`.

use reqwest::{Method, Response};

use crate::e2e::{stack, Stack};

/// `method path` as `token` (none for `None`).
async fn call(s: &Stack, method: &str, token: Option<&str>, path: &str) -> Response {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.http.request(method.clone(), format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// GET and HEAD of `path` agree on status, type and length; HEAD has no body.
async fn head_is_get_without_body(s: &Stack, token: Option<&str>, path: &str, status: u16) {
    let get = call(s, "GET", token, path).await;
    let head = call(s, "HEAD", token, path).await;
    assert_eq!(get.status().as_u16(), status, "GET {path}");
    assert_eq!(head.status(), get.status(), "HEAD {path}");
    let header = |r: &Response, k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
    for k in [
        "content-type",
        "allow",
        "www-authenticate",
        "content-security-policy",
    ] {
        assert_eq!(header(&head, k), header(&get, k), "HEAD {path}: {k}");
    }
    let head_length = header(&head, "content-length");
    let body = get.bytes().await.unwrap();
    assert_eq!(
        head_length,
        Some(body.len().to_string()),
        "HEAD {path} carries the GET's Content-Length"
    );
    assert!(
        head.bytes().await.unwrap().is_empty(),
        "HEAD {path} has no body"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_head_answers_as_get_without_the_body() {
    let s = stack();
    let t = Some(s.token.as_str());
    // The open routes: the page and liveness (HEAD / answered 401 or 404).
    head_is_get_without_body(&s, None, "/", 200).await;
    head_is_get_without_body(&s, t, "/", 200).await;
    head_is_get_without_body(&s, None, "/healthz", 200).await;
    // Token routes whose answer does not change while other tests run.
    head_is_get_without_body(&s, t, "/openapi.json", 200).await;
    let aggregates = "/v1/aggregates?site=no-such-site&point=p&resolution=1d\
        &from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z";
    head_is_get_without_body(&s, t, aggregates, 200).await;
    head_is_get_without_body(&s, t, "/v1/jobs?limit=0", 422).await;
    head_is_get_without_body(&s, t, "/v1/jobs/0123456789abcdef0123456789abcdef", 404).await;
    head_is_get_without_body(&s, t, "/nope", 404).await;
    head_is_get_without_body(&s, None, "/v1/stats", 401).await;
    // A GET whose body varies: the same status and type, and a length.
    for path in ["/v1/jobs", "/v1/dead-letters", "/v1/stats", "/v1/metrics"] {
        let head = call(&s, "HEAD", t, path).await;
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(head.headers().contains_key("content-length"), "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_other_methods_on_known_paths_answer_405_with_allow() {
    let s = stack();
    let t = Some(s.token.as_str());
    // TRACE and methods workers-rs does not know (it reads them as GET).
    for path in ["/", "/healthz"] {
        for method in [
            "TRACE", "POST", "PUT", "DELETE", "OPTIONS", "PURGE", "PROPFIND",
        ] {
            let r = call(&s, method, None, path).await;
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(r.headers()["allow"], "GET, HEAD", "{method} {path}");
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"));
        }
    }
    let id = "/v1/jobs/0123456789abcdef0123456789abcdef";
    let cases = [
        ("PUT", "/v1/jobs".to_owned(), "GET, HEAD, POST"),
        ("PATCH", id.to_owned(), "GET, HEAD, DELETE"),
        ("POST", format!("{id}/result"), "GET, HEAD"),
        ("GET", format!("{id}/retry"), "POST"),
        ("HEAD", format!("{id}/retry"), "POST"),
        ("TRACE", "/v1/stats".to_owned(), "GET, HEAD"),
        ("PURGE", "/v1/metrics".to_owned(), "GET, HEAD"),
        ("DELETE", "/openapi.json".to_owned(), "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let r = call(&s, method, t, &path).await;
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
    }
    // A token path still asks for the token first.
    let r = call(&s, "PUT", None, "/v1/jobs").await;
    assert_eq!(r.status(), 401);
}

/// A GET of `path` with these request headers.
async fn get_with(s: &Stack, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = s.http.get(format!("{}{path}", s.url)).bearer_auth(&s.token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_the_result_answers_byte_ranges() {
    let s = stack();
    let site = "e2e-ranges";
    let body = serde_json::json!({"site": site, "points": ace_sim::default_points(site, 2),
        "start": "2025-04-01T00:00:00Z", "end": "2025-04-05T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    s.wait(&id, 120, |j| j["status"] == "completed").await;
    let path = format!("/v1/jobs/{id}/result");
    let whole = get_with(&s, &path, &[]).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    let all = whole.bytes().await.unwrap();
    let size = all.len();
    let header = |r: &Response, k: &str| r.headers()[k].to_str().unwrap().to_owned();
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=-8", size - 8, size - 1),
        ("bytes=10-", 10, size - 1),
        ("bytes=5-999999999", 5, size - 1),
    ] {
        let r = get_with(&s, &path, &[("range", range)]).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {first}-{last}/{size}")
        );
        assert_eq!(header(&r, "content-length"), (last - first + 1).to_string());
        assert_eq!(header(&r, "etag"), etag);
        assert_eq!(r.bytes().await.unwrap(), all.slice(first..=last), "{range}");
    }
    let past = get_with(&s, &path, &[("range", &format!("bytes={size}-"))]).await;
    assert_eq!(past.status(), 416);
    assert_eq!(header(&past, "content-range"), format!("bytes */{size}"));
    // Another version named in If-Range: the whole object.
    let stale = get_with(
        &s,
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap(), all);
    let head = call(&s, "HEAD", Some(&s.token), &path).await;
    assert_eq!(header(&head, "content-length"), size.to_string());
    assert_eq!(header(&head, "accept-ranges"), "bytes");
}

/// Lines of the Worker's log (the stack's `worker.log`) holding `needle`.
fn worker_log_lines(needle: &str) -> usize {
    let state = std::env::var("TSP_STATE").expect("TSP_STATE (tsp_up)");
    let log = std::fs::read_to_string(format!("{state}/worker.log")).unwrap_or_default();
    log.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_head_of_a_converted_result_opens_no_stream() {
    let s = stack();
    let site = "e2e-head-csv";
    let body = serde_json::json!({"site": site, "points": ace_sim::default_points(site, 2),
        "start": "2025-04-01T00:00:00Z", "end": "2025-04-03T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    s.wait(&id, 120, |j| j["status"] == "completed").await;
    let before = worker_log_lines("Critical error");
    for (format, media) in [("csv", "text/csv"), ("jsonl", "application/x-ndjson")] {
        let path = format!("/v1/jobs/{id}/result?format={format}");
        let head = call(&s, "HEAD", Some(&s.token), &path).await;
        assert_eq!(head.status(), 200, "{format}");
        let ct = head.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(media), "{ct}");
        assert!(head.bytes().await.unwrap().is_empty());
    }
    // workerd writes its log line as the request ends: give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        worker_log_lines("Critical error"),
        before,
        "no stream dropped mid-way"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_the_parquet_file_answers_head_ranges_and_browsers() {
    let s = stack();
    let site = "e2e-parquet";
    let body = serde_json::json!({"site": site, "points": ace_sim::default_points(site, 3),
        "start": "2025-04-01T00:00:00Z", "end": "2025-04-04T00:00:00Z"});
    let (status, created) = s.post_job(&s.token, &body.to_string()).await;
    assert_eq!(status, 202, "{created}");
    let id = created["job_id"].as_str().unwrap().to_owned();
    let view = s.wait(&id, 120, |j| j["status"] == "completed").await;
    let path = format!("/v1/jobs/{id}/result.parquet");
    assert_eq!(view["result"]["parquet"]["url"], path.as_str());
    let header = |r: &Response, k: &str| r.headers()[k].to_str().unwrap().to_owned();
    let head = call(&s, "HEAD", Some(&s.token), &path).await;
    assert_eq!(head.status(), 200);
    let size = header(&head, "content-length");
    assert_eq!(size, view["result"]["parquet"]["bytes"].to_string());
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert_eq!(
        header(&head, "content-type"),
        "application/vnd.apache.parquet"
    );
    assert!(header(&head, "last-modified").ends_with(" GMT"));
    let etag = header(&head, "etag");
    let whole = get_with(&s, &path, &[]).await;
    assert_eq!(header(&whole, "etag"), etag, "a stable ETag");
    let all = whole.bytes().await.unwrap();
    assert_eq!(all.len().to_string(), size);
    assert!(all.starts_with(b"PAR1") && all.ends_with(b"PAR1"));
    // The footer's length and magic, as a reader asks first.
    let tail = get_with(&s, &path, &[("range", "bytes=-8")]).await;
    assert_eq!(tail.status(), 206);
    let n = all.len();
    assert_eq!(
        header(&tail, "content-range"),
        format!("bytes {}-{}/{n}", n - 8, n - 1)
    );
    assert_eq!(tail.bytes().await.unwrap(), all.slice(n - 8..));
    let past = get_with(&s, &path, &[("range", &format!("bytes={n}-"))]).await;
    assert_eq!(past.status(), 416);
    let same = get_with(&s, &format!("/v1/jobs/{id}/result?format=parquet"), &[]).await;
    assert_eq!(
        same.bytes().await.unwrap(),
        all,
        "?format=parquet is the same file"
    );
    let browser = get_with(
        &s,
        &path,
        &[("origin", "https://app.example"), ("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(browser.status(), 206);
    let exposed = header(&browser, "access-control-expose-headers");
    for k in ["Content-Range", "Content-Length", "Accept-Ranges", "ETag"] {
        assert!(exposed.contains(k), "{exposed}");
    }
    let stranger = call(&s, "GET", Some("wrong-token"), &path).await;
    assert_eq!(stranger.status(), 401);
}

#[tokio::test]
#[ignore = "needs the local stack: scripts/test.sh"]
async fn e2e_methods_browsers_of_allowed_origins_get_cors_and_preflights() {
    // scripts/stack.sh sets CORS_ALLOWED_ORIGINS=https://app.example.
    let s = stack();
    let path = "/v1/jobs";
    let preflight = |origin: &'static str| {
        s.http
            .request(Method::OPTIONS, format!("{}{path}", s.url))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, range")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 204);
    let h = |r: &Response, k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        h(&ok, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert!(h(&ok, "access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    let allowed = h(&ok, "access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("Authorization") && allowed.contains("Range"),
        "{allowed}"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert_ne!(other.status(), 204);
    assert_eq!(h(&other, "access-control-allow-origin"), None);
    // A real request from the allowed origin may read the range headers;
    // from another origin it gets no CORS headers.
    let get = get_with(&s, path, &[("origin", "https://app.example")]).await;
    assert_eq!(get.status(), 200);
    assert_eq!(
        h(&get, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    let exposed = h(&get, "access-control-expose-headers").unwrap();
    for k in ["Content-Range", "Content-Length", "Accept-Ranges", "ETag"] {
        assert!(exposed.contains(k), "{exposed}");
    }
    let foreign = get_with(&s, path, &[("origin", "https://evil.example")]).await;
    assert_eq!(h(&foreign, "access-control-allow-origin"), None);
}
