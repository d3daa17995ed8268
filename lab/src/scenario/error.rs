//! Scenario errors as the user reads them: file, line, column, the field,
//! what was expected, and a hint (did-you-mean for misspelt keys and values).

use std::fmt;
use std::ops::Range;

/// An error in a scenario file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {file}: {message}")]
    Read { file: String, message: String },
    /// The file was read but is not a valid scenario.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    /// A `--set KEY=VALUE` override is malformed or does not apply.
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

/// One located problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted path of the field, e.g. `phase[1].load.rpc.rate_per_s`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
    pub hint: Option<String>,
    /// The offending source line and the width of the underline.
    pub snippet: String,
    pub underline: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.file, self.line, self.column, self.field, self.message
        )?;
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        write!(f, "\n{pad} |\n{num} | {}", self.snippet)?;
        write!(
            f,
            "\n{pad} | {}{}",
            " ".repeat(self.column.saturating_sub(1)),
            "^".repeat(self.underline.max(1))
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n{pad} = hint: {h}")?;
        }
        Ok(())
    }
}

/// The best match for a misspelt name among `candidates`, as a hint.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Builds a diagnostic for a byte span of `src`.
pub fn locate(
    file: &str,
    src: &str,
    span: Range<usize>,
    field: String,
    message: String,
    hint: Option<String>,
) -> Diagnostic {
    let start = floor_char(src, span.start.min(src.len()));
    let end = floor_char(src, span.end.clamp(start, src.len()));
    let line_start = src[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = src[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(src.len());
    let line = src[..start].matches('\n').count() + 1;
    let column = src[line_start..start].chars().count() + 1;
    let snippet = src[line_start..line_end].trim_end_matches('\r').to_string();
    let underline = src[start..end.min(line_end).max(start)].chars().count();
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        field,
        message,
        hint,
        snippet,
        underline,
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The dotted field path at byte `offset` of a TOML document: the enclosing
/// table header (arrays of tables get an index) and the key on that line.
/// A heuristic over lines (enough for the error messages of this format;
/// multi-line values report the key where they start).
pub fn field_path_at(src: &str, offset: usize) -> String {
    let offset = floor_char(src, offset.min(src.len()));
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut table = String::new();
    let mut pos = 0;
    for raw_line in src.split_inclusive('\n') {
        let line_end = pos + raw_line.len();
        let line = raw_line.trim();
        let on_this_line = offset >= pos && (offset < line_end || line_end == src.len());
        if let Some(h) = line.strip_prefix("[[") {
            let name = h.split("]]").next().unwrap_or("").trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(h) = line.strip_prefix('[') {
            let name = h.split(']').next().unwrap_or("").trim().to_string();
            table = indexed(&name, &counts);
        } else if on_this_line {
            let key = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if line.contains('=') && !key.is_empty() && !key.starts_with('#') {
                return join(&table, key);
            }
        }
        if on_this_line {
            return table;
        }
        pos = line_end;
    }
    table
}

/// `phase.load.rpc` -> `phase[2].load.rpc` when `phase` is an array of tables.
fn indexed(name: &str, counts: &std::collections::HashMap<String, usize>) -> String {
    let mut best: Option<(&String, usize)> = None;
    for (arr, n) in counts {
        if (name == arr || name.starts_with(&format!("{arr}.")))
            && best.is_none_or(|b| arr.len() > b.0.len())
        {
            best = Some((arr, *n));
        }
    }
    match best {
        Some((arr, n)) => format!("{arr}[{}]{}", n.saturating_sub(1), &name[arr.len()..]),
        None => name.to_string(),
    }
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// Backquoted names in a serde message: "unknown field `x`, expected one of `a`, `b`".
fn quoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turns a stage-one (TOML/serde) error into a diagnostic.
pub fn from_toml(file: &str, src: &str, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let mut field = field_path_at(src, span.start);
    let msg = match e.message().trim() {
        "" => "invalid TOML".to_string(),
        m => m.to_string(),
    };
    let (message, hint) = if let Some(rest) = msg.strip_prefix("unknown field ") {
        let names = quoted(rest);
        let (unknown, expected) = names
            .split_first()
            .map(|(u, e)| (*u, e.to_vec()))
            .unwrap_or(("", vec![]));
        let listing = if expected.is_empty() {
            "this table takes no keys".to_string()
        } else {
            format!(
                "expected one of {}",
                expected
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        (
            format!("unknown key `{unknown}`; {listing}"),
            did_you_mean(unknown, &expected)
                .or_else(|| Some("remove the key; docs/SCENARIOS.md lists every key".into())),
        )
    } else if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let names = quoted(rest);
        let (unknown, expected) = names
            .split_first()
            .map(|(u, e)| (*u, e.to_vec()))
            .unwrap_or(("", vec![]));
        (
            format!(
                "unknown value \"{unknown}\"; expected one of {}",
                expected
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            did_you_mean(unknown, &expected)
                .or_else(|| Some("docs/SCENARIOS.md lists the accepted values".into())),
        )
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        let name = quoted(rest).first().copied().unwrap_or("").to_string();
        field = join(&field, &name);
        (
            format!("missing required key `{name}`"),
            Some(format!(
                "add `{name} = ...` to this table (see docs/SCENARIOS.md)"
            )),
        )
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        (
            format!("wrong type: found {rest}"),
            Some("write numbers and booleans without quotes, strings with quotes".into()),
        )
    } else if let Some(rest) = msg.strip_prefix("invalid value: ") {
        (
            format!("invalid value: found {rest}"),
            Some("see docs/SCENARIOS.md for the accepted range".into()),
        )
    } else {
        (msg.clone(), Some("the file is not valid TOML here".into()))
    };
    if field.is_empty() {
        field = "(top level)".into();
    }
    locate(file, src, span, field, message, hint)
}
