//! A string that must never be printed: API keys, passwords, tokens.

use std::fmt;

/// A credential value. Its `Debug` and `Display` print `[redacted]`, so it can
/// sit in structs that are logged without leaking. It deserializes from a
/// plain string (configuration files).
///
/// ```
/// use tower_data_api::auth::Secret;
/// let key = Secret::new("s3cr3t");
/// assert_eq!(format!("{key:?}"), "Secret([redacted])");
/// assert_eq!(key.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself; use it only to check it, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, compared in constant time
    /// (for equal lengths), so timing does not reveal how much matched.
    ///
    /// ```
    /// use tower_data_api::auth::Secret;
    /// assert!(Secret::new("s3cr3t").matches("s3cr3t"));
    /// assert!(!Secret::new("s3cr3t").matches("s3cr3T"));
    /// ```
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
