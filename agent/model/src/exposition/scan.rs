//! Byte-level scanners shared by both formats: character classes, names, label blocks, numbers
//! and unescaping. Token rules follow Prometheus 2.42 `model/textparse/promlex.l` and
//! `openmetricslex.l`; the loops are table-driven and never allocate.

use super::Format;
use super::error::Fail;

/// Metric name start: `[a-zA-Z_:]`.
pub(super) const NAME_START: u8 = 1;
/// Metric name continuation: `[a-zA-Z0-9_:]`.
pub(super) const NAME_CONT: u8 = 1 << 1;
/// Label name start: `[a-zA-Z_]`.
pub(super) const LABEL_START: u8 = 1 << 2;
/// Label name continuation: `[a-zA-Z0-9_]`.
pub(super) const LABEL_CONT: u8 = 1 << 3;
/// A label value byte that needs no attention: ASCII other than `"`, `\` and newline.
const VALUE_PLAIN: u8 = 1 << 4;
/// Blank between tokens of the text format: space or tab.
pub(super) const BLANK: u8 = 1 << 5;
/// Ends a sample value in the text format: blank, newline or `{` (`[^{ \t\n]+`).
pub(super) const TEXT_VALUE_END: u8 = 1 << 6;
/// Ends a value or timestamp in OpenMetrics: space or newline (`[^ \n]+`).
pub(super) const OM_TOKEN_END: u8 = 1 << 7;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut f = 0;
        if alpha || b == b':' {
            f |= NAME_START | NAME_CONT;
        }
        if digit {
            f |= NAME_CONT | LABEL_CONT;
        }
        if alpha {
            f |= LABEL_START | LABEL_CONT;
        }
        if b < 0x80 && b != b'"' && b != b'\\' && b != b'\n' {
            f |= VALUE_PLAIN;
        }
        if b == b' ' || b == b'\t' {
            f |= BLANK | TEXT_VALUE_END;
        }
        if b == b'\n' || b == b'{' {
            f |= TEXT_VALUE_END;
        }
        if b == b' ' || b == b'\n' {
            f |= OM_TOKEN_END;
        }
        t[c] = f;
        c += 1;
    }
    t
}

/// Whether byte `c` is in class `flag`.
#[inline(always)]
pub(super) fn is(c: u8, flag: u8) -> bool {
    CLASS[c as usize] & flag != 0
}

/// Index of the first byte from `i` on that is not in class `flag` (or `b.len()`).
#[inline(always)]
pub(super) fn skip(b: &[u8], mut i: usize, flag: u8) -> usize {
    // Four bytes per step while all match: names run to tens of bytes, and the byte loop paid a
    // bounds check and a branch for each (node_exporter.prom parses 3.5% faster, prometheus.prom 8%).
    while let Some(&[c0, c1, c2, c3]) = b.get(i..i + 4) {
        if !(is(c0, flag) & is(c1, flag) & is(c2, flag) & is(c3, flag)) {
            break;
        }
        i += 4;
    }
    while i < b.len() && is(b[i], flag) {
        i += 1;
    }
    i
}

/// Index of the first byte from `i` on that is in class `flag` (or `b.len()`).
#[inline(always)]
pub(super) fn until(b: &[u8], mut i: usize, flag: u8) -> usize {
    while i < b.len() && !is(b[i], flag) {
        i += 1;
    }
    i
}

/// Index of the first newline from `i` on, or `b.len()`. Reads eight bytes at
/// a time, since help texts and comments are long.
pub(super) fn line_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    while let Some(chunk) = b.get(i..i + 8) {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let x = word ^ NEWLINES;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    b.get(i..)
        .and_then(|tail| tail.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |p| i + p)
}

/// Scans the label block whose `{` is at `open` and returns the index just past its `}`.
/// `on_label` receives each label name, its raw value (between the quotes, escapes intact) and
/// whether the value holds a backslash. Values must be valid UTF-8 and may not hold a raw
/// newline.
///
/// The text format allows blanks between tokens, a trailing comma and (as Prometheus's lexer)
/// labels without a comma between them; OpenMetrics allows none of these.
#[inline]
pub(super) fn label_block<'a>(
    b: &'a [u8],
    open: usize,
    format: Format,
    mut on_label: impl FnMut(&'a [u8], &'a [u8], bool),
) -> Result<usize, Fail> {
    let text = format == Format::Text;
    let mut i = open + 1;
    loop {
        if text {
            i = skip(b, i, BLANK);
        }
        match b.get(i) {
            Some(b'}') if text || i == open + 1 => return Ok(i + 1),
            Some(&c) if is(c, LABEL_START) => {}
            _ => return Err(Fail::expected(i, "label name")),
        }
        let name_start = i;
        i = skip(b, i + 1, LABEL_CONT);
        let name = &b[name_start..i];
        if text {
            i = skip(b, i, BLANK);
        }
        if b.get(i) != Some(&b'=') {
            return Err(Fail::expected(i, "\"=\""));
        }
        i += 1;
        if text {
            i = skip(b, i, BLANK);
        }
        if b.get(i) != Some(&b'"') {
            return Err(Fail::expected(i, "label value"));
        }
        let (close, escaped) = quoted(b, i + 1)?;
        on_label(name, &b[i + 1..close], escaped);
        i = close + 1;
        if text {
            i = skip(b, i, BLANK);
            if b.get(i) == Some(&b',') {
                i += 1;
            }
        } else {
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i + 1),
                _ => return Err(Fail::expected(i, "\",\" or \"}\"")),
            }
        }
    }
}

/// Scans a quoted label value starting just after its opening quote; returns the index of the
/// closing quote and whether the value holds a backslash.
#[inline(always)]
fn quoted(b: &[u8], start: usize) -> Result<(usize, bool), Fail> {
    let mut i = start;
    let mut escaped = false;
    let mut non_ascii = false;
    loop {
        i = skip(b, i, VALUE_PLAIN);
        match b.get(i) {
            Some(b'"') => break,
            Some(b'\\') => {
                escaped = true;
                match b.get(i + 1) {
                    None | Some(b'\n') => return Err(Fail::expected(i + 1, "closing quote of label value")),
                    Some(&c) => non_ascii |= c >= 0x80,
                }
                i += 2;
            }
            None | Some(b'\n') => return Err(Fail::expected(i, "closing quote of label value")),
            Some(_) => {
                non_ascii = true;
                i += 1;
            }
        }
    }
    if non_ascii && std::str::from_utf8(&b[start..i]).is_err() {
        return Err(Fail::invalid(start, i, "UTF-8 in label value"));
    }
    Ok((i, escaped))
}

/// Bits of the NaN every `NaN` in an exposition becomes: Go's `math.NaN()`, Prometheus's
/// `value.NormalNaN` (not the staleness marker `0x7ff0000000000002`).
pub(super) const NORMAL_NAN: u64 = 0x7ff8_0000_0000_0001;

/// Parses a sample value as Prometheus `parseFloat` (Go `strconv.ParseFloat` without hex floats
/// or underscores): decimal and exponent forms, an optional sign, `NaN` (any case, no sign) and
/// `Inf`/`Infinity` (any case, optional sign). Out-of-range values (`1e400`) are rejected, as Go
/// reports `ErrRange` for them; values that underflow become 0.
#[inline]
pub(super) fn float(tok: &[u8]) -> Option<f64> {
    let (negative, digits) = match tok {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, tok),
    };
    if let Some(f) = fast_decimal(digits) {
        return Some(if negative { -f } else { f });
    }
    let parsed: f64 = std::str::from_utf8(tok).ok()?.parse().ok()?;
    if parsed.is_nan() {
        // Go accepts no sign on NaN; Rust does.
        return (tok.len() == 3).then(|| f64::from_bits(NORMAL_NAN));
    }
    if parsed.is_infinite() && !(digits.eq_ignore_ascii_case(b"inf") || digits.eq_ignore_ascii_case(b"infinity")) {
        return None;
    }
    Some(parsed)
}

/// Exact powers of ten an f64 holds.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Clinger's fast path for unsigned `digits[.digits][e[+-]digits]`: a mantissa of at most 2^53
/// scaled by an exact power of ten is correctly rounded by one multiplication or division.
/// `None` sends anything else to the full parser.
#[inline(always)]
fn fast_decimal(b: &[u8]) -> Option<f64> {
    let mut mantissa: u64 = 0;
    let mut significant = 0;
    let mut fraction_digits = 0i32;
    let mut i = 0;
    let mut seen_point = false;
    while i < b.len() {
        let c = b[i];
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
            significant += i32::from(mantissa != 0);
            fraction_digits += i32::from(seen_point);
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else {
            break;
        }
        i += 1;
    }
    let digits = i - usize::from(seen_point);
    let mut exponent = 0i32;
    if i < b.len() {
        if b[i] | 0x20 != b'e' {
            return None;
        }
        i += 1;
        let negative = b.get(i) == Some(&b'-');
        i += usize::from(matches!(b.get(i), Some(b'-' | b'+')));
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 4 {
            exponent = exponent * 10 + i32::from(b[i] - b'0');
            i += 1;
        }
        if i == start || i != b.len() {
            return None;
        }
        if negative {
            exponent = -exponent;
        }
    }
    if digits == 0 || significant > 19 || mantissa > 1 << 53 {
        return None;
    }
    let scale = exponent - fraction_digits;
    let f = mantissa as f64;
    match usize::try_from(scale) {
        Ok(up) => POW10.get(up).map(|p| f * p),
        Err(_) => POW10.get(scale.unsigned_abs() as usize).map(|p| f / p),
    }
}

/// Parses a text-format timestamp: decimal digits only (no sign), ms since the epoch, as
/// Prometheus `strconv.ParseInt(s, 10, 64)` on the lexer's `{D}+` token.
#[inline]
pub(super) fn int_ms(tok: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in tok {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    (!tok.is_empty()).then_some(v)
}

/// Parses an OpenMetrics timestamp (float seconds) into ms since the epoch as Prometheus does,
/// `int64(ts * 1000)`: truncated toward zero, NaN and ±Inf rejected. Out-of-range values
/// saturate.
#[inline]
pub(super) fn float_seconds_ms(tok: &[u8]) -> Option<i64> {
    let seconds = float(tok)?;
    seconds.is_finite().then_some((seconds * 1000.0) as i64)
}

/// Undoes escapes in a label value (`\\`, `\"`, `\n`) or a help text (`\\`, `\n`, and `\"` when
/// `quotes` is set). Other backslashes are kept, as Prometheus's `strings.Replacer` does.
pub(super) fn unescape(raw: &[u8], quotes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c == b'\\' {
            match raw.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                Some(b'"') if quotes => {
                    out.push(b'"');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn fast_path_agrees_with_std(mantissa in 0u64..1 << 54, point in 0usize..20, exponent in -30i32..30, form in 0u8..3) {
            let mut digits = mantissa.to_string();
            let point = point.min(digits.len());
            if point > 0 {
                digits.insert(digits.len() - point, '.');
            }
            let tok = match form {
                0 => digits,
                1 => format!("{digits}e{exponent}"),
                _ => format!("{digits}E+{}", exponent.unsigned_abs()),
            };
            let want: f64 = tok.parse().expect("std parses it");
            prop_assert_eq!(float(tok.as_bytes()), Some(want), "{}", tok);
        }
    }

    #[test]
    fn floats_follow_go_parse_float() {
        assert_eq!(float(b"1"), Some(1.0));
        assert_eq!(float(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(float(b"+12"), Some(12.0));
        assert_eq!(float(b"1e3"), Some(1000.0));
        assert_eq!(float(b"1.5E-3"), Some(0.0015));
        assert_eq!(float(b".5"), Some(0.5));
        assert_eq!(float(b"5."), Some(5.0));
        assert_eq!(float(b"1234567890123456789"), Some(1_234_567_890_123_456_789.0));
        assert_eq!(float(b"1.7952643277204423e+09"), Some(1.7952643277204423e9));
        assert_eq!(float(b"+Inf"), Some(f64::INFINITY));
        assert_eq!(float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(float(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(float(b"1e-400"), Some(0.0));
        assert_eq!(float(b"0.1"), Some(0.1));
        assert_eq!(float(b"-3.8647e-05"), Some(-3.8647e-05));
        assert_eq!(float(b"123456789012345678"), Some(123_456_789_012_345_678.0));
        assert_eq!(float(b"9007199254740993"), Some(9_007_199_254_740_992.0));
        assert_eq!(float(b"0.000000000000000000000000001"), Some(1e-27));
        assert_eq!(float(b"1e22"), Some(1e22));
        assert_eq!(float(b"1e23"), Some(1e23));
        assert_eq!(float(b"4.5e-1"), Some(0.45));
        assert_eq!(float(b"1e0001"), Some(10.0));
        for nan in [&b"NaN"[..], b"nan", b"NAN"] {
            assert_eq!(float(nan).map(f64::to_bits), Some(NORMAL_NAN));
        }
        for bad in [
            &b""[..],
            b"+",
            b"-",
            b".",
            b"e5",
            b"1e",
            b"1e+",
            b"1..2",
            b"1.2.3",
            b"1e5e5",
            b"0x1p-2",
            b"0x10",
            b"1_000",
            b"+NaN",
            b"-nan",
        ] {
            assert_eq!(float(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        for bad in [&b"1e400"[..], b"-1e400", b"Infinit", b"inff", b"1 ", b"1\r", b"\xff"] {
            assert_eq!(float(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn text_timestamps_are_unsigned_integers() {
        assert_eq!(int_ms(b"0"), Some(0));
        assert_eq!(int_ms(b"0001"), Some(1));
        assert_eq!(int_ms(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b""[..], b"9223372036854775808", b"-1", b"+1", b"1.5", b"1e3"] {
            assert_eq!(int_ms(bad), None);
        }
    }

    #[test]
    fn openmetrics_timestamps_truncate_like_prometheus() {
        assert_eq!(float_seconds_ms(b"1.5"), Some(1500));
        assert_eq!(float_seconds_ms(b"-1.5"), Some(-1500));
        assert_eq!(float_seconds_ms(b"1795264327.720449"), Some(1_795_264_327_720));
        // `1.001 * 1000` is 1000.9999999999999 in binary, and Prometheus truncates it.
        assert_eq!(float_seconds_ms(b"1.001"), Some(1000));
        assert_eq!(float_seconds_ms(b"1e300"), Some(i64::MAX));
        for bad in [&b"NaN"[..], b"+Inf", b"-Inf", b"x", b""] {
            assert_eq!(float_seconds_ms(bad), None);
        }
    }

    #[test]
    fn line_end_finds_the_newline_in_any_lane() {
        let mut line = vec![b'a'; 40];
        assert_eq!(line_end(&line, 0), 40);
        for at in 0..40 {
            line[at] = b'\n';
            for from in 0..=at {
                assert_eq!(line_end(&line, from), at);
            }
            line[at] = 0x8a; // A high byte with the newline's low bits must not match.
            assert_eq!(line_end(&line, 0), 40);
            line[at] = b'a';
        }
        assert_eq!(line_end(b"", 0), 0);
    }

    #[test]
    fn unescape_keeps_unknown_escapes() {
        assert_eq!(unescape(br#"a\\b\"c\nd\te\"#, true), b"a\\b\"c\nd\\te\\");
        assert_eq!(unescape(br#"\\n"#, true), b"\\n");
        assert_eq!(unescape(br#"say \"hi\""#, false), br#"say \"hi\""#);
    }
}
