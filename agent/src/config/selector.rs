//! Syntax checks of Kubernetes selectors and names, so a `kubernetes_sd_configs` entry that the
//! API server would refuse fails at load time: label selectors as `labels.Parse`, field
//! selectors as `fields.ParseSelector`, names as `validation.IsDNS1123Subdomain` and
//! `IsQualifiedName` (k8s.io/apimachinery).

/// RFC 1123 subdomain, as Kubernetes `IsDNS1123Subdomain`: at most 253 characters, lower-case
/// alphanumeric labels joined by `.`, `-` inside labels.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A label name or value part as Kubernetes `IsQualifiedName`'s name: at most 63 characters,
/// alphanumeric at both ends, `-`, `_`, `.` inside.
fn is_label_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
fn check_label_key(key: &str) -> Result<(), String> {
    let ok = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name_part(name),
        None => is_label_name_part(key),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key:?} is not a valid label key"))
    }
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name_part(value) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid label value"))
    }
}

/// Tokens of the label selector language (Kubernetes `labels.Lexer`).
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Op(&'a str),
    Open,
    Close,
    Comma,
}

fn label_tokens(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            ',' => (Token::Comma, 1),
            '!' | '=' | '<' | '>' => {
                let len = if rest[1..].starts_with('=') && c != '<' && c != '>' {
                    2
                } else {
                    1
                };
                (Token::Op(&rest[..len]), len)
            }
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || "()!,=<>".contains(c))
                    .unwrap_or(rest.len());
                (Token::Word(&rest[..len]), len)
            }
        };
        out.push(token);
        rest = rest[len..].trim_start();
    }
    out
}

/// Checks a label selector as Kubernetes `labels.Parse`: comma-separated requirements
/// `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`,
/// `key>1`, `key<1`.
pub(super) fn check_label_selector(s: &str) -> Result<(), String> {
    let tokens = label_tokens(s);
    let mut it = tokens.iter().peekable();
    loop {
        match it.next() {
            Some(Token::Op("!")) => match it.next() {
                Some(Token::Word(key)) => check_label_key(key)?,
                _ => return Err("expected a label key after '!'".to_owned()),
            },
            Some(Token::Word(key)) => {
                check_label_key(key)?;
                match it.peek() {
                    None | Some(Token::Comma) => {}
                    Some(Token::Op("=" | "==" | "!=")) => {
                        it.next();
                        match it.peek() {
                            Some(Token::Word(v)) => {
                                check_label_value(v)?;
                                it.next();
                            }
                            // `key=` selects an empty value.
                            None | Some(Token::Comma) => {}
                            Some(other) => return Err(format!("unexpected {other:?} after operator")),
                        }
                    }
                    Some(Token::Op("<" | ">")) => {
                        it.next();
                        match it.next() {
                            Some(Token::Word(v)) if v.parse::<i64>().is_ok() => {}
                            _ => return Err("'<' and '>' need an integer value".to_owned()),
                        }
                    }
                    Some(Token::Word("in" | "notin")) => {
                        it.next();
                        if it.next() != Some(&Token::Open) {
                            return Err("expected '(' after in/notin".to_owned());
                        }
                        loop {
                            match it.next() {
                                Some(Token::Word(v)) => {
                                    check_label_value(v)?;
                                    match it.next() {
                                        Some(Token::Comma) => {}
                                        Some(Token::Close) => break,
                                        _ => return Err("expected ',' or ')' in value set".to_owned()),
                                    }
                                }
                                Some(Token::Close) => break,
                                _ => return Err("unterminated value set".to_owned()),
                            }
                        }
                    }
                    Some(other) => return Err(format!("unexpected {other:?} after key {key:?}")),
                }
            }
            None if tokens.is_empty() => return Ok(()),
            _ => return Err("expected a requirement".to_owned()),
        }
        match it.next() {
            None => return Ok(()),
            Some(Token::Comma) => {}
            Some(other) => return Err(format!("unexpected {other:?}; requirements are separated by ','")),
        }
    }
}

/// Checks a field selector as Kubernetes `fields.ParseSelector`: comma-separated
/// `key=value`, `key==value`, `key!=value`; `\`, `,` and `=` in values escaped with `\`.
pub(super) fn check_field_selector(s: &str) -> Result<(), String> {
    for term in split_unescaped(s, ',') {
        if term.is_empty() {
            continue;
        }
        let Some((key, value)) = split_field_term(term) else {
            return Err(format!(
                "can't understand {term:?}; expected key=value, key==value or key!=value"
            ));
        };
        if key.trim().is_empty() {
            return Err(format!("{term:?} has no field name"));
        }
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c == '\\' && !matches!(chars.next(), Some('\\' | ',' | '=')) {
                return Err(format!("invalid escape sequence in {value:?}"));
            }
        }
    }
    Ok(())
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// The key and value of a field selector term at its first unescaped operator.
fn split_field_term(term: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        if c == '\\' {
            escaped = true;
        } else if rest.starts_with("!=") || rest.starts_with("==") {
            return Some((&term[..i], &term[i + 2..]));
        } else if c == '=' {
            return Some((&term[..i], &term[i + 1..]));
        }
    }
    None
}
