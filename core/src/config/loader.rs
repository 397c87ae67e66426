//! The loading steps shared by the broker and name server configs: reading a file, applying
//! entries in order (last duplicate wins, as in Java), and turning everything that is not a
//! typed key into either an accepted-without-effect key or an "unknown key" warning.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::error::{ConfigError, ConfigWarning};
use super::keys::{IgnoredKey, find_ignored};
use super::properties::{Properties, PropertyEntry, parse_properties};

/// Source name used for (key, value) overrides given on the command line.
pub const COMMAND_LINE: &str = "command line";

/// Reads and parses a properties file. UTF-8 is tried first; otherwise the bytes are decoded as
/// ISO-8859-1, which is what Java's `Properties.load(InputStream)` always does.
pub fn read_properties_file(path: &Path) -> Result<(Properties, String), ConfigError> {
    let source_name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(&source_name, "-c", format!("cannot read the file: {e}")))?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    Ok((parse_properties(&text), source_name))
}

/// Where an entry came from, for messages: "line 12: " in files, nothing for overrides.
pub fn line_prefix(entry: &PropertyEntry) -> String {
    if entry.line == 0 {
        String::new()
    } else {
        format!("line {}: ", entry.line)
    }
}

/// Everything `apply_entries` needs to know about one config's key space.
pub struct KeySpace<'a> {
    /// Keys stored in typed fields (and special keys), for "did you mean" suggestions.
    pub known: &'a [&'a str],
    /// Keys accepted without effect.
    pub ignored: &'a [&'a [IgnoredKey]],
}

/// Applies entries in order. `set` returns `None` for keys it does not handle; those are looked
/// up in the ignored tables (value kept in `ignored_values`) or reported as unknown.
pub fn apply_entries(
    props: &Properties,
    source: &str,
    keys: &KeySpace<'_>,
    warnings: &mut Vec<ConfigWarning>,
    ignored_values: &mut BTreeMap<String, String>,
    mut set: impl FnMut(&PropertyEntry) -> Option<Result<(), String>>,
) -> Result<(), ConfigError> {
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for entry in &props.entries {
        warn_suspicious_value(entry, source, warnings);
        if let Some(first) = first_line.insert(&entry.key, entry.line) {
            let message = format!(
                "{}set again (first on line {first}); the last value wins",
                line_prefix(entry)
            );
            warnings.push(ConfigWarning::new(source, &entry.key, message));
        }
        match set(entry) {
            Some(Ok(())) => {}
            Some(Err(message)) => {
                let message = format!("{}{message}", line_prefix(entry));
                return Err(ConfigError::new(source, &entry.key, message));
            }
            None => handle_untyped(entry, source, keys, warnings, ignored_values),
        }
    }
    Ok(())
}

fn handle_untyped(
    entry: &PropertyEntry,
    source: &str,
    keys: &KeySpace<'_>,
    warnings: &mut Vec<ConfigWarning>,
    ignored_values: &mut BTreeMap<String, String>,
) {
    let prefix = line_prefix(entry);
    let Some(ignored) = find_ignored(keys.ignored, &entry.key) else {
        // a remote UPDATE_BROKER_CONFIG body can hold a million unknown keys: only the first
        // few get a "did you mean" (each costs an edit distance per known key)
        let suggestion = if warnings.len() < MAX_SUGGESTIONS {
            suggest(&entry.key, keys)
        } else {
            None
        };
        let hint = match suggestion {
            Some(known) => format!("; did you mean `{known}`? (keys are case-sensitive)"),
            None => String::new(),
        };
        let message = format!("{prefix}unknown key, ignored (RocketMQ ignores it too){hint}");
        warnings.push(ConfigWarning::new(source, &entry.key, message));
        return;
    };
    ignored_values.insert(entry.key.clone(), entry.value.clone());
    if let Some(off) = ignored.off
        && !entry.value.eq_ignore_ascii_case(off)
    {
        let message = format!("{prefix}`{}` is {}", entry.value, ignored.reason.describe());
        warnings.push(ConfigWarning::new(source, &entry.key, message));
    }
}

fn warn_suspicious_value(entry: &PropertyEntry, source: &str, warnings: &mut Vec<ConfigWarning>) {
    let prefix = line_prefix(entry);
    if entry.value.contains(" #") || entry.value.contains("\t#") {
        let message = format!(
            "{prefix}value \"{}\" contains \" #\": .properties files have no inline comments, \
             so this is all part of the value; put the comment on its own line",
            entry.value
        );
        warnings.push(ConfigWarning::new(source, &entry.key, message));
    }
    if entry.value.contains(char::REPLACEMENT_CHARACTER) {
        let message = format!("{prefix}malformed \\u escape (Java would refuse the whole file)");
        warnings.push(ConfigWarning::new(source, &entry.key, message));
    }
}

/// Warnings of one source after which unknown keys get no suggestion.
const MAX_SUGGESTIONS: usize = 64;

/// A known key that differs only in case or by at most two edits.
fn suggest<'a>(unknown: &str, keys: &KeySpace<'a>) -> Option<&'a str> {
    let ignored = keys.ignored.iter().flat_map(|t| t.iter()).map(|k| k.key);
    let candidates = keys.known.iter().copied().chain(ignored);
    candidates
        // the edit distance is at least the length difference: a key of another length
        // (a 1 MB one from a remote config update) is never compared cell by cell
        .filter(|known| known.len().abs_diff(unknown.len()) <= 2)
        .map(|known| {
            let distance = if known.eq_ignore_ascii_case(unknown) {
                0
            } else {
                edit_distance(known, unknown)
            };
            (distance, known)
        })
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes; keys are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("listenPort", "listenPort"), 0);
        assert_eq!(edit_distance("listenPort", "listenPrt"), 1);
        assert_eq!(edit_distance("brokerName", "brokerNmae"), 2);
    }

    #[test]
    fn suggestions_are_case_insensitive_or_close() {
        let keys = KeySpace {
            known: &["brokerIP1", "listenPort"],
            ignored: &[],
        };
        assert_eq!(suggest("brokerip1", &keys), Some("brokerIP1"));
        assert_eq!(suggest("listenPotr", &keys), Some("listenPort"));
        assert_eq!(suggest("somethingElse", &keys), None);
    }
}
