//! What every layer's settings share: the report of a setting that cannot be used
//! ([`Invalid`]: its key and why; `config` adds where it came from), the checks several
//! layers make, and hiding a URL's password.

/// A setting that cannot be used: its key (`engineio.ping_interval`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

/// What a layer's settings check returns.
pub(crate) type Checked = Result<(), Invalid>;

/// The setting `key` cannot be used, because of `message`.
pub fn invalid(key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Each of `values` (a key and its value) must be greater than 0.
pub(crate) fn positive(values: &[(&str, u64)]) -> Checked {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(invalid(key, "must be greater than 0")),
        None => Ok(()),
    }
}

/// Each of `origins` (the setting `key`) must be an http(s) origin.
pub(crate) fn http_origins(key: &str, origins: &[String]) -> Checked {
    match origins
        .iter()
        .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
    {
        Some(origin) => Err(invalid(key, format!("{origin:?} is not an http(s) origin"))),
        None => Ok(()),
    }
}

/// Hides the password part of a database URL for logging.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
