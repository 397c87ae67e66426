//! Typed parsing and rendering of property values, and the `config_struct!` macro that turns a
//! key table into a struct, its defaults, a setter by key and `key=value` rendering.
//!
//! One table per config keeps the Java key, the Rust field, its type and its default on one line,
//! so they cannot drift apart. Parsing is stricter than RocketMQ's `MixAll.properties2Object`,
//! which swallows every exception: a value we cannot parse is an error naming the key.

use std::path::PathBuf;

/// A type that a property value can be parsed into and rendered back from.
pub(crate) trait ConfigValue: Sized {
    /// Parses a trimmed value; the error text is shown after "key `x`: ".
    fn parse_value(raw: &str) -> Result<Self, String>;
    /// Renders for GET_BROKER_CONFIG; `None` means "unset, omit the key" (Java skips nulls).
    fn render_value(&self) -> Option<String>;
}

/// Appended to parse errors when the value looks like it carries an inline comment.
fn inline_comment_hint(raw: &str) -> &'static str {
    if raw.contains('#') {
        " (.properties files have no inline comments: put the comment on its own line)"
    } else {
        ""
    }
}

macro_rules! impl_integer_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse_value(raw: &str) -> Result<Self, String> {
                let wide: i128 = raw.parse().map_err(|_| {
                    format!("expected an integer, got \"{raw}\"{}", inline_comment_hint(raw))
                })?;
                <$t>::try_from(wide).map_err(|_| {
                    format!("{wide} is out of range {}..={}", <$t>::MIN, <$t>::MAX)
                })
            }
            fn render_value(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
impl_integer_value!(i32, i64, u16, u32, u64);

impl ConfigValue for bool {
    /// Java's `Boolean.parseBoolean` turns every typo into `false`; we refuse typos.
    fn parse_value(raw: &str) -> Result<Self, String> {
        if raw.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if raw.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(format!(
                "expected true or false, got \"{raw}\"{}",
                inline_comment_hint(raw)
            ))
        }
    }
    fn render_value(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl ConfigValue for String {
    fn parse_value(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
    fn render_value(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl ConfigValue for PathBuf {
    fn parse_value(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("expected a path, got an empty value".to_owned());
        }
        Ok(PathBuf::from(raw))
    }
    fn render_value(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

/// An empty value means "unset" (Java would store an empty string and misbehave later).
impl<T: ConfigValue> ConfigValue for Option<T> {
    fn parse_value(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            Ok(None)
        } else {
            T::parse_value(raw).map(Some)
        }
    }
    fn render_value(&self) -> Option<String> {
        self.as_ref().and_then(ConfigValue::render_value)
    }
}

/// Escapes a value for a `key=value` line that Java's `Properties.load` reads back unchanged.
pub(crate) fn escape_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// The user's home directory, like Java's `user.home`; "/" if unknown.
pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$HOME/<relative>` as a string, for defaults that RocketMQ derives from `user.home`.
pub(crate) fn home_path(relative: &str) -> String {
    home_dir().join(relative).display().to_string()
}

/// Declares a config struct from a table of `"javaKey" => field: Type = default`, plus extra
/// fields that are not keys. Generates `Default`, `KEYS`, `set_key` and `render_keys`.
macro_rules! config_struct {
    (
        $(#[$struct_meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $key:literal => $field:ident : $ty:ty = $default:expr, )*
        }
        extra {
            $( $(#[doc = $extra_doc:literal])* $extra:ident : $extra_ty:ty = $extra_default:expr, )*
        }
    ) => {
        $(#[$struct_meta])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $( $(#[doc = $extra_doc])* pub $extra: $extra_ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $( $extra: $extra_default, )*
                }
            }
        }

        impl $name {
            /// Every key this config stores in a typed field, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];

            /// Sets a typed field from its Java key. `None`: not a typed key of this config.
            fn set_key(&mut self, key: &str, raw: &str) -> Option<Result<(), String>> {
                use $crate::config::value::ConfigValue;
                match key {
                    $( $key => Some(<$ty>::parse_value(raw).map(|v| self.$field = v)), )*
                    _ => None,
                }
            }

            /// Appends `key=value\n` for every typed field that is set.
            fn render_keys(&self, out: &mut String) {
                use $crate::config::value::ConfigValue;
                $(
                    if let Some(value) = self.$field.render_value() {
                        out.push_str($key);
                        out.push('=');
                        out.push_str(&$crate::config::value::escape_value(&value));
                        out.push('\n');
                    }
                )*
            }
        }
    };
}
pub(crate) use config_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(i32::parse_value("42"), Ok(42));
        assert_eq!(i64::parse_value("-7"), Ok(-7));
        assert_eq!(u16::parse_value("+10911"), Ok(10911));
        let err = u16::parse_value("70000").unwrap_err();
        assert!(err.contains("out of range 0..=65535"), "{err}");
        let err = i32::parse_value("10911x").unwrap_err();
        assert_eq!(err, "expected an integer, got \"10911x\"");
        let err = i32::parse_value("10911  # port").unwrap_err();
        assert!(err.contains("no inline comments"), "{err}");
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(bool::parse_value("TRUE"), Ok(true));
        assert_eq!(bool::parse_value("False"), Ok(false));
        assert!(
            bool::parse_value("yes")
                .unwrap_err()
                .contains("expected true or false")
        );
    }

    #[test]
    fn options_treat_empty_as_unset() {
        assert_eq!(Option::<String>::parse_value(""), Ok(None));
        assert_eq!(Option::<u16>::parse_value("10912"), Ok(Some(10912)));
        assert_eq!(Option::<String>::None.render_value(), None);
    }

    #[test]
    fn escaping_round_trips_through_the_parser() {
        let value = "a\\b\nc\td";
        let line = format!("k={}", escape_value(value));
        let props = crate::config::properties::parse_properties(&line);
        assert_eq!(props.entries[0].value, value);
    }
}
