//! `hypersweep serve`: a live, read-only view of results directories in the browser. Each sweep
//! is watched by one thread that refreshes its `View` from the store a few times a second; each
//! connection gets a thread of its own, which answers one request (a page, the state as JSON, a
//! chart) or streams the changes as server-sent events. It writes nothing to a results
//! directory.

mod http;
mod json;
mod page;
mod plots;
mod routes;
mod sweep;

use crate::error::{Error, IoContext, Result};
use crate::store::Store;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use sweep::View;

/// How often each sweep's directory is read for changes.
const REFRESH: Duration = Duration::from_millis(250);
/// Connections served at once; more are closed at once (each holds a small thread).
const MAX_CONNECTIONS: usize = 4096;
/// The stack of a connection's thread: a request needs little.
const STACK: usize = 256 * 1024;
/// The port tried first when none is given; the next ones are tried while it is taken.
pub const DEFAULT_PORT: u16 = 8765;

/// What `serve` (or `run --serve`) was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Results directories, or roots holding several.
    pub dirs: Vec<PathBuf>,
    /// The address to listen on: 127.0.0.1 unless told otherwise.
    pub host: String,
    /// The port; `None` tries `DEFAULT_PORT` and the next nine; 0 lets the system choose.
    pub port: Option<u16>,
    /// The time-left line of a sweep, as `status` gives it.
    pub eta: Eta,
}

/// How the time left is told: `status`'s estimate, given by the caller (the view does not
/// depend on the commands).
pub type Eta = fn(&Store, &crate::store::SweepInfo, &[crate::store::Finished]) -> String;

/// A sweep being watched.
pub struct Sweep {
    /// Its name in URLs (its directory's name, made unique).
    pub name: String,
    store: Store,
    eta: Eta,
    /// `None` until its first read; then its view, or why it cannot be read.
    view: Mutex<Option<std::result::Result<View, String>>>,
    changed: Condvar,
    /// Refreshes done, so `Live::settle` can wait for one more.
    refreshes: AtomicU64,
}

impl Sweep {
    /// Waits for the first read, then runs `f` on the view (or gives the reason it failed).
    fn with<T>(&self, f: impl FnOnce(&View) -> T) -> std::result::Result<T, String> {
        let mut g = self.view.lock().expect("view lock");
        while g.is_none() {
            g = self.changed.wait(g).expect("view lock");
        }
        match g.as_ref().expect("read") {
            Ok(v) => Ok(f(v)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Everything the connections share: the watched sweeps, the roots to look for new ones in,
/// and the token, when one is required.
pub struct Site {
    roots: Vec<PathBuf>,
    eta: Eta,
    /// This server's random name: a page's versions are this server's only.
    instance: String,
    sweeps: Mutex<Vec<(PathBuf, Arc<Sweep>)>>,
    token: Option<String>,
}

impl Site {
    /// The sweeps under the roots, newly created ones included (each starts being watched the
    /// first time it is found).
    pub fn sweeps(&self) -> Vec<Arc<Sweep>> {
        let mut known = self.sweeps.lock().expect("sweeps lock");
        for root in &self.roots {
            for dir in sweep_dirs(root) {
                self.add(&mut known, root, &dir);
            }
        }
        known.iter().map(|(_, s)| s.clone()).collect()
    }

    /// Starts watching the sweep in `dir` unless it is known already, or a link out of `root`.
    fn add(&self, known: &mut Vec<(PathBuf, Arc<Sweep>)>, root: &Path, dir: &Path) {
        let real = match (dir.canonicalize(), root.canonicalize()) {
            (Ok(real), Ok(r)) if real.starts_with(&r) => real,
            _ => return,
        };
        if known.iter().any(|(p, _)| *p == real) {
            return;
        }
        let Ok(store) = Store::open(dir) else {
            return;
        };
        let taken: Vec<&str> = known.iter().map(|(_, s)| s.name.as_str()).collect();
        let name = unique_name(dir, &taken);
        let sweep = Arc::new(Sweep {
            name,
            store,
            eta: self.eta,
            view: Mutex::new(None),
            changed: Condvar::new(),
            refreshes: AtomicU64::new(0),
        });
        watch(sweep.clone());
        known.push((real, sweep));
    }

    /// A watched sweep by its URL name.
    pub fn sweep(&self, name: &str) -> Option<Arc<Sweep>> {
        self.sweeps().into_iter().find(|s| s.name == name)
    }
}

/// The results directories in `root`: itself when it is one, else its subdirectories that are.
fn sweep_dirs(root: &Path) -> Vec<PathBuf> {
    if root.join("plan.json").is_file() {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("plan.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// A directory's name, with `-2`, `-3`… when another sweep already has it.
fn unique_name(dir: &Path, taken: &[&str]) -> String {
    let base = dir
        .file_name()
        .map_or("sweep".into(), |n| n.to_string_lossy().into_owned());
    let free = |n: &str| !taken.contains(&n);
    if free(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| free(n))
        .expect("a free name")
}

/// Starts the thread that keeps a sweep's view up to date, and wakes the streams on changes.
fn watch(sweep: Arc<Sweep>) {
    std::thread::spawn(move || {
        let first = View::load(&sweep.store, sweep.eta);
        *sweep.view.lock().expect("view lock") = Some(first);
        sweep.changed.notify_all();
        loop {
            std::thread::sleep(REFRESH);
            let mut g = sweep.view.lock().expect("view lock");
            let changed = match g.as_mut() {
                Some(Ok(v)) => v.refresh(&sweep.store, sweep.eta),
                _ => match View::load(&sweep.store, sweep.eta) {
                    Ok(v) => {
                        *g = Some(Ok(v));
                        true
                    }
                    Err(_) => false,
                },
            };
            drop(g);
            sweep.refreshes.fetch_add(1, Ordering::SeqCst);
            if changed {
                sweep.changed.notify_all();
            }
        }
    });
}

/// A server listening, and the URL to print.
pub struct Server {
    /// The page's address, with the token when one is required.
    pub url: String,
    listener: TcpListener,
    site: Arc<Site>,
}

/// Checks the directories and binds the address; serves nothing yet.
pub fn bind(opts: &Options) -> Result<Server> {
    for d in &opts.dirs {
        if d.is_file() {
            return Err(Error::Input(format!(
                "{} is a file: give a results directory (results/NAME), or watch a run with `hypersweep run FILE --serve`",
                d.display()
            )));
        }
        if !d.is_dir() {
            return Err(Error::Input(format!(
                "{}: no such results directory (give a sweep's results, results/NAME, or a folder of them)",
                d.display()
            )));
        }
    }
    let loopback = is_loopback(&opts.host);
    let token = if loopback {
        None
    } else {
        Some(http::new_token().at("read", Path::new("/dev/urandom"))?)
    };
    let listener = listen(&opts.host, opts.port)?;
    let port = listener
        .local_addr()
        .at("bind", Path::new(&opts.host))?
        .port();
    let site = Arc::new(Site {
        roots: opts.dirs.clone(),
        eta: opts.eta,
        instance: http::new_token().at("read", Path::new("/dev/urandom"))?[..12].to_string(),
        sweeps: Mutex::new(vec![]),
        token: token.clone(),
    });
    let sweeps = site.sweeps();
    let shown_host = match opts.host.as_str() {
        "0.0.0.0" | "::" => crate::store::host_name(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    let path = match sweeps.as_slice() {
        [one] => format!("/s/{}/", http::url_part(&one.name)),
        _ => "/".into(),
    };
    let url = match &token {
        Some(t) => format!("http://{shown_host}:{port}{path}?token={t}"),
        None => format!("http://{shown_host}:{port}{path}"),
    };
    Ok(Server {
        url,
        listener,
        site,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Binds `host:port`; without a port, the default and the nine after it are tried in turn.
fn listen(host: &str, port: Option<u16>) -> Result<TcpListener> {
    let ports: Vec<u16> = match port {
        Some(p) => vec![p],
        None => (DEFAULT_PORT..DEFAULT_PORT + 10).collect(),
    };
    let mut last = None;
    for p in &ports {
        match TcpListener::bind((host, *p)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("a port was tried");
    let tried = match ports.as_slice() {
        [p] => format!("port {p}"),
        _ => format!("ports {}–{}", ports[0], ports[ports.len() - 1]),
    };
    Err(Error::Input(format!(
        "cannot listen on {host} {tried}: {e} (choose another with --port)"
    )))
}

impl Server {
    /// Serves until the process ends: one thread per connection, closing connections beyond
    /// `MAX_CONNECTIONS` at once.
    pub fn run(self) {
        let active = Arc::new(AtomicUsize::new(0));
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                busy(stream);
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (site, active2) = (self.site.clone(), active.clone());
            let spawned = std::thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    connection(&site, stream);
                    active2.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::SeqCst);
            }
            // (A connection whose thread could not start is closed with it.)
        }
    }

    /// Serves from a thread of its own (beside `run`), until the process ends.
    pub fn spawn(self) -> Live {
        let site = self.site.clone();
        std::thread::spawn(move || self.run());
        Live { site }
    }
}

/// A server running beside a run.
pub struct Live {
    site: Arc<Site>,
}

impl Live {
    /// Waits until every sweep's view has read the directory as it is now and its streams had
    /// a moment to send it (at most a few seconds), so that open pages show how the run ended
    /// before the process exits.
    pub fn settle(&self) {
        let sweeps = self.site.sweeps();
        let at: Vec<u64> = sweeps
            .iter()
            .map(|s| s.refreshes.load(Ordering::SeqCst))
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while sweeps
            .iter()
            .zip(&at)
            .any(|(s, a)| s.refreshes.load(Ordering::SeqCst) < a + 2)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Says 503 to a connection beyond the cap, without waiting on it.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(50)));
    let r = http::Response::error((503, "Service Unavailable"), "too many connections");
    let _ = r.send(&mut stream, false);
}

fn connection(site: &Site, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(http::TIMEOUT));
    let _ = stream.set_write_timeout(Some(http::TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Some(req) = http::read_request(&stream) else {
        let _ = http::Response::error((400, "Bad Request"), "not an HTTP request")
            .send(&mut stream, false);
        return;
    };
    routes::handle(site, &req, &mut stream);
}

/// `hypersweep serve`: binds, prints the URL and serves until Ctrl-C.
pub fn serve(opts: &Options) -> Result<()> {
    // A thread per connection: without a cap glibc gives many threads arenas of their own, 64 MB
    // of address space apiece, which a login node's `ulimit -v` soon refuses.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let server = bind(opts)?;
    crate::outln!("{}", server.url);
    if server.site.token.is_some() {
        crate::errln!("open it with its token: requests without it are refused");
    }
    server.run();
    Ok(())
}
