//! `java_enum!`: Rust enums for Java enums that travel in JSON bodies.
//!
//! fastjson writes a Java enum as its name (`"CLUSTERING"`), but the C++ client writes the
//! ordinal (`1`) and some clients quote the ordinal (`"1"`). The generated `Deserialize` accepts
//! all three; `Serialize` writes the name, which every client reads. Variants must be listed in
//! Java declaration order, because the ordinal is the position.

use serde::Deserialize;

/// A JSON enum value as any client sends it.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum NameOrOrdinal {
    Ordinal(i64),
    Name(String),
}

macro_rules! java_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $java:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant in Java declaration (ordinal) order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The Java enum constant name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $java,)+ }
            }

            /// The Java ordinal.
            pub fn ordinal(self) -> i32 {
                Self::ALL.iter().position(|v| *v == self).unwrap_or(0) as i32
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }

            pub fn from_ordinal(ordinal: i64) -> Option<Self> {
                usize::try_from(ordinal).ok().and_then(|i| Self::ALL.get(i).copied())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use $crate::body::java_enum::NameOrOrdinal;
                let parsed = match NameOrOrdinal::deserialize(deserializer)? {
                    NameOrOrdinal::Ordinal(ordinal) => Self::from_ordinal(ordinal),
                    NameOrOrdinal::Name(name) => Self::from_name(&name)
                        .or_else(|| name.trim().parse().ok().and_then(Self::from_ordinal)),
                };
                parsed.ok_or_else(|| {
                    serde::de::Error::custom(concat!("unknown ", stringify!($name), " value"))
                })
            }
        }
    };
}
