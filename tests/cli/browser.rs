//! Headless Chromium driven over its DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! NUL-separated JSON on fds 3 and 4), so a test can read a live page's DOM after its script
//! ran and while its event stream stays open, which `--dump-dom` cannot (it dumps at the load
//! event, and `--virtual-time-budget` never returns while a stream is open).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A headless Chromium, closed when dropped.
pub struct Browser {
    child: Child,
    tx: ChildStdin,
    rx: Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

fn chromium() -> Option<&'static str> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

impl Browser {
    /// Starts Chromium; `None` when it is not installed and the environment does not require
    /// it (`HYPERSWEEP_REQUIRE_CHROMIUM=1`, set by `.ci/run`).
    pub fn launch() -> Option<Browser> {
        let Some(exe) = chromium() else {
            assert!(
                std::env::var("HYPERSWEEP_REQUIRE_CHROMIUM").is_err(),
                "chromium is required (HYPERSWEEP_REQUIRE_CHROMIUM) but not installed"
            );
            eprintln!("SKIPPED: no chromium (apt-get install chromium)");
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--log-level=3",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let tx = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (send, rx) = channel();
        std::thread::spawn(move || {
            loop {
                let mut buf = Vec::new();
                match out.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                            && send.send(v).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Some(Browser {
            child,
            tx,
            rx,
            next_id: 0,
            _profile: profile,
        })
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method});
        msg["params"] = params;
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.tx.write_all(&bytes).unwrap();
        self.tx.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{method}: no reply ({e})"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Opens a page in a new tab at 1280×900; returns its session.
    pub fn open(&mut self, url: &str) -> String {
        let t = self.call(None, "Target.createTarget", json!({"url": url}));
        let a = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": t["targetId"], "flatten": true}),
        );
        let session = a["sessionId"].as_str().unwrap().to_string();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        session
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// The page's DOM as it stands now.
    pub fn dom(&mut self, session: &str) -> String {
        let v = self.eval(session, "document.documentElement.outerHTML");
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits until `expr` is true in the page, up to `secs`; returns whether it became true.
    pub fn wait_for(&mut self, session: &str, expr: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.eval(session, expr) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// A PNG of the page as shown.
    pub fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let r = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        base64(r["data"].as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let mut bytes = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).unwrap();
        bytes.push(0);
        let _ = self.tx.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n =
            chunk.iter().fold(0u32, |n, c| n << 6 | u32::from(val(*c))) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
