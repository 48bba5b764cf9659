//! The fast path against serde_json on generated pages, and the page rules.

use proptest::prelude::*;

use super::super::fast;
use super::*;

const POINT: &str = "ses/site/192.168.96.3/n4/AHU4.points.Zone_Temp";
const START: EpochMs = 1_761_955_200_000; // 2025-11-01T00:00:00Z
const END: EpochMs = START + 86_400_000;

/// How a generated page departs from the upstream's own bytes.
#[derive(Debug, Clone, Default)]
struct Style {
    /// Whitespace after every token.
    spaces: bool,
    /// Escape the first ASCII character of every string (`\u0061`).
    escapes: bool,
    /// Key order of samples (0 = the upstream's).
    order: u8,
    /// An extra field in every sample and in the page.
    extra: bool,
    /// Values as JSON numbers or null instead of strings (every 4th sample).
    bare_values: bool,
    /// Top-level keys: 0 all in order, 1 reversed, 2 without cursor/has_more.
    top: u8,
}

fn json_str(s: &str, escape: bool) -> String {
    let plain = serde_json::to_string(s).unwrap();
    match s.chars().next() {
        Some(c) if escape && c.is_ascii() && c != '"' && c != '\\' && c >= ' ' => {
            format!("\"\\u{:04x}{}", c as u32, &plain[2..])
        }
        _ => plain,
    }
}

fn render(
    samples: &[(String, String, String)],
    cursor: &Option<String>,
    more: bool,
    st: &Style,
) -> Vec<u8> {
    let sp = if st.spaces { " \n" } else { "" };
    let q = |s: &str| json_str(s, st.escapes);
    let mut items = Vec::new();
    for (i, (name, value, time)) in samples.iter().enumerate() {
        let v = match (st.bare_values && i % 4 == 3, i % 8) {
            (true, 3) => "21.5".to_owned(),
            (true, _) => "null".to_owned(),
            _ => q(value),
        };
        let mut kv = vec![
            format!("{}:{sp}{}", q("name"), q(name)),
            format!("{}:{sp}{v}", q("value")),
            format!("{}:{sp}{}", q("time"), q(time)),
        ];
        match st.order % 3 {
            1 => kv.rotate_left(1),
            2 => kv.swap(0, 2),
            _ => {}
        }
        if st.extra {
            kv.push(format!("{}:{sp}1", q("quality")));
        }
        items.push(format!("{{{sp}{}{sp}}}", kv.join(&format!(",{sp}"))));
    }
    let mut top = vec![format!(
        "{}:{sp}[{sp}{}{sp}]",
        q("point_samples"),
        items.join(&format!(",{sp}"))
    )];
    let cursor = cursor.as_deref().map_or("null".to_owned(), q);
    if st.top != 2 {
        top.push(format!("{}:{sp}{cursor}", q("next_cursor")));
        top.push(format!("{}:{sp}{more}", q("has_more")));
    }
    if st.top == 1 {
        top.reverse();
    }
    if st.extra {
        top.push(format!("{}:{sp}{{\"a\":[1,2]}}", q("total")));
    }
    format!("{{{sp}{}{sp}}}", top.join(&format!(",{sp}"))).into_bytes()
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(POINT.to_owned()),
        1 => Just(format!("{POINT}2")),
        1 => Just(POINT[..POINT.len() - 1].to_owned()),
        1 => Just("other/é\"q\\".to_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-100_000i64..100_000).prop_map(|m| format!("{}.{}", m / 10, (m % 10).abs())),
        2 => prop::sample::select(vec!["active", "inactive", "NaN", "-0.0", "1e3", "", "7"]).prop_map(str::to_owned),
        1 => "[ -~]{0,6}",
        1 => Just("é\"\\\n\u{1F600}".to_owned()),
    ]
}

fn time() -> impl Strategy<Value = String> {
    let fmt = |ms: i64| crate::domain::format_rfc3339(ms);
    prop_oneof![
        8 => (START - 3_600_000..END + 3_600_000).prop_map(move |t| fmt(t / 1000 * 1000)),
        1 => (START..END).prop_map(move |t| fmt(t / 1000 * 1000).replace('Z', ".250Z")),
        1 => (START..END).prop_map(move |t| fmt(t / 1000 * 1000).replace('Z', "+00:00")),
        1 => Just("2025-11-31T00:00:00Z".to_owned()),
    ]
}

fn style() -> impl Strategy<Value = Style> {
    let flag = || prop::bool::weighted(0.15);
    (
        flag(),
        flag(),
        prop::sample::select(vec![0u8, 0, 0, 0, 1, 2]),
        flag(),
        flag(),
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
    )
        .prop_map(|(spaces, escapes, order, extra, bare_values, top)| Style {
            spaces,
            escapes,
            order,
            extra,
            bare_values,
            top,
        })
}

fn page_parts() -> impl Strategy<Value = (Vec<(String, String, String)>, Option<String>, bool)> {
    (
        prop::collection::vec((name(), value(), time()), 0..40),
        prop::option::of("[A-Za-z0-9_=-]{1,12}"),
        any::<bool>(),
    )
}

/// The signature `parse_page` and `parse_page_serde` share.
type Parser =
    fn(&[u8], &str, EpochMs, EpochMs, &mut TimeParser, &mut Samples) -> Result<Page, String>;

/// Both parsers on one body, each from a fresh state.
fn both(body: &[u8]) -> [(Result<Page, String>, Samples); 2] {
    let run = |f: Parser| {
        let mut out = Samples::new();
        let page = f(
            body,
            POINT,
            START,
            END,
            &mut TimeParser::default(),
            &mut out,
        );
        (page, out)
    };
    [run(parse_page), run(parse_page_serde)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fast_path_equals_serde_json((samples, cursor, more) in page_parts(), st in style()) {
        let body = render(&samples, &cursor, more, &st);
        let [fast, serde] = both(&body);
        prop_assert_eq!(fast, serde);
    }

    #[test]
    fn mutated_pages_agree((samples, cursor, more) in page_parts(), at in any::<prop::sample::Index>(), byte in any::<u8>(), delete in any::<bool>()) {
        let mut body = render(&samples, &cursor, more, &Style::default());
        let i = at.index(body.len());
        if delete { body.remove(i); } else { body[i] = byte; }
        let [fast, serde] = both(&body);
        prop_assert_eq!(fast, serde);
    }

    #[test]
    fn upstream_shaped_pages_take_the_fast_path((samples, cursor, more) in page_parts()) {
        let plain: Vec<_> = samples.into_iter()
            .filter(|(n, v, t)| ![n, v, t].iter().any(|s| s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')))
            .filter(|(_, _, t)| t.len() == 20 && !t.starts_with("2025-11-31"))
            .collect();
        let body = render(&plain, &cursor, more, &Style::default());
        let mut out = Samples::new();
        prop_assert!(fast::parse(&body, POINT, START, END, &mut TimeParser::default(), &mut out).is_some());
    }
}
#[test]
fn fast_time_path_agrees_with_chrono() {
    let mut p = TimeParser::default();
    for s in [
        "2025-10-16T00:05:00Z",
        "2025-10-16T23:59:59Z",
        "2024-02-29T12:00:00Z",
        "2025-10-16T00:05:00.250Z",
        "2025-10-16T02:05:00+02:00",
    ] {
        assert_eq!(p.parse(s), parse_rfc3339(s), "{s}");
    }
    assert_eq!(p.parse("2025-02-30T00:00:00Z"), None);
    assert_eq!(p.parse("2025-10-16T24:00:00Z"), None);
}

#[test]
fn page_filters_point_and_range() {
    let body = br#"{"point_samples":[
            {"name":"a","value":"1.5","time":"2025-01-01T00:00:00Z"},
            {"name":"b","value":"2","time":"2025-01-01T00:00:00Z"},
            {"name":"a","value":"x","time":"2025-01-02T00:00:00Z"}],
            "next_cursor":"c2","has_more":true}"#;
    let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let mut out = Samples::new();
    let page = parse_page(
        body,
        "a",
        start,
        start + 86_400_000,
        &mut TimeParser::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(page.skipped, 2);
    assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    assert!(page.has_more);
    assert!(parse_page(
        b"{\"point_samples\":[",
        "a",
        0,
        1,
        &mut TimeParser::default(),
        &mut out
    )
    .is_err());
}
