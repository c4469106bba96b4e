//! From a request to its answer. A URL names a sweep and a trial only by their names among
//! those watched, never by a path, so no request can reach a file the view did not choose.

use super::http::{self, Request, Response, url_part};
use super::{Site, Sweep, json, page, plots};
use crate::report::{Loaded, TrialRow, export::Exporter};
use std::net::TcpStream;
use std::time::Duration;

/// The cookie that carries the token after the first visit, so the page's own requests need
/// not repeat it.
const COOKIE: &str = "hypersweep_token";
/// The end of a program's output shown with its trial.
const TAIL_BYTES: u64 = 16 * 1024;
/// A stream with nothing to say sends a comment this often, to notice clients that left.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The version a page has: its `since`, or 0 (everything) when it had it from another
/// server (one that ran before this one, on the same port).
fn since(req: &Request, instance: &str) -> u64 {
    if req.param("instance").is_some_and(|i| i != instance) {
        return 0;
    }
    req.param("since").and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Answers one request.
pub fn handle(site: &Site, req: &Request, stream: &mut TcpStream) {
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        let r = Response::error((405, "Method Not Allowed"), "this view only reads");
        let _ = r.send(stream, false);
        return;
    }
    let mut cookie = None;
    if site.token.is_none() && req.host.as_deref().is_some_and(|h| !http::loopback_host(h)) {
        let r = Response::error((403, "Forbidden"), "this view answers to localhost only");
        let _ = r.send(stream, head_only);
        return;
    }
    if let Some(token) = &site.token {
        let given = req.param("token").or(req.cookie(COOKIE));
        if !given.is_some_and(|g| http::same_secret(g, token)) {
            let r = Response::error(
                (401, "Unauthorized"),
                "open the URL that `serve` printed, with its token",
            );
            let _ = r.send(stream, head_only);
            return;
        }
        cookie = Some(format!(
            "Set-Cookie: {COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        ));
    }
    let parts: Vec<&str> = req.parts.iter().map(String::as_str).collect();
    if let ["s", name, "events"] = parts.as_slice() {
        if let Some(sweep) = site.sweep(name) {
            events(&sweep, since(req, &site.instance), stream);
        } else {
            let _ = Response::not_found().send(stream, head_only);
        }
        return;
    }
    let mut r = route(site, req, &parts);
    r.headers.extend(cookie);
    let _ = r.send(stream, head_only);
}

fn route(site: &Site, req: &Request, parts: &[&str]) -> Response {
    let html = "text/html; charset=utf-8";
    match parts {
        [] => {
            let sweeps = site.sweeps();
            match sweeps.as_slice() {
                [one] => redirect(&format!("/s/{}/", url_part(&one.name))),
                _ => Response::ok(html, page::index(&sweeps)),
            }
        }
        ["s", name, rest @ ..] => match site.sweep(name) {
            Some(sweep) => sweep_route(&sweep, &site.instance, req, rest),
            None => Response::not_found(),
        },
        _ => Response::not_found(),
    }
}

fn redirect(to: &str) -> Response {
    let mut r = Response::ok("text/plain; charset=utf-8", format!("see {to}\n"));
    r.status = (302, "Found");
    r.headers.push(format!("Location: {to}"));
    r
}

fn sweep_route(sweep: &Sweep, instance: &str, req: &Request, rest: &[&str]) -> Response {
    let (html, svg) = ("text/html; charset=utf-8", "image/svg+xml");
    let answer = sweep.with(|v| match rest {
        [] => Response::ok(html, page::sweep(&sweep.name)),
        ["state"] => {
            let mut body = json::state(&sweep.name, v, since(req, instance));
            body["instance"] = instance.into();
            Response::ok("application/json", body.to_string())
        }
        ["curves.svg"] => {
            let metric = req.param("metric").unwrap_or(&v.info.report.metric);
            Response::ok(svg, plots::sweep_chart(v, metric))
        }
        ["report"] => Response::ok(html, report(v, &sweep.store)),
        ["trial", id] => match v.trial(id) {
            Some(t) => {
                let tail = |f: &'static str| {
                    (
                        f,
                        sweep
                            .store
                            .output_tail(&t.trial.id, f, TAIL_BYTES)
                            .unwrap_or_default(),
                    )
                };
                let mut body = json::trial(v, t, &[tail("stdout.log"), tail("stderr.log")]);
                body["charts"] = plots::trial_charts(v, t).len().into();
                Response::ok("application/json", body.to_string())
            }
            None => Response::not_found(),
        },
        ["trial", id, "chart", n] => {
            let chart = v.trial(id).and_then(|t| {
                let k: usize = n.strip_suffix(".svg")?.parse().ok()?;
                plots::trial_charts(v, t).into_iter().nth(k)
            });
            chart.map_or_else(Response::not_found, |c| Response::ok(svg, c))
        }
        _ => Response::not_found(),
    });
    answer.unwrap_or_else(|e| Response::ok(html, page::unreadable(&sweep.name, &e)))
}

/// The report, as `report` would write report.html, from the results the view holds now.
fn report(v: &super::View, store: &crate::store::Store) -> String {
    let info = &v.info;
    let rows: Vec<TrialRow> = (v.finished.iter())
        .map(|f| TrialRow {
            id: f.trial.id.clone(),
            name: f.trial.name.clone(),
            varied: f
                .trial
                .varied
                .iter()
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
            result: f.result.clone(),
        })
        .collect();
    if rows.is_empty() {
        return page::message(
            &info.name,
            "No trial has finished yet: the report is made of finished trials.",
        );
    }
    let loaded = Loaded {
        dir: store.dir().to_path_buf(),
        name: info.name.clone(),
        description: info.description.clone(),
        options: info.report.clone(),
        axes: info.axes.clone(),
        rows,
        planned: v.trials.len(),
        unreadable: v.trials.iter().filter_map(|t| t.damaged.clone()).collect(),
        program: info.program.clone(),
        method: info.method,
        space: info.space.clone(),
        early_terminate: info.early_terminate.clone(),
    };
    crate::report::export::Html
        .render(&crate::report::sections::all(&loaded))
        .text
}

/// Streams the sweep's changes: each is the state since the last one sent, as one `state`
/// event, until the client goes.
fn events(sweep: &Sweep, mut since: u64, stream: &mut TcpStream) {
    if http::start_events(stream).is_err() {
        return;
    }
    loop {
        let data = {
            let mut g = sweep.view.lock().expect("view lock");
            let newer = |g: &Option<Result<super::View, String>>| matches!(g, Some(Ok(v)) if v.version != since);
            if !newer(&g) {
                g = sweep
                    .changed
                    .wait_timeout(g, KEEPALIVE)
                    .expect("view lock")
                    .0;
            }
            match g.as_ref() {
                Some(Ok(v)) if v.version != since => {
                    let d = json::state(&sweep.name, v, since).to_string();
                    since = v.version;
                    Some(d)
                }
                _ => None,
            }
        };
        let sent = match &data {
            Some(d) => http::event(stream, Some("state"), d),
            None => http::event(stream, None, "waiting"),
        };
        if sent.is_err() {
            return;
        }
    }
}
