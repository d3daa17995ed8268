//! A small document model (headings, paragraphs, lists, tables, inline SVGs) rendered to
//! Markdown and to one self-contained HTML file. Output is deterministic: same input, same
//! bytes.

/// One block of a document.
#[derive(Debug, Clone)]
pub enum Block {
    H(u8, String),
    P(String),
    Warn(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
    /// An SVG picture: title, markdown link target (relative path) if the file exists in
    /// the bundle, inline SVG text for the HTML.
    Svg {
        title: String,
        link: Option<String>,
        svg: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn h(&mut self, level: u8, s: impl Into<String>) {
        self.blocks.push(Block::H(level, s.into()));
    }
    pub fn p(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::P(s.into()));
    }
    pub fn warn(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Warn(s.into()));
    }
    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }
    pub fn table(&mut self, head: &[&str], rows: Vec<Vec<String>>) {
        if !rows.is_empty() {
            self.blocks.push(Block::Table(
                head.iter().map(|s| s.to_string()).collect(),
                rows,
            ));
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut o = format!("# {}\n\n", self.title);
        for b in &self.blocks {
            match b {
                Block::H(l, s) => o.push_str(&format!("{} {}\n\n", "#".repeat(*l as usize + 1), s)),
                Block::P(s) => o.push_str(&format!("{s}\n\n")),
                Block::Warn(s) => o.push_str(&format!("> **Warning:** {s}\n\n")),
                Block::List(items) => {
                    for i in items {
                        o.push_str(&format!("- {i}\n"));
                    }
                    o.push('\n');
                }
                Block::Table(h, rows) => {
                    o.push_str(&format!("| {} |\n", h.join(" | ")));
                    o.push_str(&format!("|{}\n", "---|".repeat(h.len())));
                    for r in rows {
                        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
                        o.push_str(&format!("| {} |\n", cells.join(" | ")));
                    }
                    o.push('\n');
                }
                Block::Svg { title, link, svg } => match link {
                    Some(l) => o.push_str(&format!("![{title}]({l})\n\n")),
                    None if svg.is_some() => {
                        o.push_str(&format!("{title}: inline in report.html\n\n"))
                    }
                    None => {}
                },
            }
        }
        o
    }

    pub fn to_html(&self) -> String {
        let mut o = String::new();
        o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        o.push_str(&format!("<title>{}</title>\n", esc(&self.title)));
        o.push_str("<style>\nbody{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\ntable{border-collapse:collapse;margin:0.5em 0 1em}\ntd,th{border:1px solid #bbb;padding:2px 8px;text-align:left;font-size:90%}\nth{background:#eee}\n.warn{background:#fff3cd;border-left:4px solid #d39e00;padding:0.5em 1em}\niframe{width:100%;height:520px;border:1px solid #ccc}\ncode{background:#f4f4f4}\n</style>\n</head>\n<body>\n");
        o.push_str(&format!("<h1>{}</h1>\n", esc(&self.title)));
        for b in &self.blocks {
            match b {
                Block::H(l, s) => {
                    let l = (*l + 1).min(6);
                    o.push_str(&format!("<h{l}>{}</h{l}>\n", inline(s)))
                }
                Block::P(s) => o.push_str(&format!("<p>{}</p>\n", inline(s))),
                Block::Warn(s) => o.push_str(&format!(
                    "<p class=\"warn\"><strong>Warning:</strong> {}</p>\n",
                    inline(s)
                )),
                Block::List(items) => {
                    o.push_str("<ul>\n");
                    for i in items {
                        o.push_str(&format!("<li>{}</li>\n", inline(i)));
                    }
                    o.push_str("</ul>\n");
                }
                Block::Table(h, rows) => {
                    o.push_str("<table>\n<tr>");
                    for c in h {
                        o.push_str(&format!("<th>{}</th>", inline(c)));
                    }
                    o.push_str("</tr>\n");
                    for r in rows {
                        o.push_str("<tr>");
                        for c in r {
                            o.push_str(&format!("<td>{}</td>", inline(c)));
                        }
                        o.push_str("</tr>\n");
                    }
                    o.push_str("</table>\n");
                }
                Block::Svg { title, svg, .. } => {
                    if let Some(svg) = svg {
                        o.push_str(&format!("<h4>{}</h4>\n", esc(title)));
                        if svg.contains("<script") {
                            // interactive flame graphs keep their script in an isolated frame
                            o.push_str(&format!(
                                "<iframe sandbox=\"\" title=\"{}\" srcdoc=\"{}\"></iframe>\n",
                                esc(title),
                                esc(svg)
                            ));
                        } else {
                            let body = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg);
                            o.push_str(&format!("<div class=\"svg\">{body}</div>\n"));
                        }
                    }
                }
            }
        }
        o.push_str("</body>\n</html>\n");
        o
    }
}

/// HTML escaping for text and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Escapes and turns `code` spans and **bold** into HTML.
fn inline(s: &str) -> String {
    let mut o = String::new();
    let mut in_code = false;
    for (i, part) in s.split('`').enumerate() {
        if i > 0 {
            o.push_str(if in_code { "</code>" } else { "<code>" });
            in_code = !in_code;
        }
        if in_code {
            o.push_str(&esc(part));
        } else {
            let mut bold = false;
            for (j, q) in part.split("**").enumerate() {
                if j > 0 {
                    o.push_str(if bold { "</strong>" } else { "<strong>" });
                    bold = !bold;
                }
                o.push_str(&esc(q));
            }
            if bold {
                o.push_str("</strong>");
            }
        }
    }
    if in_code {
        o.push_str("</code>");
    }
    o
}

/// A number for people: integers without decimals, others with three significant
/// decimals at most, thousands not separated (stable, greppable).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// A figure result as a cell: the number with its unit, or "cannot evaluate: reason".
pub fn cell(r: &Result<f64, String>, unit: &str) -> String {
    match r {
        Ok(v) if unit == "%" => format!("{}%", num(*v)),
        Ok(v) if unit.is_empty() => num(*v),
        Ok(v) => format!("{} {unit}", num(*v)),
        Err(e) => format!("cannot evaluate: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(47.0549), "47.05");
        assert_eq!(num(0.12345), "0.123");
        assert_eq!(num(1234.56), "1234.6");
        assert_eq!(num(f64::NAN), "n/a");
    }

    #[test]
    fn html_inline() {
        assert_eq!(
            inline("a `<b>` **c**"),
            "a <code>&lt;b&gt;</code> <strong>c</strong>"
        );
    }
}
