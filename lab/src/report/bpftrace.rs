//! Reader for bpftrace's printed maps: histograms (`@name[key]:` then `[lo, hi) n |@@|`
//! lines), counters (`@name[a, b]: N`), multi-line stack keys (`@name[\n frames\n]: N`),
//! and stack values (`@ks[tid]:` then indented frames). Duplicated keys are merged and
//! reported; maps nobody asks for (helper maps such as `@start`, `@off`) are listed.

use super::hist::{parse_hist_line, Log2Hist};
use std::collections::BTreeMap;

/// A map key: the comma-separated parts of `[a, b]`, or a kernel stack (root last, as
/// bpftrace prints it: leaf first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    None,
    Parts(Vec<String>),
    Stack(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Hist(Log2Hist),
    Scalar(i64),
    /// A stack printed as a value (`@ks[tid]:` then frames): helper output.
    Stack(Vec<String>),
}

/// All maps of one bpftrace output, in first-seen order per map.
#[derive(Debug, Default, Clone)]
pub struct Dump {
    maps: BTreeMap<String, Vec<(Key, Value)>>,
    /// Human-readable notes about quirks met while parsing (merged duplicates, odd lines).
    pub notes: Vec<String>,
}

impl Dump {
    pub fn parse(text: &str) -> Dump {
        let mut dump = Dump::default();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        let mut skipped = 0usize;
        while i < lines.len() {
            let line = lines[i];
            let t = line.trim_end();
            if !t.starts_with('@') {
                if !t.trim().is_empty()
                    && !t.starts_with("Attaching")
                    && t.trim() != "done"
                    && !t.starts_with("Lost ")
                {
                    skipped += 1;
                }
                i += 1;
                continue;
            }
            let name_end = t.find(['[', ':']).unwrap_or(t.len());
            let name = t[1..name_end].to_string();
            let rest = &t[name_end..];
            let (key, value_str);
            if rest == "[" {
                // multi-line stack key
                let mut frames = Vec::new();
                i += 1;
                let mut val = "";
                while i < lines.len() {
                    let l = lines[i].trim();
                    if let Some(v) = l.strip_prefix("]:") {
                        val = v;
                        break;
                    }
                    if !l.is_empty() {
                        frames.push(l.to_string());
                    }
                    i += 1;
                }
                key = Key::Stack(frames);
                value_str = val.trim().to_string();
            } else if let Some(inner) = rest.strip_prefix('[') {
                match inner.rfind("]:") {
                    Some(end) => {
                        key = Key::Parts(split_key(&inner[..end]));
                        value_str = inner[end + 2..].trim().to_string();
                    }
                    None => {
                        dump.notes.push(format!("unreadable map line skipped: {t}"));
                        i += 1;
                        continue;
                    }
                }
            } else if let Some(v) = rest.strip_prefix(':') {
                key = Key::None;
                value_str = v.trim().to_string();
            } else {
                dump.notes.push(format!("unreadable map line skipped: {t}"));
                i += 1;
                continue;
            }
            i += 1;
            let value = if !value_str.is_empty() {
                match value_str.parse::<i64>() {
                    Ok(v) => Value::Scalar(v),
                    Err(_) => {
                        dump.notes
                            .push(format!("@{name}: non-numeric value {value_str:?} skipped"));
                        continue;
                    }
                }
            } else {
                // histogram lines or indented stack frames follow
                let mut hist = Log2Hist::default();
                let mut frames = Vec::new();
                let mut is_hist = false;
                while i < lines.len() {
                    let l = lines[i];
                    if l.trim().is_empty() || l.starts_with('@') {
                        break;
                    }
                    if let Some(b) = parse_hist_line(l) {
                        is_hist = true;
                        hist.add(b);
                    } else if l.starts_with(char::is_whitespace) {
                        frames.push(l.trim().to_string());
                    } else {
                        break;
                    }
                    i += 1;
                }
                if is_hist {
                    Value::Hist(hist)
                } else if !frames.is_empty() {
                    Value::Stack(frames)
                } else {
                    Value::Hist(hist)
                }
            };
            dump.insert(name, key, value);
        }
        if skipped > 0 {
            dump.notes
                .push(format!("{skipped} lines outside any map were ignored"));
        }
        dump
    }

    fn insert(&mut self, name: String, key: Key, value: Value) {
        let entries = self.maps.entry(name.clone()).or_default();
        if let Some((_, existing)) = entries.iter_mut().find(|(k, _)| *k == key) {
            let merged = match (existing, &value) {
                (Value::Hist(a), Value::Hist(b)) => {
                    a.merge(b);
                    true
                }
                (Value::Scalar(a), Value::Scalar(b)) => {
                    *a += b;
                    true
                }
                _ => false,
            };
            let key_text = key_display(&key);
            self.notes.push(if merged {
                format!(
                    "@{name}{key_text} appeared more than once; the entries were merged (summed). \
                     bpftrace prints distinct kernel keys that differ only after a NUL byte \
                     (e.g. stray bytes in an rwbs char array) as the same key"
                )
            } else {
                format!("@{name}{key_text} appeared more than once with different kinds; kept the first")
            });
        } else {
            entries.push((key, value));
        }
    }

    pub fn map_names(&self) -> impl Iterator<Item = &str> {
        self.maps.keys().map(String::as_str)
    }

    pub fn entries(&self, name: &str) -> &[(Key, Value)] {
        self.maps.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, name: &str) -> bool {
        self.maps.contains_key(name)
    }

    /// Histograms of a map; the key joined with ", " (empty for a keyless map).
    pub fn hists(&self, name: &str) -> BTreeMap<String, Log2Hist> {
        let mut out = BTreeMap::new();
        for (k, v) in self.entries(name) {
            if let Value::Hist(h) = v {
                out.insert(key_string(k), h.clone());
            }
        }
        out
    }

    /// Scalar values of a map with their key parts.
    pub fn scalars(&self, name: &str) -> Vec<(Key, i64)> {
        self.entries(name)
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Scalar(s) => Some((k.clone(), *s)),
                _ => None,
            })
            .collect()
    }

    /// Maps not in `used`, with their entry counts (helper maps left over by a script).
    pub fn unused(&self, used: &[&str]) -> Vec<(String, usize)> {
        self.maps
            .iter()
            .filter(|(n, _)| !used.contains(&n.as_str()))
            .map(|(n, e)| (n.clone(), e.len()))
            .collect()
    }
}

/// Splits `a, b` at top-level commas (commas inside brackets, as in `runc:[0:PARENT]`, stay).
fn split_key(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' | '(' => {
                depth += 1;
                cur.push(c)
            }
            ']' | ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => {
                parts.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    parts.push(cur.trim().to_string());
    parts
}

pub fn key_string(k: &Key) -> String {
    match k {
        Key::None => String::new(),
        Key::Parts(p) => p.join(", "),
        Key::Stack(f) => f.join(";"),
    }
}

fn key_display(k: &Key) -> String {
    match k {
        Key::None => String::new(),
        Key::Parts(p) => format!("[{}]", p.join(", ")),
        Key::Stack(f) => format!("[stack of {} frames]", f.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Attaching 5 probes...\ndone\n\n\n@by_comm_us[alloy]: \n[2K, 4K)               4 |@@@@|\n[4K, 8K)               2 |@@  |\n\n\n@calls[alloy]: 6\n@op_by_thread[runc:[0:PARENT], tracepoint:syscalls:sys_enter_write]: 18\n@fsync_latency_us: \n[2K, 4K)               4 |@@@@|\n\n@x[W]: \n[1, 2)  1 |@|\n\n@x[W]: \n[1, 2)  2 |@|\n[2, 4)  1 |@|\n@start[1, 2]: 8670325145422633\n@ks[254072]: \n        perf_trace_sched_switch+20\n        __schedule+1156\n@offcpu_us[\n    __schedule+1156\n    schedule+52\n]: 14997651\n";

    #[test]
    fn parses_all_shapes_and_merges_duplicates() {
        let d = Dump::parse(SAMPLE);
        let h = d.hists("by_comm_us");
        assert_eq!(h["alloy"].total(), 6);
        assert_eq!(d.hists("fsync_latency_us")[""].total(), 4);
        assert_eq!(d.scalars("calls")[0].1, 6);
        let ops = d.scalars("op_by_thread");
        assert_eq!(
            ops[0].0,
            Key::Parts(vec![
                "runc:[0:PARENT]".into(),
                "tracepoint:syscalls:sys_enter_write".into()
            ])
        );
        assert_eq!(d.hists("x")["W"].total(), 4);
        assert!(d
            .notes
            .iter()
            .any(|n| n.contains("@x[W] appeared more than once")));
        let off = d.scalars("offcpu_us");
        assert_eq!(
            off[0],
            (
                Key::Stack(vec!["__schedule+1156".into(), "schedule+52".into()]),
                14997651
            )
        );
        assert!(matches!(d.entries("ks")[0].1, Value::Stack(ref f) if f.len() == 2));
        let unused = d.unused(&[
            "by_comm_us",
            "calls",
            "fsync_latency_us",
            "op_by_thread",
            "x",
            "offcpu_us",
        ]);
        assert_eq!(
            unused,
            vec![("ks".to_string(), 1), ("start".to_string(), 1)]
        );
    }
}
