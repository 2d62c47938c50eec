//! A PostgreSQL cluster a test owns, for tests that stop and start the database (the shared
//! one at `TEST_DATABASE_URL` must never be restarted): `initdb` in a temporary folder, its
//! own free port on 127.0.0.1, started and stopped at will, stopped and removed on drop, even
//! when the test fails.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: there every PostgreSQL program runs
//! as the `postgres` user (`runuser`), in a folder that user owns.

use std::{
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::is_ci;

/// How `pg_ctl stop` ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions are terminated (57P01), then a clean shutdown with a checkpoint.
    Fast,
    /// Every process is killed at once, as in a crash; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A running PostgreSQL cluster in a temporary folder; stopped and deleted on drop.
pub struct PgCluster {
    /// Holds `data/`, the socket and `server.log`; owned by `postgres` when we are root.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Whether the programs run through `runuser -u postgres` (we are root).
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that holds `initdb` (Debian's layout).
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The numeric id `id -u postgres` / `id -g postgres` prints.
fn postgres_id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "running as root needs a `postgres` user for PostgreSQL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

/// A port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl PgCluster {
    /// Creates and starts a cluster. Without PostgreSQL's programs: `None` with the reason
    /// printed, except under CI, where a skipped test would pass silently: there it fails.
    pub async fn start_new() -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            assert!(
                !is_ci(),
                "CI=true but no initdb under /usr/lib/postgresql/*/bin: the PostgreSQL restart test would be skipped"
            );
            eprintln!(
                "skipped: no initdb under /usr/lib/postgresql/*/bin (PostgreSQL restart test)"
            );
            return None;
        };
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("employee-api-pg-")
            .tempdir()
            .expect("temporary folder");
        if as_postgres {
            std::os::unix::fs::chown(dir.path(), Some(postgres_id("-u")), Some(postgres_id("-g")))
                .expect("hand the folder to postgres");
        }
        let cluster = PgCluster {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster
            .run_blocking(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    // Only the files initdb writes skip fsync; the server itself keeps it.
                    "--no-sync",
                ],
            )
            .await;
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 40\nshared_buffers = 32MB\n",
            cluster.port,
            cluster.dir.path().display()
        );
        let conf = Path::new(&data).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("write postgresql.conf");
        cluster.start().await;
        Some(cluster)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // A folder the postgres user may enter (not the crate's, which may be root's).
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Runs a PostgreSQL program off the async workers; fails with its output and the log.
    async fn run_blocking(&self, tool: &str, args: &[&str]) {
        let mut cmd = self.command(tool, args);
        let shown = format!("{tool} {args:?}");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert!(
            out.status.success(),
            "{shown} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Starts the server and returns once it accepts connections (crash recovery included).
    pub async fn start(&self) {
        let (data, log) = (self.data_dir(), self.log_file().display().to_string());
        self.run_blocking(
            "pg_ctl",
            &["start", "-w", "-t", "60", "-D", &data, "-l", &log],
        )
        .await;
    }

    /// Stops the server in `mode` and returns once it is down.
    pub async fn stop(&self, mode: StopMode) {
        let data = self.data_dir();
        self.run_blocking(
            "pg_ctl",
            &["stop", "-w", "-t", "60", "-m", mode.as_str(), "-D", &data],
        )
        .await;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Whatever state the test left it in; the folder goes with `dir`.
        let data = self.data_dir();
        let mut cmd = self.command(
            "pg_ctl",
            &["stop", "-w", "-t", "30", "-m", "immediate", "-D", &data],
        );
        let _ = cmd.output();
        // The postmaster has exited when pg_ctl returns; its pid file is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Path::new(&data).join("postmaster.pid").exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
