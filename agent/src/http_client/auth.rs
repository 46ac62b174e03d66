//! Per-request authentication, as prometheus/common's basic-auth and authorization round
//! trippers: secrets from files are re-read on every request (so a rotated token is picked up at
//! the next scrape) and trimmed of surrounding whitespace, as Go's `strings.TrimSpace`.

use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::HttpClientError;
use crate::config::HttpClientConfig;

/// A secret given inline or in a file.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// Not configured.
    None,
    /// Written in the config.
    Inline(String),
    /// Read from this file at each request.
    File(PathBuf),
}

impl fmt::Debug for Secret {
    /// Never prints inline secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("None"),
            Secret::Inline(_) => f.write_str("Inline(<secret>)"),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl Secret {
    fn new(inline: Option<&String>, file: Option<&PathBuf>) -> Self {
        match (inline, file) {
            (Some(s), _) => Secret::Inline(s.clone()),
            (None, Some(p)) => Secret::File(p.clone()),
            (None, None) => Secret::None,
        }
    }

    /// The current value; `None` when not configured.
    ///
    /// Errors: [`HttpClientError::ReadSecret`] when the file cannot be read.
    pub fn read(&self) -> Result<Option<String>, HttpClientError> {
        match self {
            Secret::None => Ok(None),
            Secret::Inline(s) => Ok(Some(s.clone())),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|source| HttpClientError::ReadSecret {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// How requests of one scrape or remote write config authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// No credentials.
    None,
    /// `basic_auth`: `Authorization: Basic base64(username:password)`.
    Basic {
        /// User name.
        username: String,
        /// Password; an absent one sends `username:`.
        password: Secret,
    },
    /// `authorization` (and `bearer_token*`): `Authorization: <scheme> <credentials>`; nothing is
    /// sent when no credentials are configured, as Prometheus.
    Header {
        /// Scheme word, e.g. `Bearer`.
        scheme: String,
        /// Credentials.
        credentials: Secret,
    },
}

impl Auth {
    /// The auth of `cfg` (validated config: at most one of basic auth and authorization).
    pub fn from_config(cfg: &HttpClientConfig) -> Self {
        if let Some(b) = &cfg.basic_auth {
            return Auth::Basic {
                username: b.username.clone(),
                password: Secret::new(b.password.as_ref(), b.password_file.as_ref()),
            };
        }
        match &cfg.authorization {
            Some(a) => Auth::Header {
                scheme: a.r#type.clone(),
                credentials: Secret::new(a.credentials.as_ref(), a.credentials_file.as_ref()),
            },
            None => Auth::None,
        }
    }

    /// The `Authorization` header value to send now, reading secret files; `None` when nothing
    /// is sent. Marked sensitive so it never shows in debug output.
    ///
    /// Errors: an unreadable secret file, or credentials that are not a valid header value.
    pub fn header(&self) -> Result<Option<HeaderValue>, HttpClientError> {
        let text = match self {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => {
                let password = password.read()?.unwrap_or_default();
                format!("Basic {}", STANDARD.encode(format!("{username}:{password}")))
            }
            Auth::Header { scheme, credentials } => match credentials.read()? {
                None => return Ok(None),
                Some(credentials) => format!("{scheme} {credentials}"),
            },
        };
        // Base64 makes any username and password valid; raw credentials may not be.
        let mut value = HeaderValue::from_str(&text).map_err(|_| HttpClientError::InvalidCredentials)?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// Adds the credentials to `req`, reading secret files now.
    ///
    /// Errors: as [`Auth::header`].
    pub fn apply(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, HttpClientError> {
        Ok(match self.header()? {
            Some(value) => req.header(AUTHORIZATION, value),
            None => req,
        })
    }
}
