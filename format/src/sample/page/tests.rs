//! The fast path against serde_json on generated pages, the page rules and
//! the timestamp forms.

use proptest::prelude::*;

use super::super::fast;
use super::*;

const POINT: &str = "ses/site/192.168.96.3/n4/AHU4.points.Zone_Temp";
const START: EpochMs = EpochMs(1_761_955_200_000); // 2025-11-01T00:00:00Z
const END: EpochMs = EpochMs(START.ms() + 86_400_000);

/// Names a job may ask for: same length as [`POINT`] but one byte apart, a
/// longer one, one JSON must escape, a short one.
const JOB_POOL: [&str; 5] = [
    POINT,
    "ses/site/192.168.96.3/n4/AHU5.points.Zone_Temp",
    "ses/site/192.168.96.3/n4/AHU4.points.Supply_Fan_Status",
    "other/é\"q\\",
    "x",
];

/// Names on a page that no job asks for, each close to a job name.
const OTHERS: [&str; 4] = [
    "ses/site/192.168.96.3/n4/AHU4.points.Zone_Temp2",
    "ses/site/192.168.96.3/n4/AHU4.points.Zone_Tem",
    "ses/site/192.168.96.3/n4/AHU6.points.Zone_Temp",
    "é",
];

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
    /// Top-level keys: 0 all in order, 1 reversed, 2 without cursor/has_more
    /// (the per-point endpoint).
    top: u8,
    /// Samples without `"name"` (the per-point endpoint).
    nameless: bool,
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

type Row = (String, String, String);

fn render(samples: &[Row], cursor: &Option<String>, more: bool, st: &Style) -> Vec<u8> {
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
        if st.nameless {
            kv.retain(|f| !f.starts_with(&q("name")));
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

/// The job: a subset of [`JOB_POOL`], most often one point or a few.
fn job() -> impl Strategy<Value = Vec<String>> {
    let pool = || JOB_POOL.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    prop_oneof![
        2 => Just(vec![POINT.to_owned()]),
        1 => prop::sample::select(pool()).prop_map(|p| vec![p]),
        3 => prop::sample::subsequence(pool(), 0..=JOB_POOL.len()),
    ]
}

/// A row's name: mostly plain, rarely one JSON must escape (which sends the
/// page to serde_json).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => Just(POINT.to_owned()),
        40 => prop::sample::select(vec![JOB_POOL[1], JOB_POOL[2], JOB_POOL[4]]).prop_map(str::to_owned),
        40 => prop::sample::select(&OTHERS[..]).prop_map(str::to_owned),
        1 => Just(JOB_POOL[3].to_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => (-100_000i64..100_000).prop_map(|m| format!("{}.{}", m / 10, (m % 10).abs())),
        20 => prop::sample::select(vec!["active", "inactive", "NaN", "-0.0", "1e3", "", "7", "é"]).prop_map(str::to_owned),
        8 => "[ !#-\\[\\]-~]{0,6}",
        2 => "[ -~]{0,6}",
        1 => Just("é\"\\\n\u{1F600}".to_owned()),
    ]
}

/// `digits` digits of a fraction (from `seed`).
fn fraction(seed: u64, digits: usize) -> String {
    format!("{seed:020}")[20 - digits.min(20)..].to_owned()
}

/// A time around the range in one of the forms the parser meets; about one
/// in a hundred is invalid.
fn time() -> impl Strategy<Value = String> {
    let at = (START.ms() - 3_600_000..END.ms() + 3_600_000).prop_map(|t| t / 1000 * 1000);
    let naive = |ms: i64| crate::time::format_rfc3339(ms).replace('Z', "");
    (at, 0u16..200, 1usize..=9, any::<u64>()).prop_map(move |(ms, form, k, seed)| {
        let n = naive(ms);
        let f = fraction(seed, k);
        match form {
            0..40 => n,
            40..60 => format!("{n}Z"),
            60..90 => format!("{n}.{f}"),
            90..110 => format!("{n}.{f}Z"),
            110..120 => format!("{n}+02:00"),
            120..130 => format!("{}z", n.replace('T', "t")),
            130..140 => format!("{}.{f}", n.replace('T', " ")),
            140..145 => format!("{n}.{}Z", fraction(seed, 12)),
            145 => "2025-11-31T00:00:00".to_owned(),
            146 | 147 => format!("{}:60", &n[..16]),
            148 => format!("{n}."),
            _ => n,
        }
    })
}

fn style() -> impl Strategy<Value = Style> {
    let flag = || prop::bool::weighted(0.1);
    (
        (flag(), flag(), flag(), flag(), flag()),
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 0, 1, 2]),
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
    )
        .prop_map(
            |((spaces, escapes, extra, bare_values, nameless), order, top)| Style {
                spaces,
                escapes,
                order,
                extra,
                bare_values,
                top,
                nameless,
            },
        )
}

fn page_parts() -> impl Strategy<Value = (Vec<Row>, Option<String>, bool)> {
    (
        prop::collection::vec((name(), value(), time()), 0..40),
        prop::option::of("[A-Za-z0-9_=-]{1,12}"),
        any::<bool>(),
    )
}

/// The signature `parse_page` and `parse_page_serde` share.
type Parser =
    fn(&[u8], &PointSet, EpochMs, EpochMs, &mut TimeParser, &mut [Samples]) -> Result<Page, String>;

/// Both parsers on one body, each from a fresh state: outs that already
/// hold a sample, so a rewind that goes too far shows.
fn both(body: &[u8], job: &[String]) -> [(Result<Page, String>, Vec<Samples>); 2] {
    let points = PointSet::new(job);
    let run = |f: Parser| {
        let mut outs = vec![Samples::from_raw([(START - 1, "old")]); job.len()];
        let page = f(
            body,
            &points,
            START,
            END,
            &mut TimeParser::default(),
            &mut outs,
        );
        if page.is_err() {
            assert!(outs.iter().all(|o| o.len() == 1), "{page:?}");
        }
        (page, outs)
    };
    [run(parse_page), run(parse_page_serde)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn fast_path_equals_serde_json(job in job(), (samples, cursor, more) in page_parts(), st in style()) {
        let body = render(&samples, &cursor, more, &st);
        let [fast, serde] = both(&body, &job);
        prop_assert_eq!(fast, serde);
    }

    #[test]
    fn mutated_pages_agree(job in job(), (samples, cursor, more) in page_parts(), top in prop::sample::select(vec![0u8, 2]), at in any::<prop::sample::Index>(), byte in any::<u8>(), delete in any::<bool>()) {
        let mut body = render(&samples, &cursor, more, &Style { top, ..Style::default() });
        let i = at.index(body.len());
        if delete { body.remove(i); } else { body[i] = byte; }
        let [fast, serde] = both(&body, &job);
        prop_assert_eq!(fast, serde);
    }

    #[test]
    fn upstream_shaped_pages_take_the_fast_path(job in job(), (samples, cursor, more) in page_parts(), top in prop::sample::select(vec![0u8, 2]), nameless in any::<bool>()) {
        let escapes = |s: &String| s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
        let plain: Vec<_> = samples.into_iter()
            .filter(|(n, v, t)| ![n, v, t].into_iter().any(escapes))
            .filter(|(_, _, t)| TimeParser::default().parse(t).is_some())
            .collect();
        let nameless = nameless && job.len() == 1;
        let body = render(&plain, &cursor, more, &Style { top, nameless, ..Style::default() });
        let mut outs = vec![Samples::new(); job.len()];
        let page = fast::parse(&body, &PointSet::new(&job), START, END, &mut TimeParser::default(), &mut outs);
        prop_assert!(page.is_some());
    }

    /// Every form against an independent reckoning and against chrono.
    #[test]
    fn times_in_every_form(secs in -2_208_988_800i64..4_102_444_800, form in 0u8..6, k in 1usize..=12, seed in any::<u64>(), off_min in -1439i64..1440) {
        let ms = secs * 1000;
        let naive = crate::time::format_rfc3339(ms).replace('Z', "");
        let f = fraction(seed, k);
        let frac_ms: i64 = format!("{f:0<3}")[..3].parse().unwrap();
        let off = format!("{}{:02}:{:02}", if off_min < 0 { '-' } else { '+' }, off_min.abs() / 60, off_min.abs() % 60);
        let (s, want) = match form {
            0 => (naive.clone(), ms),
            1 => (format!("{naive}Z"), ms),
            2 => (format!("{naive}.{f}"), ms + frac_ms),
            3 => (format!("{naive}.{f}Z"), ms + frac_ms),
            4 => (format!("{}.{f}{off}", naive.replace('T', " ")), ms + frac_ms - off_min * 60_000),
            _ => (format!("{naive}{off}"), ms - off_min * 60_000),
        };
        let mut p = TimeParser::default();
        prop_assert_eq!(p.parse(&s), Some(EpochMs(want)), "{}", s);
        let chrono = parse_rfc3339(&s).or_else(|| parse_rfc3339(&format!("{s}Z")));
        prop_assert_eq!(chrono, Some(EpochMs(want)), "{}", s);
    }
}

#[test]
fn time_forms() {
    let ms = |s: &str| parse_rfc3339(s).unwrap();
    let mut p = TimeParser::default();
    for (s, want) in [
        ("2026-08-07T16:25:00", ms("2026-08-07T16:25:00Z")),
        ("2026-08-07T16:25:00Z", ms("2026-08-07T16:25:00Z")),
        ("2026-08-07T16:25:00z", ms("2026-08-07T16:25:00Z")),
        ("2026-08-07t16:25:00", ms("2026-08-07T16:25:00Z")),
        ("2026-08-07 16:25:00", ms("2026-08-07T16:25:00Z")),
        ("2026-08-07T16:25:00.627593", ms("2026-08-07T16:25:00.627Z")),
        (
            "2026-08-07T16:25:00.627593Z",
            ms("2026-08-07T16:25:00.627Z"),
        ),
        ("2026-08-07T16:25:00.6", ms("2026-08-07T16:25:00.600Z")),
        ("2026-08-07T16:25:00.06Z", ms("2026-08-07T16:25:00.060Z")),
        (
            "2026-08-07T16:25:00.9999999",
            ms("2026-08-07T16:25:00.999Z"),
        ),
        (
            "2026-08-07T16:25:00.999999999Z",
            ms("2026-08-07T16:25:00.999Z"),
        ),
        // Beyond nine digits: chrono's path, still truncated.
        (
            "2026-08-07T16:25:00.99999999999",
            ms("2026-08-07T16:25:00.999Z"),
        ),
        ("2024-02-29T23:59:59.999", ms("2024-02-29T23:59:59.999Z")),
        ("2024-02-29T23:59:59.999Z", ms("2024-03-01T00:00:00Z") - 1),
        ("2026-08-07T18:25:00+02:00", ms("2026-08-07T16:25:00Z")),
        (
            "2026-08-07T14:25:00.5-02:00",
            ms("2026-08-07T16:25:00.500Z"),
        ),
        ("1969-12-31T23:59:59.5", EpochMs(-500)),
        ("1970-01-01T00:00:00", EpochMs(0)),
        // A leap second: chrono's reading (the next second), naive or not.
        ("2016-12-31T23:59:60", ms("2017-01-01T00:00:00Z")),
        ("2016-12-31T23:59:60Z", ms("2017-01-01T00:00:00Z")),
    ] {
        assert_eq!(p.parse(s), Some(want), "{s}");
        assert_eq!(TimeParser::default().parse(s), Some(want), "{s} (fresh)");
    }
    for bad in [
        "",
        "2026-08-07",
        "2026-08-07T16:25",
        "2025-02-29T00:00:00",
        "2025-02-30T00:00:00Z",
        "2025-13-01T00:00:00",
        "2025-00-01T00:00:00",
        "2025-10-16T24:00:00",
        "2025-10-16T24:00:00Z",
        "2025-10-16T12:60:00",
        "2025-10-16T12:00:61",
        "2025-10-16T12:00:00.",
        "2025-10-16T12:00:00.Z",
        "2025-10-16T12:00:00.5ZZ",
        "2025-10-16T12:00:00ZZ",
        "2025-10-16T12:00:00Z+01:00",
        "2025-10-16T12:00:00+24:00",
        "2025-10-16T12:00:00 ",
        "2025-10-16T12:00:00 Z",
        "2025-10-16X12:00:00",
        "2025-1-16T12:00:00Z",
        "-2025-10-16T12:00:00",
        "-0001-10-16T12:00:00Z",
        "+2025-10-16T12:00:00",
        "12025-10-16T12:00:00Z",
        "2025-10-16T1a:00:00",
        "2025-10-16T12:00:00.12a",
        "2025-10-16T12:00:00,5",
        "٢٠٢٥-10-16T12:00:00",
    ] {
        assert_eq!(p.parse(bad), None, "{bad:?}");
        assert_eq!(TimeParser::default().parse(bad), None, "{bad:?} (fresh)");
    }
}

#[test]
fn upstream_forms_take_the_fast_path() {
    let mut p = TimeParser::default();
    for s in [
        "2026-08-07T16:25:00",
        "2026-08-07T16:25:00Z",
        "2026-08-07T16:25:00.627593",
        "2026-08-07T16:25:00.627593Z",
        "2026-08-07 16:25:00.1",
        "2026-08-07T16:25:00.123456789Z",
    ] {
        assert!(
            matches!(p.upstream_form(s.as_bytes()), Upstream::Ms(_)),
            "{s}"
        );
    }
    for s in ["2026-08-07T16:25:00+00:00", "2016-12-31T23:59:60"] {
        assert!(
            matches!(p.upstream_form(s.as_bytes()), Upstream::Other),
            "{s}"
        );
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `(ts, value)` of each sample that holds a number or a text.
fn dump(s: &Samples) -> Vec<(EpochMs, String)> {
    s.iter()
        .map(|x| {
            let v = match x.value {
                super::super::Value::Text(id) | super::super::Value::NonFinite(id) => {
                    s.text(id).to_owned()
                }
                v => v.as_f64().unwrap().to_string(),
            };
            (x.ts, v)
        })
        .collect()
}

#[test]
fn a_site_page_is_demultiplexed() {
    // Time-major, by name, as ACE sends it; the job keeps b and d.
    let body = br#"{"point_samples":[{"name":"a","value":"1","time":"2024-12-31T23:55:00"},{"name":"b","value":"2","time":"2024-12-31T23:55:00"},{"name":"a","value":"3","time":"2025-01-01T00:00:00"},{"name":"b","value":"4","time":"2025-01-01T00:00:00.627593"},{"name":"c","value":"on","time":"2025-01-01T00:00:00"},{"name":"d","value":"off","time":"2025-01-01T00:00:00"},{"name":"a","value":"5","time":"2025-01-01T00:05:00Z"},{"name":"b","value":"6","time":"2025-01-01T00:05:00Z"},{"name":"d","value":"7","time":"2025-01-01T00:05:00"}],"next_cursor":"c2","has_more":true}"#;
    let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let points = PointSet::new(&names(&["b", "d"]));
    for (f, spaced) in [
        (parse_page as Parser, false),
        (parse_page_serde, false),
        (parse_page, true),
    ] {
        let body = match spaced {
            true => String::from_utf8(body.to_vec())
                .unwrap()
                .replace(',', ", ")
                .into_bytes(),
            false => body.to_vec(),
        };
        let mut outs = vec![Samples::new(), Samples::new()];
        let page = f(
            &body,
            &points,
            start,
            start + 86_400_000,
            &mut TimeParser::default(),
            &mut outs,
        )
        .unwrap();
        assert_eq!(
            page,
            Page {
                next_cursor: Some("c2".into()),
                has_more: true,
                rows: 9,
                kept: 4,
                first_ts: Some(start - 300_000),
                last_ts: Some(start + 300_000),
                last_run: 3,
            }
        );
        assert_eq!(
            dump(&outs[0]),
            [(start + 627, "4".into()), (start + 300_000, "6".into())]
        );
        assert_eq!(
            dump(&outs[1]),
            [(start, "off".into()), (start + 300_000, "7".into())]
        );
    }
}

#[test]
fn the_point_endpoint_parses_with_or_without_names() {
    let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let one = PointSet::new(&names(&["a/b"]));
    let two = PointSet::new(&names(&["a/b", "c"]));
    let named = br#"{"point_samples":[{"name":"a/b","value":"1.5","time":"2025-01-01T00:00:00"}]}"#;
    let bare = br#"{"point_samples":[{"value":"1.5","time":"2025-01-01T00:00:00"},{"value":"2","time":"2025-01-01T00:05:00"}]}"#;
    let empty = br#"{"point_samples":[]}"#;
    for f in [parse_page as Parser, parse_page_serde] {
        let run = |body: &[u8], points: &PointSet| {
            let mut outs = vec![Samples::new(); points.len()];
            let page = f(
                body,
                points,
                start,
                start + 86_400_000,
                &mut TimeParser::default(),
                &mut outs,
            );
            (page, outs)
        };
        let (page, outs) = run(named, &one);
        let page = page.unwrap();
        assert_eq!((page.rows, page.kept, page.has_more), (1, 1, false));
        assert_eq!(page.next_cursor, None);
        assert_eq!(outs[0].len(), 1);
        let (page, outs) = run(bare, &one);
        assert_eq!(page.unwrap().kept, 2);
        assert_eq!(outs[0].len(), 2);
        let (page, outs) = run(bare, &two);
        assert!(page.unwrap_err().contains("without a name"));
        assert!(outs.iter().all(|o| o.is_empty()));
        let (page, _) = run(empty, &two);
        assert_eq!(page.unwrap(), Page::default());
    }
}

#[test]
fn an_error_leaves_every_output_as_it_was() {
    let points = PointSet::new(&names(&["a", "b"]));
    let before = vec![
        Samples::from_raw([(1, "x")]),
        Samples::from_raw([(2, "y"), (3, "z")]),
    ];
    let good = |t: &str| {
        format!(
            r#"{{"name":"a","value":"new","time":"{t}"}},{{"name":"b","value":"9","time":"{t}"}}"#
        )
    };
    let bad_time = format!(
        r#"{{"point_samples":[{},{},{{"name":"zz","value":"1","time":"2025-02-30T00:00:00"}}],"has_more":false}}"#,
        good("2025-01-01T00:00:00"),
        good("2025-01-01T00:05:00")
    );
    let cut = format!(r#"{{"point_samples":[{},"#, good("2025-01-01T00:00:00"));
    for f in [parse_page as Parser, parse_page_serde] {
        for body in [&bad_time, &cut] {
            let mut outs = before.clone();
            let err = f(
                body.as_bytes(),
                &points,
                EpochMs(0),
                EpochMs::MAX,
                &mut TimeParser::default(),
                &mut outs,
            )
            .unwrap_err();
            assert!(body == &cut || err.contains("2025-02-30"), "{err}");
            assert_eq!(outs, before);
            assert_eq!(outs[0].texts().len(), 1);
        }
    }
}

#[test]
fn only_outputs_that_received_samples_reserve() {
    let start = parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let row = |n: &str, i: i64| {
        format!(
            r#"{{"name":"{n}","value":"1","time":"{}"}}"#,
            crate::time::format_rfc3339(start + i * 300_000)
        )
    };
    let rows: Vec<String> = (0..100).map(|i| row("a", i)).collect();
    let body = format!(
        r#"{{"point_samples":[{}],"next_cursor":"c","has_more":true}}"#,
        rows.join(",")
    );
    let mut outs = vec![Samples::new(), Samples::new()];
    let points = PointSet::new(&names(&["a", "b"]));
    let end = start + 30 * 86_400_000;
    parse_page(
        body.as_bytes(),
        &points,
        start,
        end,
        &mut TimeParser::default(),
        &mut outs,
    )
    .unwrap();
    // 100 of 8,640 samples seen: the reservation is capped at 16 times that.
    let cap = outs[0].items.capacity();
    assert!((1_600..=1_700).contains(&cap), "{cap}");
    assert_eq!(outs[1].items.capacity(), 0);
}

#[test]
#[should_panic(expected = "one output per point")]
fn outputs_must_match_the_points() {
    let mut outs = vec![Samples::new()];
    let _ = parse_page(
        b"{\"point_samples\":[]}",
        &PointSet::new(&names(&["a", "b"])),
        EpochMs(0),
        EpochMs(1),
        &mut TimeParser::default(),
        &mut outs,
    );
}

#[test]
fn point_set_lookup() {
    let long = "n".repeat(300);
    let job = names(&[POINT, JOB_POOL[1], JOB_POOL[2], "x", &long, "x"]);
    let set = PointSet::new(&job);
    assert_eq!(set.len(), 6);
    for (i, n) in job.iter().enumerate().take(5) {
        assert_eq!(set.index_of(n.as_bytes()), Some(i as u32), "{n}");
    }
    for n in OTHERS.iter().copied().chain(["", "y", &long[1..]]) {
        assert_eq!(set.index_of(n.as_bytes()), None, "{n}");
    }
    let none = PointSet::new::<String>(&[]);
    assert!(none.is_empty());
    assert_eq!(none.index_of(POINT.as_bytes()), None);
}
