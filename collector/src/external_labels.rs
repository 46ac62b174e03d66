//! `--label='key="value"'`: the external labels every block of this collector carries in its
//! `meta.json` Thanos section, parsed as Thanos Receive parses its `--label` flag (a label name, `=`,
//! and a double-quoted value with Go string escapes).

use trawl_model::labels::is_valid_label_name;

/// Parses one `--label` value, e.g. `replica="collector-0"` → `("replica", "collector-0")`.
///
/// Errors: a message naming the problem (missing `=`, invalid label name, value not in double
/// quotes, a bad escape, or the reserved name `tenant_id`, which the collector sets itself).
pub fn parse_label_flag(flag: &str) -> Result<(String, String), String> {
    let (name, quoted) = flag
        .split_once('=')
        .ok_or_else(|| format!("--label {flag:?}: expected key=\"value\""))?;
    if !is_valid_label_name(name) {
        return Err(format!("--label {flag:?}: invalid label name {name:?}"));
    }
    if name == TENANT_LABEL {
        return Err(format!(
            "--label {flag:?}: {TENANT_LABEL} is set by the collector per tenant"
        ));
    }
    let value = unquote(quoted).ok_or_else(|| format!("--label {flag:?}: the value must be a double-quoted string"))?;
    Ok((name.to_owned(), value))
}

/// The label naming the tenant in each block's Thanos labels, as Thanos Receive.
pub const TENANT_LABEL: &str = "tenant_id";

/// Go's `strconv.Unquote` for double-quoted strings: `\\`, `\"`, `\n`, `\t`, `\r` and `\uXXXX`.
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4)?;
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thanos_label_flags() {
        assert_eq!(parse_label_flag(r#"replica="a""#), Ok(("replica".into(), "a".into())));
        assert_eq!(parse_label_flag(r#"x="""#), Ok(("x".into(), String::new())));
        assert_eq!(
            parse_label_flag(r#"region="eu=\"1\"\u00e9""#),
            Ok(("region".into(), "eu=\"1\"é".into()))
        );
    }

    #[test]
    fn rejects_broken_and_hostile_flags() {
        for bad in [
            "replica",
            "replica=a",
            r#"replica="a"#,
            r#"replica="a"b""#,
            r#"1x="a""#,
            r#"="a""#,
            r#"x="\q""#,
            r#"x="\u12""#,
            r#"x="\ud800""#,
            r#"tenant_id="t""#,
        ] {
            assert!(parse_label_flag(bad).is_err(), "{bad} accepted");
        }
    }
}
