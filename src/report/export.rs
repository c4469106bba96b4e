//! One small renderer per output format behind a one-method trait (hyperfine's export/ style).
//! Markdown links plots as files under plots/; HTML inlines them so the file works offline.

use super::Block;
use super::svg::esc;
use anyhow::Result;
use std::path::Path;

pub trait Exporter {
    /// Renders the blocks to the document text, writing any side files under `dir`.
    fn render(&self, blocks: &[Block], dir: &Path) -> Result<String>;
}

pub struct Markdown;
pub struct Html;

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Exporter for Markdown {
    fn render(&self, blocks: &[Block], dir: &Path) -> Result<String> {
        let mut s = String::new();
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
                    std::fs::create_dir_all(dir.join("plots"))?;
                    crate::store::write_atomic(
                        &dir.join("plots").join(format!("{stem}.svg")),
                        svg.as_bytes(),
                    )?;
                    s += &format!("![{stem}](plots/{stem}.svg)\n\n");
                }
            }
        }
        Ok(s)
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#f3f3f3}tr.best td{background:#e6f4e6;font-weight:bold}svg{max-width:100%;height:auto;margin:.5em 0}\
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}";

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
    fn render(&self, blocks: &[Block], _dir: &Path) -> Result<String> {
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
                    s += "<table>";
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
                    s += "</table>\n";
                }
                Block::Plot(_, svg) => s += &format!("<div>{svg}</div>\n"),
            }
        }
        s += "<p style=\"color:#888\">made by hypersweep</p></body></html>\n";
        Ok(s)
    }
}

/// Writes `<stem>.md` and `<stem>.html`.
pub fn write_named(blocks: &[Block], dir: &Path, stem: &str) -> Result<()> {
    let md = Markdown.render(blocks, dir)?;
    crate::store::write_atomic(&dir.join(format!("{stem}.md")), md.as_bytes())?;
    let html = Html.render(blocks, dir)?;
    crate::store::write_atomic(&dir.join(format!("{stem}.html")), html.as_bytes())?;
    Ok(())
}

pub fn write_all(blocks: &[Block], dir: &Path) -> Result<()> {
    write_named(blocks, dir, "report")
}
