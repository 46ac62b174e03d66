//! Tenant patterns of `"tenant_matcher_type": "glob"`, with the syntax and meaning of Go's
//! `path/filepath.Match` (which Thanos uses): `*` any run of characters but `/`, `?` one
//! character but `/`, `[abc]`, `[a-z]`, `[^a-z]` classes, `\` escaping the next character.
//! Patterns are checked when the file is read, not when a tenant is matched.

/// One step of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// A compiled tenant pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// A reason when the pattern is malformed (Go's `ErrBadPattern`): an unclosed or empty
    /// class, a misplaced `-` or `]` in a class, or a trailing `\`.
    pub fn new(pattern: &str) -> Result<Glob, &'static str> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::AnyChar,
                '\\' => Token::Literal(chars.next().ok_or("pattern ends with a lone \\")?),
                '[' => class(&mut chars)?,
                c => Token::Literal(c),
            });
        }
        Ok(Glob { tokens })
    }

    /// Whether all of `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Classic backtracking over the last star: a star never matches `/`.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(token) if step(token, name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, sn)) if name[sn] != '/' => {
                    star = Some((st, sn + 1));
                    t = st + 1;
                    n = sn + 1;
                }
                _ => return false,
            }
        }
        self.tokens[t..].iter().all(|token| *token == Token::Star)
    }
}

/// Whether one non-star token matches `c`.
fn step(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyChar => c != '/',
        Token::Class { negated, ranges } => {
            let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
            c != '/' && inside != *negated
        }
        Token::Star => false,
    }
}

/// Reads a class after its `[` up to and including its `]`. As Go, a `-` or `]` where a class
/// character is expected is malformed, and a reversed range is allowed but matches nothing.
fn class(chars: &mut std::str::Chars<'_>) -> Result<Token, &'static str> {
    let mut negated = false;
    let mut look = chars.clone();
    if look.next() == Some('^') {
        negated = true;
        *chars = look;
    }
    let mut ranges = Vec::new();
    loop {
        let mut look = chars.clone();
        if look.next() == Some(']') && !ranges.is_empty() {
            *chars = look;
            break;
        }
        let lo = class_char(chars)?;
        let mut look = chars.clone();
        let hi = if look.next() == Some('-') {
            *chars = look;
            class_char(chars)?
        } else {
            lo
        };
        ranges.push((lo, hi));
    }
    Ok(Token::Class { negated, ranges })
}

/// One character of a class, `\` escapes included (Go's `getEsc`); the class must go on after it.
fn class_char(chars: &mut std::str::Chars<'_>) -> Result<char, &'static str> {
    let c = match chars.next() {
        None => return Err("unclosed [ class"),
        Some('-' | ']') => return Err("misplaced - or ] in [ class"),
        Some('\\') => chars.next().ok_or("unclosed [ class")?,
        Some(c) => c,
    };
    if chars.as_str().is_empty() {
        return Err("unclosed [ class");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_go_filepath_match() {
        for (pattern, name, want) in [
            ("prefix*", "prefix-1", true),
            ("prefix*", "suffix-1", false),
            ("t1-*", "t1-a", true),
            ("t1-*", "t2", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "abxbd", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[^a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a/*", "a/b", true),
            ("*", "a/b", false),
            ("[z-a]", "b", false),
            ("[\\]]", "]", true),
        ] {
            let glob = Glob::new(pattern).unwrap();
            assert_eq!(glob.matches(name), want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for pattern in ["[", "[a", "[]", "[-a]", "[a-]", "abc\\", "[^"] {
            assert!(Glob::new(pattern).is_err(), "{pattern:?} accepted");
        }
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let glob = Glob::new(&"*a".repeat(50)).unwrap();
        assert!(!glob.matches(&"a".repeat(49)));
        assert!(glob.matches(&"a".repeat(200)));
    }
}
