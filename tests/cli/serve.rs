//! `hypersweep serve` driven over HTTP as a browser would (a raw test client, so paths reach the
//! server exactly as written): a sweep in progress, a trial finishing while a stream is open,
//! traversal attempts, the token, damaged files and many idle connections.

use super::common::{Sweep, bin, scripted_bin};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Four trials, two at a time, each three epochs of `epoch_ms`.
fn slow_sweep() -> Sweep {
    Sweep::new(
        "name: live\nfixed: {epochs: 3, data: {train_size: 100}}\ngrid:\n  optimizer.learning_rate: [0.1, 0.01, 0.001, 0.0001]\n",
    )
}

/// Trains `file` into `out` with the scripted engine, at once.
fn run_scripted(file: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    scripted_bin()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .output()
        .unwrap()
}

/// The four-trial sweep, already trained.
fn finished_sweep() -> Sweep {
    let s = slow_sweep();
    let ran = run_scripted(&s.file, &s.out);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    s
}

/// A serving process, killed when dropped.
pub struct Served {
    child: Child,
    /// The printed URL.
    pub url: String,
    /// host:port.
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hypersweep serve ARGS --port 0` and reads the URL it prints.
pub fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("hypersweep"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://"), "printed: {line:?}");
    let addr = url["http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    Served { child, url, addr }
}

/// One raw GET: the status code, the head and the body.
pub fn get(addr: &str, target: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn state(addr: &str, sweep: &str) -> Value {
    let (code, _, body) = get(addr, &format!("/s/{sweep}/state?since=0"), "");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn status_of(state: &Value, id: &str) -> String {
    let t = state["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id);
    t.map(|t| t["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the scripted sweep in the background, `epoch_ms` per epoch.
fn start_run(s: &Sweep, epoch_ms: u64, extra: &[&str]) -> Child {
    let mut c: Command = Command::new(assert_cmd::cargo::cargo_bin("hypersweep"));
    c.env("HYPERSWEEP_ENGINE", "scripted")
        .env("HYPERSWEEP_SCRIPTED_EPOCH_MS", epoch_ms.to_string())
        .arg("run")
        .arg(&s.file)
        .arg("--out")
        .arg(&s.out)
        .args(["--devices", "cpu:2", "--threads", "1", "-q"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

#[test]
fn a_sweep_in_progress_shows_its_trials_and_a_finishing_trial_arrives_on_the_stream() {
    let s = slow_sweep();
    let mut run = start_run(&s, 600, &[]);
    wait_until("the plan", 30, || s.dir().join("plan.json").exists());
    let served = serve(&[s.out.to_str().unwrap()]);
    assert!(
        served.url.ends_with("/s/live/"),
        "one sweep: its page is the URL: {}",
        served.url
    );
    // Two run at once, two wait; the running ones report their epochs live.
    let mut running = vec![];
    wait_until("two running trials with an epoch", 30, || {
        let st = state(&served.addr, "live");
        running = (st["trials"].as_array().unwrap().iter())
            .filter(|t| t["status"] == "running" && t["epoch"].as_f64() >= Some(1.0))
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        running.len() == 2
    });
    let st = state(&served.addr, "live");
    assert_eq!(st["planned"], 4);
    assert_eq!(st["counts"]["queued"], 2, "{}", st["counts"]);
    assert!(
        st["eta"].as_str().is_some_and(|e| e.starts_with("eta ")),
        "the time left, as `status` says: {}",
        st["eta"]
    );
    let (code, _, detail) = get(&served.addr, &format!("/s/live/trial/{}", running[0]), "");
    assert_eq!(code, 200);
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert!(
        detail["rows"].as_u64() >= Some(1),
        "live rows reach the trial's page: {detail}"
    );
    let (code, head, svg) = get(&served.addr, "/s/live/curves.svg?metric=train_loss", "");
    assert_eq!(code, 200);
    assert!(
        head.contains("image/svg+xml") && svg.contains("(running)"),
        "{svg}"
    );

    // A stream opened now carries the running trial's end.
    let version = st["version"].as_u64().unwrap();
    let mut stream = TcpStream::connect(&served.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /s/live/events?since={version} HTTP/1.1\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let finished_at = loop {
        let line = lines.next().expect("the stream ended").unwrap();
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let delta: Value = serde_json::from_str(data).unwrap();
        assert_eq!(delta["full"], false, "a delta, not the whole sweep again");
        if status_of(&delta, &running[0]) == "ok" {
            break Instant::now();
        }
    };
    // The result is on disk by then, and it was there less than a second before.
    let result = s.dir().join("trials").join(&running[0]).join("result.json");
    let written = std::fs::metadata(&result).unwrap().modified().unwrap();
    let lag = finished_at.elapsed();
    let age = written.elapsed().unwrap_or_default();
    assert!(
        age.saturating_sub(lag) < Duration::from_secs(2),
        "the stream lagged {age:?}"
    );
    assert!(run.wait().unwrap().success());
    wait_until("every trial ok", 10, || {
        let st = state(&served.addr, "live");
        st["counts"]["ok"] == 4
            && st["trials"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["metric"].is_number())
    });
    // The report view is built from the same results.
    let (code, _, report) = get(&served.addr, "/s/live/report", "");
    assert_eq!(code, 200);
    assert!(report.contains("<svg") && report.contains("learning_rate=0.0001"));
}

#[test]
fn the_view_writes_nothing_and_reads_nothing_outside_its_directories() {
    let s = finished_sweep();
    let secret = s.tmp.path().join("secret.txt");
    std::fs::write(&secret, "SECRET-CONTENT").unwrap();
    let trials: Vec<String> = std::fs::read_dir(s.dir().join("trials"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let id = &trials[0];
    std::os::unix::fs::symlink(&secret, s.dir().join("trials").join(id).join("stdout.log"))
        .unwrap();
    let listing = || {
        let mut v: Vec<_> = walk(&s.out);
        v.sort();
        v
    };
    let before = listing();
    let served = serve(&[s.out.to_str().unwrap()]);
    for target in [
        "/../secret.txt".to_string(),
        "/s/live/../../secret.txt".into(),
        "/s/%2e%2e/%2e%2e/secret.txt".into(),
        "/s/live/trial/..%2f..%2f..%2fsecret.txt".into(),
        "/s/..%2Fsecret.txt/".into(),
        format!("/s/live/trial/{id}/..%2f..%2f..%2f..%2fsecret.txt"),
        format!("/s/live/trial/{id}/stdout.log"),
        format!("{}", secret.display()),
        format!("/s/{}/", s.dir().display()),
        "/etc/passwd".into(),
        "http://evil/etc/passwd".into(),
        "/s/live/plan.json".into(),
    ] {
        let (code, _, body) = get(&served.addr, &target, "");
        assert_eq!(code, 404, "{target}: {body}");
        assert!(
            !body.contains("SECRET") && !body.contains("root:"),
            "{target}: {body}"
        );
    }
    // A link out of the directory is not followed: the trial's page shows no such output.
    let (code, _, detail) = get(&served.addr, &format!("/s/live/trial/{id}"), "");
    assert_eq!(code, 200);
    assert!(!detail.contains("SECRET"), "{detail}");
    // Nor a result linked out of it, though it reads as a result.
    let other = &trials[1];
    let result = s.dir().join("trials").join(other).join("result.json");
    let outside = s.tmp.path().join("outside.json");
    let text = std::fs::read_to_string(&result).unwrap();
    std::fs::write(
        &outside,
        text.replace("\"error\": null", "\"error\": \"SECRET-RESULT\""),
    )
    .unwrap();
    std::fs::remove_file(&result).unwrap();
    std::os::unix::fs::symlink(&outside, &result).unwrap();
    wait_until("the linked result seen", 10, || {
        status_of(&state(&served.addr, "live"), other) == "unreadable"
    });
    for target in [
        "/s/live/state?since=0".to_string(),
        format!("/s/live/trial/{other}"),
        "/s/live/report".into(),
    ] {
        let (_, _, body) = get(&served.addr, &target, "");
        assert!(!body.contains("SECRET"), "{target}: {body}");
    }
    // Another site's name for 127.0.0.1 (DNS rebinding) is refused; ours are not.
    let evil = get(&served.addr, "/s/live/state", "Host: evil.example\r\n");
    assert_eq!(evil.0, 403);
    assert_eq!(
        get(&served.addr, "/s/live/state", "Host: localhost\r\n").0,
        200
    );
    // A page from a server that ran before (another instance, or a version past this one's)
    // gets everything again, not an empty delta.
    for q in ["since=999999", "since=2&instance=aaaaaaaaaaaa"] {
        let (_, _, body) = get(&served.addr, &format!("/s/live/state?{q}"), "");
        let st: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (st["full"].as_bool(), st["trials"].as_array().unwrap().len()),
            (Some(true), 4),
            "{q}"
        );
    }
    let (code, _, _) = get(&served.addr, "/s/live/state", "");
    assert_eq!(code, 200);
    assert_eq!(
        listing(),
        before,
        "serving wrote into the results directory"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn any_address_but_loopback_needs_the_printed_token() {
    let s = finished_sweep();
    let served = serve(&[s.dir().to_str().unwrap(), "--host", "0.0.0.0"]);
    let token = served
        .url
        .split("token=")
        .nth(1)
        .expect("a token in the URL")
        .to_string();
    assert_eq!(token.len(), 32);
    let port = served.addr.rsplit(':').next().unwrap();
    let addr = format!("127.0.0.1:{port}");
    for target in [
        "/",
        "/s/live/",
        "/s/live/state",
        "/s/live/events",
        "/s/live/report",
    ] {
        let (code, _, body) = get(&addr, target, "");
        assert_eq!(code, 401, "{target}");
        assert!(!body.contains("learning_rate"));
    }
    let wrong: String = token.chars().rev().collect();
    assert_eq!(
        get(&addr, &format!("/s/live/state?token={wrong}"), "").0,
        401
    );
    assert_eq!(
        get(&addr, &format!("/s/live/state?token={}", &token[..31]), "").0,
        401
    );
    let (code, head, _) = get(&addr, &format!("/s/live/?token={token}"), "");
    assert_eq!(code, 200);
    assert!(
        head.contains("HttpOnly"),
        "the page's own requests carry it as a cookie: {head}"
    );
    let cookie = format!("Cookie: hypersweep_token={token}\r\n");
    assert_eq!(get(&addr, "/s/live/state", &cookie).0, 200);
}

#[test]
fn a_damaged_result_shows_on_its_trial_and_the_server_goes_on() {
    let s = finished_sweep();
    let trials = s.dir().join("trials");
    let id = std::fs::read_dir(&trials)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let id = id.to_string_lossy().into_owned();
    std::fs::write(
        trials.join(&id).join("result.json"),
        "{\"status\": \"ok\", tru",
    )
    .unwrap();
    std::fs::write(
        trials.join(&id).join("live.jsonl"),
        "{\"epoch\": 1, \"train_loss\": 2}\n{oops\n",
    )
    .unwrap();
    let served = serve(&[s.out.to_str().unwrap()]);
    let st = state(&served.addr, "live");
    assert_eq!(status_of(&st, &id), "unreadable");
    assert_eq!(st["counts"]["ok"], 3);
    let (code, _, detail) = get(&served.addr, &format!("/s/live/trial/{id}"), "");
    assert_eq!(code, 200);
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert!(
        detail["error"].as_str().unwrap().contains("result.json"),
        "{detail}"
    );
    assert_eq!(detail["live_damaged"], 1);
    // Mended on disk: the view follows.
    std::fs::remove_file(trials.join(&id).join("result.json")).unwrap();
    wait_until("the mended trial", 10, || {
        status_of(&state(&served.addr, "live"), &id) == "queued"
    });
}

#[test]
fn many_idle_connections_do_not_stop_it_serving_others() {
    let s = finished_sweep();
    let served = serve(&[s.out.to_str().unwrap()]);
    // Clients that never send a request, and streams that are never read.
    let idle: Vec<TcpStream> = (0..1500)
        .map(|_| TcpStream::connect(&served.addr).unwrap())
        .collect();
    let unread: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(&served.addr).unwrap();
            write!(c, "GET /s/live/events?since=0 HTTP/1.1\r\n\r\n").unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    assert_eq!(state(&served.addr, "live")["counts"]["ok"], 4);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    drop((idle, unread));
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = bin().arg("serve").arg(&missing).assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("nope"), "{err}");
}

/// `run --serve` beside the run, and the page in headless Chromium: the trials with their
/// statuses, a trial that finishes while the page is open shown finished without a reload,
/// the curves drawn, a trial's details on a click, and a name with markup shown as text.
#[test]
fn the_page_follows_a_run_in_a_browser_without_reloading() {
    let Some(mut browser) = super::browser::Browser::launch() else {
        return;
    };
    let s = Sweep::new(
        "name: live\nfixed: {epochs: 3, data: {train_size: 100}}\ntrials:\n  - name: \"<img src=x onerror=document.title='owned'>\"\n    optimizer: {learning_rate: 0.1}\n  - name: b\n    optimizer: {learning_rate: 0.01}\n  - name: c\n    optimizer: {learning_rate: 0.001}\n  - name: d\n    optimizer: {learning_rate: 0.0001}\n",
    );
    let mut run = start_run(&s, 1000, &["--serve", "0"]);
    let mut err = BufReader::new(run.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "run ended without a live view"
        );
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break u.to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    // Without its trailing slash, the page finds its data all the same.
    let page = browser.open(url.trim_end_matches('/'));
    let running =
        "[...document.querySelectorAll('#rows tr')].filter(r => r.dataset.status === 'running')";
    assert!(
        browser.wait_for(&page, &format!("{running}.length === 2"), 30),
        "{}",
        browser.dom(&page)
    );
    browser.eval(&page, "window.loadedOnce = true");
    let id = browser.eval(&page, &format!("{running}[0].id"));
    let id = id.as_str().unwrap().to_string();
    let row = format!("document.getElementById('{id}')");
    assert_eq!(
        browser.eval(&page, &format!("{row}.dataset.firstStatus")),
        "running"
    );
    assert!(
        browser.wait_for(&page, &format!("{row}.dataset.status === 'ok'"), 30),
        "{}",
        browser.dom(&page)
    );
    assert_eq!(
        browser.eval(&page, "window.loadedOnce === true"),
        true,
        "the page reloaded"
    );
    assert!(browser.wait_for(
        &page,
        "document.getElementById('chart').naturalWidth > 0",
        10
    ));
    let dom = browser.dom(&page);
    assert!(
        dom.contains("&lt;img src=x onerror="),
        "the name is shown as text"
    );
    assert_eq!(
        browser.eval(&page, "document.title.includes('owned')"),
        false
    );
    assert_eq!(
        browser.eval(&page, "document.querySelectorAll('#rows img').length"),
        0
    );
    browser.eval(&page, &format!("{row}.click()"));
    assert!(browser.wait_for(
        &page,
        "document.getElementById('detail').className === 'open' && document.querySelectorAll('#d-body img').length > 0",
        10
    ));
    assert!(browser.wait_for(
        &page,
        "[...document.querySelectorAll('#rows tr')].every(r => r.dataset.status === 'ok')",
        30
    ));
    if let Ok(path) = std::env::var("HYPERSWEEP_SERVE_SCREENSHOT") {
        std::fs::write(path, browser.screenshot(&page)).unwrap();
    }
    assert!(run.wait().unwrap().success());
}

#[test]
fn a_results_root_lists_its_sweeps_and_finds_new_ones() {
    let s = finished_sweep();
    let served = serve(&[s.out.to_str().unwrap()]);
    let other = s.file.with_file_name("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&s.file)
            .unwrap()
            .replace("name: live", "name: <b>other</b>"),
    )
    .unwrap();
    let ran = run_scripted(&other, &s.out);
    if !ran.status.success() {
        // Sweep names are directory names: markup may be refused; then a plain second one.
        std::fs::write(
            &other,
            std::fs::read_to_string(&s.file)
                .unwrap()
                .replace("name: live", "name: other"),
        )
        .unwrap();
        assert!(run_scripted(&other, &s.out).status.success());
    }
    let (code, _, index) = get(&served.addr, "/", "");
    assert_eq!(code, 200);
    assert!(
        index.contains("href=\"/s/live/\"") && index.contains("ok 4"),
        "{index}"
    );
    assert!(
        index.contains("other"),
        "a sweep started after the server is listed: {index}"
    );
    assert!(!index.contains("<b>other"), "names are escaped: {index}");
}
