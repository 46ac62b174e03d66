//! Series as text, in the shape of the Prometheus exposition format:
//! `name{a="1",b="2"} 3.5 [timestamp_ms]`, one per line; `#` lines and blank lines are skipped.
//! Enough to write test input, not a full exposition parser (no `# TYPE` semantics, no
//! exemplars).

use super::{HarnessError, Sample};
use std::fmt::{self, Write as _};

/// Parses one sample per non-blank, non-`#` line.
///
/// Errors: [`HarnessError::Parse`] naming the 1-based line and what is wrong (bad metric or
/// label name, unterminated or badly escaped value, missing or bad value or timestamp,
/// trailing text).
pub fn parse(text: &str) -> Result<Vec<Sample>, HarnessError> {
    let mut samples = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|reason| HarnessError::Parse {
            line: number + 1,
            reason,
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let mut cursor = Cursor { rest: line };
    let name =
        cursor.take_while(|c, first| c == '_' || c == ':' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit()));
    if name.is_empty() {
        return Err("expected a metric name".to_owned());
    }
    let mut labels = vec![("__name__".to_owned(), name.to_owned())];
    if cursor.eat('{') {
        parse_labels(&mut cursor, &mut labels)?;
    }
    let mut fields = cursor.rest.split_whitespace();
    let value = fields.next().ok_or("expected a value")?;
    let value = parse_value(value).ok_or_else(|| format!("bad value {value:?}"))?;
    let timestamp_ms = match fields.next() {
        Some(ts) => Some(ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?),
        None => None,
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the sample"));
    }
    Ok(Sample {
        labels,
        value,
        timestamp_ms,
    })
}

fn parse_labels(cursor: &mut Cursor<'_>, labels: &mut Vec<(String, String)>) -> Result<(), String> {
    loop {
        cursor.skip_spaces();
        if cursor.eat('}') {
            return Ok(());
        }
        let name = cursor.take_while(|c, first| c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit()));
        if name.is_empty() {
            return Err(format!("expected a label name at {:?}", cursor.rest));
        }
        cursor.skip_spaces();
        if !cursor.eat('=') {
            return Err(format!("expected '=' after label {name}"));
        }
        cursor.skip_spaces();
        if !cursor.eat('"') {
            return Err(format!("expected '\"' to open the value of label {name}"));
        }
        let value = cursor.quoted()?;
        labels.push((name.to_owned(), value));
        cursor.skip_spaces();
        if cursor.eat('}') {
            return Ok(());
        }
        if !cursor.eat(',') {
            return Err(format!("expected ',' or '}}' after label {name}"));
        }
    }
}

/// A value as Prometheus writes them: a float, `NaN`, `+Inf` or `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// The longest prefix whose chars pass `ok(c, is_first)`.
    fn take_while(&mut self, ok: impl Fn(char, bool) -> bool) -> &'a str {
        let end = self
            .rest
            .char_indices()
            .find(|&(at, c)| !ok(c, at == 0))
            .map_or(self.rest.len(), |(at, _)| at);
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// A label value after its opening quote, up to and including the closing one.
    fn quoted(&mut self) -> Result<String, String> {
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[at + 1..];
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => return Err(format!("bad escape \\{other} in a value")),
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err("unterminated label value".to_owned())
    }
}

/// Writes `labels` (which hold `__name__`) and `value` as one exposition line.
pub(crate) fn render(
    out: &mut fmt::Formatter<'_>,
    labels: &[(String, String)],
    value: f64,
    timestamp_ms: Option<i64>,
) -> fmt::Result {
    let name = labels
        .iter()
        .find(|(n, _)| n == "__name__")
        .map_or("", |(_, v)| v.as_str());
    out.write_str(name)?;
    let mut others = labels.iter().filter(|(n, _)| n != "__name__").peekable();
    if others.peek().is_some() {
        out.write_char('{')?;
        for (i, (n, v)) in others.enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            write!(out, "{n}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => out.write_str("\\\\")?,
                    '"' => out.write_str("\\\"")?,
                    '\n' => out.write_str("\\n")?,
                    c => out.write_char(c)?,
                }
            }
            out.write_char('"')?;
        }
        out.write_char('}')?;
    }
    out.write_char(' ')?;
    if value.is_nan() {
        out.write_str("NaN")?;
    } else if value == f64::INFINITY {
        out.write_str("+Inf")?;
    } else if value == f64::NEG_INFINITY {
        out.write_str("-Inf")?;
    } else {
        write!(out, "{value}")?;
    }
    if let Some(ts) = timestamp_ms {
        write!(out, " {ts}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(sample: &Sample) -> Vec<(&str, &str)> {
        sample.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[test]
    fn parses_names_labels_values_and_timestamps() {
        let samples = parse(
            "# HELP skipped\n\
             \n\
             up 1\n\
             http_requests_total{code=\"200\", path=\"/a\",} 3.5 1700000000000\n\
             ns:rule:rate5m{a=\"q\\\"uote\\\\back\\nline\"} -2e3\n\
             x NaN\n\
             y +Inf\n\
             z -Inf\n",
        )
        .unwrap();
        assert_eq!(samples.len(), 6);
        assert_eq!(pairs(&samples[0]), [("__name__", "up")]);
        assert_eq!(samples[0].value, 1.0);
        assert_eq!(samples[0].timestamp_ms, None);
        assert_eq!(
            pairs(&samples[1]),
            [("__name__", "http_requests_total"), ("code", "200"), ("path", "/a")]
        );
        assert_eq!(samples[1].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(
            pairs(&samples[2]),
            [("__name__", "ns:rule:rate5m"), ("a", "q\"uote\\back\nline")]
        );
        assert_eq!(samples[2].value, -2000.0);
        assert!(samples[3].value.is_nan());
        assert_eq!(samples[4].value, f64::INFINITY);
        assert_eq!(samples[5].value, f64::NEG_INFINITY);
    }

    #[test]
    fn broken_lines_name_the_line_and_the_problem() {
        for (text, expect) in [
            ("{a=\"1\"} 1", "metric name"),
            ("9up 1", "metric name"),
            ("up", "expected a value"),
            ("up one", "bad value"),
            ("up 1 soon", "bad timestamp"),
            ("up 1 2 3", "unexpected"),
            ("up{a=1} 1", "open the value"),
            ("up{a=\"1} 1", "unterminated"),
            ("up{a=\"1\\", "unterminated"),
            ("up{a=\"\\t\"} 1", "bad escape"),
            ("up{a \"1\"} 1", "'='"),
            ("up{a=\"1\" b=\"2\"} 1", "',' or"),
            ("up{-a=\"1\"} 1", "label name"),
            ("up{a=\"1\"", "',' or"),
            ("up{", "label name"),
            ("ü 1", "metric name"),
        ] {
            let err = parse(&format!("ok 1\n{text}")).unwrap_err();
            match &err {
                HarnessError::Parse { line: 2, reason } => {
                    assert!(reason.contains(expect), "{text:?}: {reason}")
                }
                other => panic!("{text:?}: {other}"),
            }
        }
    }

    struct Line(Sample);

    impl fmt::Display for Line {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            render(f, &self.0.labels, self.0.value, self.0.timestamp_ms)
        }
    }

    #[test]
    fn render_round_trips_through_parse() {
        for line in [
            "up 1",
            "a{b=\"x\\\"y\\\\z\\nw\",c=\"\"} 0.25 17",
            "nan NaN",
            "inf{x=\"1\"} +Inf",
            "ninf -Inf",
        ] {
            let sample = parse(line).unwrap().remove(0);
            assert_eq!(Line(sample).to_string(), line);
        }
    }
}
