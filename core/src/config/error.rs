//! Errors and warnings produced while loading `.properties` configuration.
//!
//! Every problem names where it came from (a file path or "command line") and the key,
//! so an operator can fix the file without reading our source. Errors stop startup;
//! warnings are logged by the caller and startup continues. RocketMQ itself silently
//! ignores unknown keys and unparsable values; we refuse bad values and warn on the rest.

use std::fmt;

/// A value that cannot be used: the broker or name server must not start with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: key `{key}`: {message}")]
pub struct ConfigError {
    /// The file path, or "command line" for overrides.
    pub source_name: String,
    /// The Java property key, exactly as RocketMQ spells it.
    pub key: String,
    /// What is wrong and, where possible, what is allowed.
    pub message: String,
}

impl ConfigError {
    /// Builds an error; a helper so call sites stay on one line.
    pub fn new(source_name: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Something suspicious that does not stop startup (unknown key, ignored key, duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file path, or "command line" for overrides.
    pub source_name: String,
    /// The Java property key as written in the source.
    pub key: String,
    /// What we noticed and what we did about it.
    pub message: String,
}

impl ConfigWarning {
    /// Builds a warning; a helper so call sites stay on one line.
    pub fn new(source_name: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigWarning {
            source_name: source_name.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: key `{}`: {}",
            self.source_name, self.key, self.message
        )
    }
}
