//! The one parser of the Prometheus text exposition format (version 0.0.4)
//! in the workspace. Before issue 14 there were three that disagreed on where
//! the labels end (`find('}')` against `rfind('}')`) and on which token is the
//! value (the first after the labels against the last of the line, which is
//! the timestamp when there is one).
//!
//! A sample line is `name[{label="value",...}] value [timestamp]`. The labels
//! are scanned quote-aware, so a `}` or an escaped `"` inside a label value
//! does not end them. A sample is keyed by its series as written
//! (`name{labels}`, or `name`); comments, blank lines and lines that are not
//! samples are skipped.

use std::collections::BTreeMap;

/// One sample of an exposition, borrowed from its line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The series as written: `name{labels}` or `name`.
    pub key: &'a str,
    /// The metric name (the key without its labels).
    pub name: &'a str,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

/// The samples of `text`, in order.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

/// The sample on one line; `None` for a comment, a blank line or a line that
/// is not a sample.
pub fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let key_end = if line[name_end..].starts_with('{') {
        name_end + labels_len(&line[name_end..])?
    } else {
        name_end
    };
    let rest = &line[key_end..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    // Rust's float parser takes `+Inf`, `-Inf` and `NaN` (any case).
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        key: &line[..key_end],
        name,
        value,
    })
}

/// Length of the label set at the start of `s` (which starts with `{`), up to
/// and including the `}` that closes it outside any quoted value.
fn labels_len(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices().skip(1) {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == '}' {
            return Some(i + 1);
        }
    }
    None
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every sample of `text` by series key; a repeated series keeps its last value.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    samples(text).map(|s| (s.key.to_owned(), s.value)).collect()
}

/// The metric name of a series key (`name{labels}` -> `name`).
pub fn metric_name(key: &str) -> &str {
    &key[..key.find('{').unwrap_or(key.len())]
}

/// The sum of every sample of metric `name` (any labels); `None` when there is none.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    samples(text)
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

/// The value of the first sample of series `key` (`name{labels}` as written, or `name`).
pub fn value(text: &str, key: &str) -> Option<f64> {
    samples(text).find(|s| s.key == key).map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_values_and_timestamps() {
        let t = "# HELP x y\n# TYPE x counter\nx 3\ny{cf=\"a b\"} 1.5 1700000000\nbad\n\nz +Inf\n";
        let m = parse(t);
        assert_eq!(m["x"], 3.0);
        assert_eq!(m["y{cf=\"a b\"}"], 1.5, "the value, not the timestamp");
        assert_eq!(m["z"], f64::INFINITY);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(metric_name("y{cf=\"a b\"}"), "y");
        assert_eq!(metric_name("x"), "x");
    }

    /// Regression (issue 14): the parsers disagreed on a label value holding
    /// `}`; `find('}')` cut the key inside the value, and the rest of the line
    /// did not parse as a value.
    #[test]
    fn a_label_value_may_hold_a_brace_or_an_escaped_quote() {
        let t = "m{path=\"/a}b\",cf=\"x\"} 4 1700000000\nq{l=\"say \\\"}\\\" \"} 2\n";
        let s: Vec<_> = samples(t).collect();
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].key, "m{path=\"/a}b\",cf=\"x\"}");
        assert_eq!(s[0].name, "m");
        assert_eq!(s[0].value, 4.0);
        assert_eq!(s[1].key, "q{l=\"say \\\"}\\\" \"}");
        assert_eq!(s[1].value, 2.0);
        assert_eq!(metric_name(s[0].key), "m");
    }

    #[test]
    fn unclosed_labels_and_missing_values_are_not_samples() {
        assert_eq!(sample("m{a=\"b\" 3"), None);
        assert_eq!(sample("m{a=\"b\"}"), None);
        assert_eq!(sample("m{a=\"b\"}3"), None);
        assert_eq!(sample("m notanumber"), None);
        assert_eq!(sample("9m 1"), None);
    }

    #[test]
    fn sums_across_labels_and_skips_prefix_matches() {
        let t = "# HELP qfc_rocksdb_l0_files x\nqfc_rocksdb_l0_files{cf=\"state\"} 3\nqfc_rocksdb_l0_files{cf=\"bodies\"} 2 1700000000\nqfc_rocksdb_l0_files_other 9\n";
        assert_eq!(sum(t, "qfc_rocksdb_l0_files"), Some(5.0));
        assert_eq!(sum(t, "qfc_rocksdb_pending_compaction_bytes"), None);
        assert_eq!(sum("x 1.5\n", "x"), Some(1.5));
        assert_eq!(value(t, "qfc_rocksdb_l0_files{cf=\"bodies\"}"), Some(2.0));
        assert_eq!(value(t, "qfc_rocksdb_l0_files_other"), Some(9.0));
        assert_eq!(value(t, "qfc_rocksdb_l0_files"), None);
    }
}
