//! `--log.format=logfmt`: one line per event in the shape Prometheus writes with go-kit's logfmt
//! logger, so the same log pipelines parse both:
//!
//! ```text
//! ts=2026-11-21T13:22:39.399Z level=info caller=scrape/pool.rs:12 msg="Starting scrape loop." job=bench target=http://h:9100/metrics
//! ```
//!
//! Keys in order: `ts` (RFC 3339, UTC, milliseconds), `level` (lowercase), `caller` (source
//! file after its last `src/`, and line; the module path when the file is unknown), `msg`
//! (omitted when the event has no message), then the event's fields in the order written.
//! Span fields are not written: the agent puts its context in event fields.
//!
//! A value is quoted when it is empty or holds a space, `=`, `"` or a control character; inside
//! quotes `"` and `\` are escaped, newline, carriage return and tab become `\n`, `\r`, `\t`, and
//! other control characters `\u00XX`, so a value can never break the line. Key characters that
//! logfmt cannot carry become `_`.

use std::fmt::{self, Write};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The logfmt event formatter, for `tracing_subscriber::fmt().event_format(Logfmt)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        writer.write_str(&format_line(SystemTime::now(), event))
    }
}

/// The whole line for `event` logged at `now`, newline included.
fn format_line(now: SystemTime, event: &Event<'_>) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);

    let mut line = String::with_capacity(96 + fields.rest.len());
    let _ = write!(
        line,
        "ts={} level={} caller=",
        humantime::format_rfc3339_millis(now),
        level(meta.level())
    );
    // Events bridged from the `log` crate carry their origin as `log.*` fields.
    let file = fields.log_file.as_deref().or(meta.file());
    let line_no = fields.log_line.or(meta.line().map(u64::from));
    let target = fields.log_target.as_deref().unwrap_or(meta.target());
    write_value(&mut line, &caller(file, line_no, target));
    if let Some(message) = &fields.message {
        line.push_str(" msg=");
        write_value(&mut line, message);
    }
    line.push_str(&fields.rest);
    line.push('\n');
    line
}

fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `scrape/pool.rs:12` from the file and line; the module path when either is unknown.
fn caller(file: Option<&str>, line: Option<u64>, target: &str) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("{}:{line}", short_file(file)),
        _ => target.to_owned(),
    }
}

/// `agent/src/scrape/pool.rs` → `scrape/pool.rs`: the path inside the crate's `src/`.
fn short_file(file: &str) -> &str {
    match file.rfind("/src/") {
        Some(i) => &file[i + "/src/".len()..],
        None => file.strip_prefix("src/").unwrap_or(file),
    }
}

/// An event's fields: the message and the `log` crate's origin apart, the rest already
/// written as ` key=value` pairs.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    log_file: Option<String>,
    log_line: Option<u64>,
    log_target: Option<String>,
    rest: String,
}

impl Fields {
    fn record(&mut self, name: &str, value: &str) {
        match name {
            "message" => self.message = Some(value.to_owned()),
            "log.file" => self.log_file = Some(value.to_owned()),
            "log.target" => self.log_target = Some(value.to_owned()),
            // The caller already says where the event comes from.
            "log.module_path" => {}
            _ => {
                self.rest.push(' ');
                write_key(&mut self.rest, name);
                self.rest.push('=');
                write_value(&mut self.rest, value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "log.line" {
            self.log_line = Some(value);
        } else {
            self.record(field.name(), &value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%display` fields arrive here too, already wrapped to format with Display.
        self.record(field.name(), &format!("{value:?}"));
    }
}

/// Whether logfmt needs `value` in quotes.
fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value
            .chars()
            .any(|c| c <= ' ' || c == '=' || c == '"' || c.is_control())
}

/// Appends `value`, quoted and escaped when [`needs_quotes`] says so.
fn write_value(out: &mut String, value: &str) {
    if !needs_quotes(value) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `key` with every character that would end or break a logfmt key replaced by `_`.
fn write_key(out: &mut String, key: &str) {
    if key.is_empty() {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c <= ' ' || c == '=' || c == '"' || c.is_control() {
            '_'
        } else {
            c
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::{debug, error, info, warn};

    use super::*;

    fn value(v: &str) -> String {
        let mut out = String::new();
        write_value(&mut out, v);
        out
    }

    fn key(k: &str) -> String {
        let mut out = String::new();
        write_key(&mut out, k);
        out
    }

    #[test]
    fn plain_values_stay_bare() {
        for v in ["abc", "http://h:9100/metrics?a&b", "1.5", "C:\\dir", "ünïcode"] {
            assert_eq!(value(v), v, "{v:?}");
        }
    }

    #[test]
    fn values_are_quoted_and_escaped_when_they_must_be() {
        let cases = [
            ("", r#""""#),
            ("a b", r#""a b""#),
            ("a=b", r#""a=b""#),
            (r#"say "hi""#, r#""say \"hi\"""#),
            (r"a\b c", r#""a\\b c""#),
            ("line1\nline2", r#""line1\nline2""#),
            ("cr\rtab\t", r#""cr\rtab\t""#),
            ("\u{1b}[31mred", r#""\u001b[31mred""#),
            ("del\u{7f}", r#""del\u007f""#),
            ("\u{85}next", r#""\u0085next""#),
        ];
        for (raw, want) in cases {
            assert_eq!(value(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn a_hostile_value_cannot_forge_a_field_or_a_line() {
        let v = value("x\nts=2000-01-01T00:00:00Z level=error msg=forged");
        assert!(!v.contains('\n'));
        assert!(v.starts_with('"') && v.ends_with('"'));
        assert_eq!(v[1..v.len() - 1].matches('"').count(), 0, "{v}");
    }

    #[test]
    fn keys_lose_what_logfmt_cannot_carry() {
        assert_eq!(key("job"), "job");
        assert_eq!(key("error.source"), "error.source");
        assert_eq!(key("a b=c\"d\ne"), "a_b_c_d_e");
        assert_eq!(key(""), "_");
    }

    #[test]
    fn caller_is_the_path_inside_src() {
        assert_eq!(
            caller(Some("agent/src/scrape/pool.rs"), Some(12), "m"),
            "scrape/pool.rs:12"
        );
        assert_eq!(
            caller(Some("agent/src/agent.rs"), None, "trawl_agent::agent"),
            "trawl_agent::agent"
        );
        assert_eq!(caller(None, Some(3), "dep::conn"), "dep::conn");
        assert_eq!(short_file("agent/src/scrape/pool.rs"), "scrape/pool.rs");
        assert_eq!(short_file("src/main.rs"), "main.rs");
        assert_eq!(
            short_file("/home/u/.cargo/registry/src/idx/rustls-0.23.0/src/conn.rs"),
            "conn.rs"
        );
        assert_eq!(short_file("build.rs"), "build.rs");
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The lines `log` writes through a `Logfmt` subscriber at debug level.
    fn lines(log: impl FnOnce()) -> Vec<String> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(Logfmt)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = capture.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8(bytes)
            .expect("UTF-8 log")
            .split_inclusive('\n')
            .map(str::to_owned)
            .collect()
    }

    /// Splits `ts=…` off a line and checks it is RFC 3339 UTC with milliseconds.
    fn without_ts(line: &str) -> &str {
        let (ts, rest) = line
            .strip_prefix("ts=")
            .and_then(|l| l.split_once(' '))
            .expect("ts first");
        assert_eq!(ts.len(), "2026-11-21T13:22:39.399Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        humantime::parse_rfc3339(ts).expect("RFC 3339 ts");
        rest
    }

    #[test]
    fn line_shape_follows_prometheus() {
        let at = line!() + 2;
        let got = lines(|| {
            info!(
                message = "Starting scrape loop.",
                job = "bench",
                target = %"http://h:1/metrics",
                n = 3,
                ok = true,
                empty = "",
                error = %"a \"b\"\nc"
            );
        });
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            without_ts(&got[0]),
            format!(
                "level=info caller=logfmt.rs:{at} msg=\"Starting scrape loop.\" job=bench target=http://h:1/metrics \
                 n=3 ok=true empty=\"\" error=\"a \\\"b\\\"\\nc\"\n"
            )
        );
    }

    #[test]
    fn levels_are_lowercase_and_formatted_messages_work() {
        let got = lines(|| {
            debug!("a {}", 1);
            warn!(k = 2.5, "w");
            error!(message = "e");
            info!(only = "fields");
        });
        let rest: Vec<&str> = got.iter().map(|l| without_ts(l)).collect();
        assert!(
            rest[0].starts_with("level=debug caller=logfmt.rs:") && rest[0].ends_with(" msg=\"a 1\"\n"),
            "{}",
            rest[0]
        );
        assert!(
            rest[1].starts_with("level=warn ") && rest[1].ends_with(" msg=w k=2.5\n"),
            "{}",
            rest[1]
        );
        assert!(
            rest[2].starts_with("level=error ") && rest[2].ends_with(" msg=e\n"),
            "{}",
            rest[2]
        );
        assert!(rest[3].starts_with("level=info "), "{}", rest[3]);
        assert!(!rest[3].contains("msg="), "no message, no msg key: {}", rest[3]);
        assert!(rest[3].ends_with(" only=fields\n"), "{}", rest[3]);
    }

    #[test]
    fn events_from_the_log_crate_name_their_own_origin() {
        let got = lines(|| {
            info!(
                log.target = "dep::conn",
                log.module_path = "dep::conn",
                log.file = "/r/dep-1.0/src/conn.rs",
                log.line = 7u64,
                "From log."
            );
        });
        assert_eq!(without_ts(&got[0]), "level=info caller=conn.rs:7 msg=\"From log.\"\n");
    }
}
