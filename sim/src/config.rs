//! Simulator settings.
//!
//! One struct serves three masters: the library's [`Default`], the binary's
//! CLI flags, and `ACE_SIM_*` environment variables (so a test script can set
//! faults without rebuilding a command line). The defaults live in constants
//! so the clap attributes and the `Default` impl cannot drift apart.

use clap::Parser;

/// Default fault seed.
pub const DEFAULT_SEED: u64 = 1;
/// Default bearer token clients must present.
pub const DEFAULT_TOKEN: &str = "dev-token";
/// Default sample interval: 5 minutes, like most ACE trend logs.
pub const DEFAULT_INTERVAL_SECS: u64 = 300;
/// Default listen port.
pub const DEFAULT_PORT: u16 = 9100;
/// Default listen host.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default `Retry-After` value on simulated 429s.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// Default site that always answers 503.
pub const DEFAULT_FAIL_SITE: &str = "always-fails";
/// Default length of a fault window, in seconds.
pub const DEFAULT_FAULT_WINDOW_SECS: u64 = 5;
/// Default catalogue size of a site whose name does not end in `-<N>pts`.
pub const DEFAULT_SITE_POINTS: usize = 50;
/// Largest catalogue a site may have (from `--site-points` or a `-<N>pts` name).
pub const MAX_SITE_POINTS: usize = 100_000;
/// Default share of a catalogue (its tail) that reports no data.
pub const DEFAULT_SILENT_SHARE: f64 = 0.25;
/// Default `collect_interval` reported by `configured_points` (real points: 30 s).
pub const DEFAULT_COLLECT_INTERVAL_SECS: u64 = 30;

/// How faithfully the simulator imitates ACE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Answer like the live ACE API: whole-site time-major pages that ignore
    /// `point_names`, naive times, the `{"offset","timestamp"}` cursor with
    /// ACE's bug, 400/403/500 errors, fixed per-site catalogues.
    #[default]
    Faithful,
    /// The older, kinder API: honours `point_names`, point-major pages,
    /// `Z` times, a `{"o":offset}` cursor, 422 errors, any point name valid.
    Kind,
}

/// How faithful mode writes sample times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeFormat {
    /// `2026-08-07T16:25:00`: naive UTC, as ACE sends it.
    #[default]
    Naive,
    /// `2026-08-07T16:25:00.000417`: a deterministic fraction below 1 ms.
    Micros,
    /// `2026-08-07T16:25:00Z`.
    Z,
}

/// Extra `--help` text: the modes, the fault model and the control endpoints.
const AFTER_HELP: &str = "\
Modes (--mode, ACE_SIM_MODE):
  faithful (default) answers like the live ACE API:
    GET  /sites/{site}/timeseries/paginated  every reporting point of the site, ordered by
         (time, name); point_names is ignored; page_size in 3, 10, 50, 100, 500, 1000, 5000,
         10000, 50000, 100000, 300000, 500000; next_cursor = base64 of
         {\"offset\": N, \"timestamp\": \"...\"} with ACE's bug (N omits the incoming offset, so a
         page inside one timestamp bucket returns the cursor it was given; --fix-cursor emits
         the correct one)
    GET  /points/{percent-encoded name}/timeseries  one point, unpaginated (404 if not in the
         site's catalogue; a silent point answers an empty list)
    GET  /sites/{site}/configured_points?page&per_page  the whole catalogue
    POST /points/get_timeseries  always 400
    Times are naive UTC (--time-format). Errors: no token 401, wrong token 500
    {\"message\": ...}, site named unknown* 403 with an all-null body, bad parameters 400.
    A site's catalogue is default_points(site, N): N from a name ending in -<N>pts, else
    --site-points; its last floor(N * --silent-share) points never report.
  kind keeps the older behaviour: point_names honoured (10 default points otherwise),
    point-major pages, Z times, {\"o\":offset} cursors, 422 errors, any point name valid.

Fault model (the seeded decisions replay exactly with the same --seed):
  per request   one uniform draw of (seed, path+query, attempt) is cut into bands in the
                order 500, 503, 429, truncated, garbage, drop; rates are exclusive.
  slow          a second, independent draw of the same inputs delays the answer by --slow-ms.
  windows       time since the server started is cut into --fault-window-secs windows; each
                (site, window index) is faulty with --window-fault-rate, and then every
                timeseries request for that site answers 503, or 429 with Retry-After
                (half/half, also seeded).
  outage        POST /faults/outage?secs=N makes every timeseries request answer 503 for N
                seconds (secs=0 ends it; ms=N for sub-second outages).

Control and inspection endpoints:
  GET  /faults               outage end, rejection counters, window settings (?site=S adds S's
                             current window fault)
  POST /faults/outage?secs=N start (or with 0, end) a full outage
  GET  /__stats              request, page, row, byte and fault counters, per site (by_site)
  GET  /alerts, POST /alerts the alert receiver; POST /alerts/fail-next?n=N[&site=S]";

/// Everything the simulator can be told.
///
/// The six per-request fault probabilities (`rate_500`, `rate_503`,
/// `rate_429`, `rate_truncated`, `rate_garbage`, `rate_drop`) are drawn from
/// one uniform number per request, in that order; they are mutually
/// exclusive, so their sum should not exceed 1 (beyond that, later kinds get
/// whatever probability is left). `rate_slow` is a second, independent draw,
/// so a slow request may also be faulty. Window faults (`window_fault_rate`,
/// `fault_window_secs`) are drawn per (site, window) and take precedence over
/// the per-request kinds. Every default injects nothing (except the
/// [`DEFAULT_FAIL_SITE`]).
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "ace-sim",
    version,
    about = "Deterministic ACE IoT FlightDeck timeseries API simulator",
    after_help = AFTER_HELP
)]
pub struct SimConfig {
    /// Address to bind.
    #[arg(long, env = "ACE_SIM_HOST", default_value = DEFAULT_HOST)]
    pub host: String,
    /// Port to bind; 0 picks a free one (the chosen port is printed).
    #[arg(long, env = "ACE_SIM_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Bearer token required in `Authorization`.
    #[arg(long, env = "ACE_SIM_TOKEN", default_value = DEFAULT_TOKEN)]
    pub token: String,
    /// Seed for fault injection; the same seed replays the same faults.
    #[arg(long, env = "ACE_SIM_SEED", default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Sample interval in seconds (timestamps are multiples of it since the epoch).
    #[arg(long, env = "ACE_SIM_INTERVAL_SECS", default_value_t = DEFAULT_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,
    /// Probability of a simulated 500 per timeseries request.
    #[arg(long, env = "ACE_SIM_RATE_500", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_500: f64,
    /// Probability of a simulated 503 per timeseries request.
    #[arg(long, env = "ACE_SIM_RATE_503", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_503: f64,
    /// Probability of a simulated 429 (with `Retry-After`) per timeseries request.
    #[arg(long, env = "ACE_SIM_RATE_429", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_429: f64,
    /// `Retry-After` seconds sent with simulated 429s.
    #[arg(long, env = "ACE_SIM_RETRY_AFTER_SECS", default_value_t = DEFAULT_RETRY_AFTER_SECS)]
    pub retry_after_secs: u64,
    /// Milliseconds of delay added to every response.
    #[arg(long, env = "ACE_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability that a 200 page body is cut in half.
    #[arg(long, env = "ACE_SIM_RATE_TRUNCATED", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_truncated: f64,
    /// Probability that a 200 page body is replaced with non-JSON garbage.
    #[arg(long, env = "ACE_SIM_RATE_GARBAGE", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_garbage: f64,
    /// Probability that a 200 page is sent with the full body's Content-Length, half the body,
    /// then the connection is aborted (the client sees an unexpected EOF).
    #[arg(long, env = "ACE_SIM_RATE_DROP", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_drop: f64,
    /// Probability that a timeseries request is delayed by `--slow-ms` (an independent draw,
    /// on top of `--latency-ms`).
    #[arg(long, env = "ACE_SIM_RATE_SLOW", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_slow: f64,
    /// Milliseconds of delay for requests selected by `--rate-slow`.
    #[arg(long, env = "ACE_SIM_SLOW_MS", default_value_t = 0)]
    pub slow_ms: u64,
    /// Length in seconds of a fault window, counted from server start (window 0 starts then).
    #[arg(long, env = "ACE_SIM_FAULT_WINDOW_SECS", default_value_t = DEFAULT_FAULT_WINDOW_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub fault_window_secs: u64,
    /// Probability that a (site, window) is faulty: every timeseries request for that site in
    /// that window answers 503, or 429 with Retry-After (seeded, half/half).
    #[arg(long, env = "ACE_SIM_WINDOW_FAULT_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub window_fault_rate: f64,
    /// Sites that always answer 503 (comma-separated).
    #[arg(long, env = "ACE_SIM_FAIL_SITES", value_delimiter = ',', default_value = DEFAULT_FAIL_SITE)]
    pub fail_sites: Vec<String>,
    /// `faithful` answers like the live ACE API; `kind` keeps the older, kinder behaviour.
    #[arg(long, env = "ACE_SIM_MODE", value_enum, default_value_t = Mode::Faithful)]
    pub mode: Mode,
    /// Catalogue size of a site whose name does not end in `-<N>pts` (faithful mode).
    #[arg(long, env = "ACE_SIM_SITE_POINTS", default_value_t = DEFAULT_SITE_POINTS,
          value_parser = parse_site_points)]
    pub site_points: usize,
    /// Share of each catalogue, its last points, that never reports data (faithful mode).
    #[arg(long, env = "ACE_SIM_SILENT_SHARE", default_value_t = DEFAULT_SILENT_SHARE,
          value_parser = parse_rate)]
    pub silent_share: f64,
    /// How faithful mode writes sample times: `naive` (`2026-08-07T16:25:00`, like ACE),
    /// `micros` (plus a deterministic fraction below 1 ms) or `z` (`…:00Z`).
    #[arg(long, env = "ACE_SIM_TIME_FORMAT", value_enum, default_value_t = TimeFormat::Naive)]
    pub time_format: TimeFormat,
    /// Emit the correct `next_cursor` instead of reproducing ACE's cursor bug (faithful mode).
    #[arg(long, env = "ACE_SIM_FIX_CURSOR", value_parser = clap::builder::BoolishValueParser::new(),
          default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub fix_cursor: bool,
    /// `collect_interval` (seconds) reported by `configured_points`; the data itself is
    /// at `--interval-secs`.
    #[arg(long, env = "ACE_SIM_COLLECT_INTERVAL_SECS", default_value_t = DEFAULT_COLLECT_INTERVAL_SECS)]
    pub collect_interval_secs: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            token: DEFAULT_TOKEN.to_owned(),
            seed: DEFAULT_SEED,
            interval_secs: DEFAULT_INTERVAL_SECS,
            rate_500: 0.0,
            rate_503: 0.0,
            rate_429: 0.0,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            latency_ms: 0,
            rate_truncated: 0.0,
            rate_garbage: 0.0,
            rate_drop: 0.0,
            rate_slow: 0.0,
            slow_ms: 0,
            fault_window_secs: DEFAULT_FAULT_WINDOW_SECS,
            window_fault_rate: 0.0,
            fail_sites: vec![DEFAULT_FAIL_SITE.to_owned()],
            mode: Mode::Faithful,
            site_points: DEFAULT_SITE_POINTS,
            silent_share: DEFAULT_SILENT_SHARE,
            time_format: TimeFormat::Naive,
            fix_cursor: false,
            collect_interval_secs: DEFAULT_COLLECT_INTERVAL_SECS,
        }
    }
}

impl SimConfig {
    /// The sample interval in milliseconds, never zero (a zero interval
    /// would make every range infinite).
    pub fn interval_ms(&self) -> i64 {
        i64::try_from(self.interval_secs.max(1).saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The fault window length in seconds, never zero (the library can be
    /// handed a zero that the CLI would refuse).
    pub fn window_secs(&self) -> u64 {
        self.fault_window_secs.max(1)
    }
}

/// Parses a probability, refusing NaN and values outside `0..=1` so a typo
/// cannot silently disable or saturate fault injection.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a probability in 0..=1"))
    }
}

/// Parses a catalogue size in `1..=MAX_SITE_POINTS`.
fn parse_site_points(s: &str) -> Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|e| format!("{e}"))?;
    if (1..=MAX_SITE_POINTS).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in 1..={MAX_SITE_POINTS}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_defaults_match_default_impl() {
        let parsed = SimConfig::try_parse_from(["ace-sim"]);
        // Environment variables could override defaults in a developer shell;
        // only compare when none are set.
        if std::env::vars().any(|(k, _)| k.starts_with("ACE_SIM_")) {
            return;
        }
        assert_eq!(parsed.unwrap(), SimConfig::default());
    }

    #[test]
    fn flags_parse() {
        let c = SimConfig::try_parse_from([
            "ace-sim",
            "--port",
            "0",
            "--rate-503",
            "0.5",
            "--fail-sites",
            "a,b",
        ])
        .unwrap();
        assert_eq!(c.port, 0);
        assert_eq!(c.rate_503, 0.5);
        assert_eq!(c.fail_sites, vec!["a", "b"]);
        assert!(SimConfig::try_parse_from(["ace-sim", "--rate-500", "1.5"]).is_err());
        assert!(SimConfig::try_parse_from(["ace-sim", "--interval-secs", "0"]).is_err());
    }

    #[test]
    fn fault_flags_parse() {
        let c = SimConfig::try_parse_from([
            "ace-sim",
            "--rate-drop",
            "0.1",
            "--rate-slow",
            "0.2",
            "--slow-ms",
            "900",
            "--fault-window-secs",
            "1",
            "--window-fault-rate",
            "0.25",
        ])
        .unwrap();
        assert_eq!(
            (c.rate_drop, c.rate_slow, c.slow_ms),
            (0.1, 0.2, 900),
            "{c:?}"
        );
        assert_eq!((c.fault_window_secs, c.window_fault_rate), (1, 0.25));
        assert!(SimConfig::try_parse_from(["ace-sim", "--fault-window-secs", "0"]).is_err());
        assert!(SimConfig::try_parse_from(["ace-sim", "--window-fault-rate", "2"]).is_err());
        assert!(SimConfig::try_parse_from(["ace-sim", "--rate-drop", "-0.1"]).is_err());
        assert!(SimConfig::try_parse_from(["ace-sim", "--rate-slow", "NaN"]).is_err());
        let zero = SimConfig {
            fault_window_secs: 0,
            ..SimConfig::default()
        };
        assert_eq!(zero.window_secs(), 1);
    }

    #[test]
    fn mode_flags_parse() {
        let c = SimConfig::try_parse_from([
            "ace-sim",
            "--mode",
            "kind",
            "--site-points",
            "200",
            "--silent-share",
            "0.5",
            "--time-format",
            "micros",
            "--fix-cursor",
            "--collect-interval-secs",
            "60",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Kind);
        assert_eq!((c.site_points, c.silent_share), (200, 0.5));
        assert_eq!(c.time_format, TimeFormat::Micros);
        assert!(c.fix_cursor);
        assert_eq!(c.collect_interval_secs, 60);
        let c =
            SimConfig::try_parse_from(["ace-sim", "--fix-cursor", "false", "--time-format", "z"])
                .unwrap();
        assert!(!c.fix_cursor);
        assert_eq!(c.time_format, TimeFormat::Z);
        for bad in [
            &["--mode", "nice"][..],
            &["--site-points", "0"],
            &["--site-points", "100001"],
            &["--silent-share", "1.5"],
            &["--time-format", "local"],
        ] {
            let args = std::iter::once("ace-sim").chain(bad.iter().copied());
            assert!(SimConfig::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
