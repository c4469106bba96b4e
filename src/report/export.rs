//! One small renderer per output format behind a one-method trait (hyperfine's export/ style).
//! Markdown links plots as files under plots/; HTML inlines them so the file works offline.

use super::Block;
use super::svg::esc;
use crate::error::Result;
use crate::store::{create_dir, write_atomic};
use std::path::{Path, PathBuf};

/// A rendered document and the side files it links to (paths relative to the document).
pub struct Rendered {
    /// The document's text.
    pub text: String,
    /// Files the document refers to, with their contents.
    pub files: Vec<(PathBuf, String)>,
}

/// One output format.
pub trait Exporter {
    /// Renders the blocks; writes nothing.
    fn render(&self, blocks: &[Block]) -> Rendered;
}

/// report.md, with plots linked as files under plots/.
pub struct Markdown;
/// report.html, self-contained (plots inlined).
pub struct Html;

/// A table cell's text, inert in Markdown: a pipe would end the cell, `*` and backticks would
/// start emphasis or code, and `<` raw HTML (metric names and trial names are the user's).
fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '`' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Exporter for Markdown {
    fn render(&self, blocks: &[Block]) -> Rendered {
        let mut s = String::new();
        let mut files = vec![];
        for b in blocks {
            match b {
                Block::Heading(level, t) => s += &format!("{} {t}\n\n", "#".repeat(*level)),
                Block::Para(t) => s += &format!("{t}\n\n"),
                Block::Table(h, rows, best) => {
                    s += &format!(
                        "| {} |\n",
                        h.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                    s += &format!("|{}\n", "---|".repeat(h.len()));
                    for (i, r) in rows.iter().enumerate() {
                        let cells: Vec<String> = r
                            .iter()
                            .map(|c| {
                                if Some(i) == *best && !c.is_empty() {
                                    format!("**{}**", md_cell(c))
                                } else {
                                    md_cell(c)
                                }
                            })
                            .collect();
                        s += &format!("| {} |\n", cells.join(" | "));
                    }
                    s.push('\n');
                }
                Block::Plot(stem, svg) => {
                    files.push((Path::new("plots").join(format!("{stem}.svg")), svg.clone()));
                    s += &format!("![{stem}](plots/{stem}.svg)\n\n");
                }
            }
        }
        Rendered { text: s, files }
    }
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#f3f3f3}tr.best td{background:#e6f4e6;font-weight:bold}svg{max-width:100%;height:auto;margin:.5em 0}\
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}.wide{overflow-x:auto}";

/// Minimal inline Markdown for paragraphs: **bold**, `code`, and "- " lists.
fn inline(t: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let e = esc(t);
    let mut chars = e.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' && chars.peek() == Some(&'*') {
            chars.next();
            out += if bold { "</b>" } else { "<b>" };
            bold = !bold;
        } else if c == '`' {
            out += if code { "</code>" } else { "<code>" };
            code = !code;
        } else {
            out.push(c);
        }
    }
    out
}

impl Exporter for Html {
    fn render(&self, blocks: &[Block]) -> Rendered {
        let title = blocks
            .iter()
            .find_map(|b| match b {
                Block::Heading(1, t) => Some(t.replace('`', "")),
                _ => None,
            })
            .unwrap_or_else(|| "hypersweep report".into());
        let mut s = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
            esc(&title)
        );
        for b in blocks {
            match b {
                Block::Heading(level, t) => s += &format!("<h{level}>{}</h{level}>\n", inline(t)),
                Block::Para(t) => {
                    if t.lines().all(|l| l.starts_with("- ")) {
                        s += "<ul>";
                        for l in t.lines() {
                            s += &format!("<li>{}</li>", inline(&l[2..]));
                        }
                        s += "</ul>\n";
                    } else {
                        s += &format!("<p>{}</p>\n", inline(t));
                    }
                }
                Block::Table(h, rows, best) => {
                    // Wide tables scroll inside the page instead of running off its edge.
                    s += "<div class=\"wide\"><table>";
                    if h.iter().any(|c| !c.is_empty()) {
                        s += &format!(
                            "<tr>{}</tr>",
                            h.iter()
                                .map(|c| format!("<th>{}</th>", esc(c)))
                                .collect::<String>()
                        );
                    }
                    for (i, r) in rows.iter().enumerate() {
                        let cls = if Some(i) == *best {
                            " class=\"best\""
                        } else {
                            ""
                        };
                        s += &format!(
                            "<tr{cls}>{}</tr>",
                            r.iter()
                                .map(|c| format!("<td>{}</td>", inline(c)))
                                .collect::<String>()
                        );
                    }
                    s += "</table></div>\n";
                }
                Block::Plot(_, svg) => s += &format!("<div>{svg}</div>\n"),
            }
        }
        s += "<p style=\"color:#888\">made by hypersweep</p></body></html>\n";
        Rendered {
            text: s,
            files: vec![],
        }
    }
}

/// Writes `<stem>.md` and `<stem>.html` into `dir`, with their side files.
pub fn write_named(blocks: &[Block], dir: &Path, stem: &str) -> Result<()> {
    for (exporter, ext) in [(&Markdown as &dyn Exporter, "md"), (&Html, "html")] {
        let doc = exporter.render(blocks);
        for (rel, text) in &doc.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                create_dir(parent)?;
            }
            write_atomic(&path, text.as_bytes())?;
        }
        write_atomic(&dir.join(format!("{stem}.{ext}")), doc.text.as_bytes())?;
    }
    Ok(())
}
