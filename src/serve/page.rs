//! The pages, embedded in the binary: a sweep's page (HTML, its style and script in one file,
//! nothing fetched from elsewhere), the list of sweeps, and short messages. Every name the user
//! chose is escaped; the script itself writes text only through `textContent`.

use super::Sweep;
use super::http::url_part;
use crate::report::export::STYLE;
use crate::report::svg::esc;
use std::sync::Arc;

const SWEEP_PAGE: &str = include_str!("page.html");

/// A sweep's live page; its script loads the state and follows the changes.
pub fn sweep(name: &str) -> String {
    SWEEP_PAGE
        .replace("{{STYLE}}", STYLE)
        .replace("{{TITLE}}", &esc(name))
        .replace("{{NAME}}", &esc(name))
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} — hypersweep</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

/// The sweeps being served, each with its counts by status.
pub fn index(sweeps: &[Arc<Sweep>]) -> String {
    let mut body = String::from("<h1>Sweeps</h1>");
    if sweeps.is_empty() {
        body += "<p>No results directory here yet: a sweep appears once <code>hypersweep run</code> has started it (reload then).</p>";
    }
    body += "<table><tr><th>sweep</th><th>trials</th><th>by status</th><th>time left</th></tr>";
    for s in sweeps {
        let (planned, counts, eta) = s
            .with(|v| {
                let mut counts = std::collections::BTreeMap::new();
                for t in &v.trials {
                    *counts.entry(super::json::status_word(v, t)).or_insert(0) += 1;
                }
                let text: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
                (v.trials.len().to_string(), text.join(", "), v.eta_words())
            })
            .unwrap_or_else(|e| ("?".into(), e, String::new()));
        body += &format!(
            "<tr><td><a href=\"/s/{}/\">{}</a></td><td>{planned}</td><td>{}</td><td>{}</td></tr>",
            url_part(&s.name),
            esc(&s.name),
            esc(&counts),
            esc(&eta)
        );
    }
    body += "</table>";
    shell("sweeps", &body)
}

/// A sweep whose results directory cannot be read (its plan.json is damaged or gone).
pub fn unreadable(name: &str, why: &str) -> String {
    message(name, &format!("This sweep's results cannot be read: {why}"))
}

/// A page of one sentence.
pub fn message(title: &str, text: &str) -> String {
    shell(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p><a href=\"/\">all sweeps</a></p>",
            esc(title),
            esc(text)
        ),
    )
}
