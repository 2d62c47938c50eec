//! The real binary, black-box: [`Server`] starts `employee-api` on port 0 and reads the
//! address it bound back from its log; [`run_cli`] runs one of its commands. Both start from
//! an empty environment, so nothing of the caller's (a `REDIS_URL`, a `.env` file) leaks in:
//! only what the test gives, plus a fresh SQLite database in a temporary working directory.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::watch;

pub const BIN: &str = env!("CARGO_BIN_EXE_employee-api");

/// How long a server may take from spawn to answering `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM (in-flight requests get 20 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(25);
/// How long one command of [`run_cli`] may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The SQLite database of a server or command run in `dir` (the folder is created by it).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/data/employees.db", dir.display())
}

/// Everything a child process printed on stdout and stderr, interleaved as it arrived.
struct Captured {
    bytes: Mutex<Vec<u8>>,
    /// Bumped after every read, so a waiter wakes on new output instead of polling.
    grown: watch::Sender<usize>,
    /// A copy of everything, when the test keeps the log as an artifact.
    tee: Option<Mutex<std::fs::File>>,
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// Copies everything `source` produces into `sink`, on a thread of its own, until EOF: a pipe
/// nobody reads would block the child once full.
fn drain(
    mut source: impl Read + Send + 'static,
    sink: Arc<Captured>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = source.read(&mut buf) {
            if n == 0 {
                break;
            }
            let len = {
                let mut bytes = sink.bytes.lock().unwrap();
                bytes.extend_from_slice(&buf[..n]);
                bytes.len()
            };
            if let Some(file) = &sink.tee {
                let _ = file.lock().unwrap().write_all(&buf[..n]);
            }
            sink.grown.send_replace(len);
        }
    })
}

/// Where a server runs: a temporary directory it owns, or one the test keeps.
enum WorkDir {
    Owned(tempfile::TempDir),
    Given(PathBuf),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Owned(dir) => dir.path(),
            WorkDir::Given(path) => path,
        }
    }
}

/// How to start a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    env: Vec<(String, String)>,
    args: Vec<String>,
    dir: Option<PathBuf>,
    tee: Option<PathBuf>,
}

impl ServerBuilder {
    /// Sets one environment variable (over the fixture's `DATABASE_URL`, `BIND_ADDR` and
    /// `RUST_LOG`, if it names one of them).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (name, value) in pairs {
            self = self.env(name, *value);
        }
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Runs in `dir` (working directory and database) instead of a fresh temporary one, e.g.
    /// to share the database with [`run_cli`] commands.
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// Also copies everything the server prints to `path`.
    pub fn tee_to(mut self, path: &Path) -> Self {
        self.tee = Some(path.to_owned());
        self
    }

    /// Starts the binary and returns once it answers `/healthz`: first the address is read
    /// from its `serving on http://…` log line, then `/healthz` is polled with a short client
    /// timeout, for at most 30 s in all. Fails at once if the process exits.
    pub async fn start(self) -> Server {
        let dir = match self.dir {
            Some(path) => WorkDir::Given(path),
            None => WorkDir::Owned(tempfile::tempdir().expect("temporary directory")),
        };
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", sqlite_url(dir.path()))
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the binary starts");
        let (grown, _) = watch::channel(0);
        let captured = Arc::new(Captured {
            bytes: Mutex::new(Vec::new()),
            grown,
            tee: self.tee.map(|path| {
                Mutex::new(std::fs::File::create(&path).expect("create the server log file"))
            }),
        });
        let drains = vec![
            drain(child.stdout.take().expect("stdout piped"), captured.clone()),
            drain(child.stderr.take().expect("stderr piped"), captured.clone()),
        ];
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            captured,
            drains,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        server.addr = server.wait_for_address(deadline).await;
        server.base = format!("http://{}", server.addr);
        server.wait_until_healthy(deadline).await;
        server
    }
}

/// A running `employee-api` process; killed and reaped on drop.
pub struct Server {
    child: Child,
    /// The address the server bound (from its log).
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    captured: Arc<Captured>,
    drains: Vec<std::thread::JoinHandle<()>>,
    dir: WorkDir,
}

/// A server that has exited: how, and everything it printed.
pub struct Stopped {
    pub status: ExitStatus,
    pub output: String,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Starts the binary with `env` (see [`ServerBuilder::start`]).
    pub async fn start(env: &[(&str, &str)]) -> Server {
        Server::builder().envs(env).start().await
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The working directory (and database folder) of the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or_else(|e| panic!("/proc/{}/fd: {e}", self.child.id()))
    }

    /// A `kB` line of the process's `/proc/PID/status`, e.g. `VmRSS` (resident now) or
    /// `VmHWM` (the peak); panics if it cannot be read.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no readable {field} in /proc/{pid}/status:\n{status}"))
    }

    /// The address of the metrics listener (`METRICS_ADDR` with port 0): the one other
    /// address the process listens on.
    pub fn metrics_addr(&self) -> SocketAddr {
        let others: Vec<SocketAddr> = super::net::listening_addrs(self.pid())
            .into_iter()
            .filter(|a| *a != self.addr)
            .collect();
        assert_eq!(others.len(), 1, "listeners besides the API: {others:?}");
        others[0]
    }

    /// The Prometheus exposition served at [`Server::metrics_addr`].
    pub async fn scrape_metrics(&self) -> String {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{}/metrics", self.metrics_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.captured.text()
    }

    /// The panic message for a server that misbehaved, with what it printed.
    fn failure(&self, what: &str) -> String {
        format!("{what}; the server printed:\n{}", self.output())
    }

    async fn wait_for_address(&mut self, deadline: Instant) -> SocketAddr {
        const MARK: &str = "serving on http://";
        let mut grown = self.captured.grown.subscribe();
        loop {
            let output = self.output();
            if let Some(at) = output.find(MARK) {
                let rest = &output[at + MARK.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                return rest[..end]
                    .parse()
                    .unwrap_or_else(|_| panic!("{}", self.failure("unreadable address")));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{}",
                    self.failure(&format!("exited with {status} at start"))
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                self.failure("no `serving on` line within 30 s")
            );
            // Wakes on new output; the short bound also notices an exit without output.
            let _ = tokio::time::timeout(Duration::from_millis(200), grown.changed()).await;
        }
    }

    async fn wait_until_healthy(&mut self, deadline: Instant) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let url = self.url("/healthz");
        loop {
            if let Ok(res) = client.get(&url).send().await
                && res.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{}",
                    self.failure(&format!("exited with {status} at start"))
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                self.failure("/healthz did not answer 200 within 30 s")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the process has a handler installed for signal `number` (its `SigCgt` mask).
    fn catches(&self, number: u32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (number - 1)) != 0)
    }

    /// Sends signal `name` (`number`) once the server handles it, and returns at once. The
    /// server installs its handlers only when its accept loop first waits, which can be after
    /// it has answered `/healthz`; a signal before that would kill it outright.
    async fn signal(&self, name: &str, number: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.catches(number) {
            assert!(
                Instant::now() < deadline,
                "{}",
                self.failure(&format!("no handler for SIG{name} within 10 s"))
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {} failed", self.child.id());
    }

    /// Sends SIGTERM (graceful shutdown) and returns at once.
    pub async fn sigterm(&self) {
        self.signal("TERM", 15).await;
    }

    /// Sends SIGINT (Ctrl-C; also a graceful shutdown) and returns at once.
    pub async fn sigint(&self) {
        self.signal("INT", 2).await;
    }

    /// Waits (at most 25 s) for the process to exit, then for its output to be read to the
    /// end; fails, with the output, if it does not exit in time.
    pub async fn wait_for_exit(mut self) -> Stopped {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}",
                self.failure("did not exit within 25 s of SIGTERM")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pipes close with the process: the drain threads end once all is read.
        for drain in std::mem::take(&mut self.drains) {
            let _ = drain.join();
        }
        Stopped {
            status,
            output: self.output(),
        }
    }

    /// Stops the server with SIGTERM (so it finishes requests and flushes its logs) and
    /// returns how it exited and all it printed.
    pub async fn stop(self) -> Stopped {
        self.sigterm().await;
        self.wait_for_exit().await
    }

    /// Kills the server with SIGKILL (no handler, no flush: what a crash or the OOM killer
    /// does) and returns how it exited and all it printed.
    pub async fn kill(mut self) -> Stopped {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL the server");
        self.wait_for_exit().await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `employee-api ARGS` in `dir` with `env` (over a SQLite database in `dir` and
/// `RUST_LOG=warn`), `stdin` on its standard input; at most 60 s.
pub fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", sqlite_url(dir))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin piped");
    let stdin = stdin.to_owned();
    // A command that does not read its input must not block the test.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let read_all = |mut source: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = source.read_to_end(&mut out);
            out
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr piped")));
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("employee-api {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value `employee-api config` prints for `key` (`KEY=value` lines).
pub fn config_value(out: &Output, key: &str) -> Option<String> {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// An HTTP client for black-box tests: no proxy, a 30 s timeout, its connections from the
/// loopback address `from` (127.0.0.0/8 gives each test client an address of its own, so each
/// has its own per-address budgets).
pub fn http_client_from(from: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(from)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}
