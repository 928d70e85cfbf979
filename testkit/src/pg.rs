//! A throwaway Postgres cluster for tests, examples and benchmarks, driven by process control only.
//!
//! [`TestPostgres::start`] runs `initdb` into a fresh directory under the system temp dir and starts
//! `postgres` on a free local port with durability turned off (fsync, synchronous commit and full
//! page writes), trusting every local connection as user `postgres`. Postgres refuses to run as
//! root, so when this process is root the directory is handed to the `postgres` user and the server
//! runs as that user.
//!
//! [`TestPostgres::start_tls`] starts one that speaks TLS with a given server certificate and, like
//! a managed Postgres that enforces it, refuses TCP connections without TLS (`hostssl` only).
//!
//! [`TestPostgres::stop_server`] and [`TestPostgres::start_server`] take the server down and bring
//! it back on the same port with the same data, so tests can simulate a database outage while the
//! cluster (and its cleanup) stays owned by one value.
//!
//! Invariants: the cluster never outlives the process that started it. [`TestPostgres::stop`] and
//! `Drop` stop it (SIGINT, Postgres's fast shutdown) and remove the directory; a detached watchdog
//! shell does the same within about a second if the owning process dies without running `Drop`
//! (killed, aborted). The watchdog finds the postmaster through `postmaster.pid` when it fires, so
//! it stops whichever server a restart left running. Children get no stdout, so a caller reading
//! this process's output through a pipe sees it close when this process exits.

use std::env;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::certs::ServerCert;

/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`TestPostgres::stop_server`] waits for the server to exit and its port to close.
const OUTAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Stops the cluster (read from `postmaster.pid`) and removes the directory once the owning pid
/// ($1) is gone. Arguments: owner pid, cluster directory.
const WATCHDOG: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -INT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"
"#;

/// A throwaway cluster. Stops and deletes itself when dropped.
#[derive(Debug)]
pub struct TestPostgres {
    /// The TCP port on 127.0.0.1, kept across restarts.
    port: u16,
    /// Everything the cluster owns: `data/`, `sock/`, `postgres.log`.
    dir: PathBuf,
    /// Where `postgres` lives, to start it again after [`TestPostgres::stop_server`].
    bin: PathBuf,
    /// Who the server runs as (the `postgres` user when we are root), the same on every start.
    run_as: Option<RunAs>,
    /// The postmaster itself (not a wrapper), so signals reach it directly; `None` while stopped.
    /// Behind a mutex so a shared handle can stop and start it.
    server: Mutex<Option<Child>>,
    /// Cleans up if this process dies without dropping us.
    watchdog: Option<Child>,
    /// Started with `ssl = on` (and TCP only over TLS).
    tls: bool,
}

/// The user and group the cluster's processes run as, when not ourselves.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl TestPostgres {
    /// Creates and starts a cluster; returns once it accepts connections.
    ///
    /// Binaries are looked up in `$SUPASAASY_PG_BIN`, then on `PATH`, then in the newest
    /// `/usr/lib/postgresql/*/bin`.
    ///
    /// # Errors
    ///
    /// When no Postgres binaries are found, when running as root without a `postgres` user, or
    /// when `initdb` or the server fails (the error carries their output).
    pub fn start() -> io::Result<TestPostgres> {
        Self::start_with(None)
    }

    /// Creates and starts a cluster that speaks TLS with `cert` and accepts TCP connections only
    /// over TLS (its `pg_hba.conf` has `hostssl` lines, no `host` ones); the Unix socket stays
    /// open without TLS.
    ///
    /// # Errors
    ///
    /// As [`TestPostgres::start`], and when the certificate files cannot be copied.
    pub fn start_tls(cert: &ServerCert) -> io::Result<TestPostgres> {
        Self::start_with(Some(cert))
    }

    fn start_with(tls: Option<&ServerCert>) -> io::Result<TestPostgres> {
        let bin = find_bin_dir()?;
        let run_as = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = make_dir(run_as)?;
        let mut pg = TestPostgres {
            port: 0,
            dir,
            bin,
            run_as,
            server: Mutex::new(None),
            watchdog: None,
            tls: tls.is_some(),
        };
        pg.watchdog = Some(spawn_watchdog(&pg.dir)?);
        pg.init()?;
        if let Some(cert) = tls {
            pg.install_tls(cert)?;
        }
        // Another process may grab the free port between our probe and the server's bind.
        let mut attempts = 0;
        loop {
            attempts += 1;
            pg.port = free_port()?;
            match pg.start_server() {
                Ok(()) => return Ok(pg),
                Err(e) if attempts < 3 && e.to_string().contains("already in use") => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DBNAME` (no password: local connections are trusted).
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    /// The directory holding the cluster (`data/`, `sock/`, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (fast shutdown) and removes its directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be removed.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    /// Stops the server (fast shutdown) but keeps its data and port, to simulate an outage; returns
    /// once the postmaster has exited and the port refuses connections. Does nothing when the
    /// server is already stopped.
    ///
    /// # Errors
    ///
    /// When the server has not exited, or its port still accepts connections, within 30 seconds.
    /// The server is then left as it is, for [`TestPostgres::stop`] or `Drop` to kill.
    pub fn stop_server(&self) -> io::Result<()> {
        let mut slot = self.server();
        let Some(server) = slot.as_mut() else {
            return Ok(());
        };
        let deadline = Instant::now() + OUTAGE_TIMEOUT;
        if !fast_shutdown(server, deadline) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("postgres did not shut down within {OUTAGE_TIMEOUT:?}"),
            ));
        }
        *slot = None;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "port {} still accepts connections {OUTAGE_TIMEOUT:?} after postgres exited",
                        self.port
                    ),
                ));
            }
            sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the server again after [`TestPostgres::stop_server`], on the same port with the same
    /// data, settings and user; returns once it accepts connections. Does nothing when the server
    /// is running.
    ///
    /// # Errors
    ///
    /// When the server fails to start or is not ready within 30 seconds (the error carries its
    /// log), for instance because another process took the port during the outage.
    pub fn start_server(&self) -> io::Result<()> {
        let mut slot = self.server();
        if let Some(server) = slot.as_mut() {
            if server.try_wait()?.is_none() {
                return Ok(());
            }
            *slot = None;
        }
        *slot = Some(self.launch()?);
        Ok(())
    }

    /// The postmaster slot; a panic while it was held leaves nothing half-done worth refusing.
    fn server(&self) -> MutexGuard<'_, Option<Child>> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn init(&self) -> io::Result<()> {
        let mut cmd = command(&self.bin.join("initdb"), self.run_as, &self.dir);
        cmd.arg("-D").arg(self.dir.join("data")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let out = cmd.stdin(Stdio::null()).output()?;
        if out.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "initdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }

    /// Puts the server's certificate and key in the data directory and allows TCP only over TLS.
    fn install_tls(&self, cert: &ServerCert) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.join("data");
        for (from, to) in [(&cert.cert, "server.crt"), (&cert.key, "server.key")] {
            let path = data.join(to);
            fs::copy(from, &path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            if let Some(RunAs { uid, gid }) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
    }

    /// Starts the postmaster on `self.port` and waits until it is ready. The log is appended to,
    /// so a restart keeps what the earlier run wrote.
    fn launch(&self) -> io::Result<Child> {
        let log_path = self.dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let log_start = log.metadata()?.len();
        let mut cmd = command(&self.bin.join("postgres"), self.run_as, &self.dir);
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.join("sock"));
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ] {
            cmd.args(["-c", setting]);
        }
        if self.tls {
            cmd.args(["-c", "ssl=on"]);
        }
        let mut server = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        match self.wait_ready(&mut server) {
            Ok(()) => Ok(server),
            Err(e) => {
                halt(server);
                let log = fs::read(&log_path).unwrap_or_default();
                let ours = log.get(log_start as usize..).unwrap_or_default();
                let ours = String::from_utf8_lossy(ours);
                Err(io::Error::new(
                    e.kind(),
                    format!("{e}; server log:\n{ours}"),
                ))
            }
        }
    }

    fn wait_ready(&self, server: &mut Child) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no connection yet");
        while Instant::now() < deadline {
            if let Some(status) = server.try_wait()? {
                return Err(io::Error::other(format!(
                    "postgres exited early ({status})"
                )));
            }
            match handshake(addr) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "postgres did not accept connections on port {} within {START_TIMEOUT:?} ({last})",
                self.port
            ),
        ))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let slot = self
            .server
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = slot.take() {
            halt(server);
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Sends SIGINT (Postgres's fast shutdown) unless the server has already exited, and waits for it
/// until `deadline`; true when it has exited (and been reaped).
fn fast_shutdown(server: &mut Child, deadline: Instant) -> bool {
    if let Ok(None) = server.try_wait() {
        // The postmaster may run as another user; `kill` as root reaches it all the same.
        let _ = Command::new("kill")
            .args(["-INT", &server.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    loop {
        match server.try_wait() {
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
            Ok(None) => return false,
            Ok(Some(_)) | Err(_) => return true,
        }
    }
}

/// Fast shutdown, then a kill if it takes too long.
fn halt(mut server: Child) {
    if !fast_shutdown(&mut server, Instant::now() + STOP_TIMEOUT) {
        let _ = server.kill();
    }
    let _ = server.wait();
}

/// A command run in `dir`, as `run_as` when given, with a C locale and its own process group (so
/// a Ctrl-C aimed at the test does not reach it before the owner can stop it).
fn command(program: &Path, run_as: Option<RunAs>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("LC_ALL", "C").process_group(0);
    if let Some(RunAs { uid, gid }) = run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Connects and sends a startup message; ready when the server answers with an authentication
/// request (`R`), or refuses us by its `pg_hba.conf` (a server taking TCP only over TLS), rather
/// than with an error such as "the database system is starting up".
fn handshake(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let params = b"user\0postgres\0database\0postgres\0\0";
    let len = (8 + params.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    msg.extend_from_slice(params);
    stream.write_all(&msg)?;
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply)?;
    match reply.first() {
        Some(b'R') if n > 0 => {
            let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
            Ok(())
        }
        Some(b'E') if String::from_utf8_lossy(&reply[..n]).contains("pg_hba.conf") => Ok(()),
        _ => Err(io::Error::other(format!(
            "server answered: {}",
            String::from_utf8_lossy(&reply[..n]).replace('\0', " ")
        ))),
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn make_dir(run_as: Option<RunAs>) -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "supasaasy-pg-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = env::temp_dir().join(name);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let sock = dir.join("sock");
    fs::DirBuilder::new().mode(0o700).create(&sock)?;
    if let Some(RunAs { uid, gid }) = run_as {
        for path in [&dir, &sock] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
    }
    Ok(dir)
}

fn spawn_watchdog(dir: &Path) -> io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// Whether this process runs with effective uid 0.
fn is_root() -> bool {
    let from_proc = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        });
    from_proc.unwrap_or_else(|| id(&["-u"]).is_ok_and(|uid| uid == 0))
}

fn postgres_user() -> io::Result<RunAs> {
    let uid = id(&["-u", "postgres"]);
    let gid = id(&["-g", "postgres"]);
    match (uid, gid) {
        (Ok(uid), Ok(gid)) => Ok(RunAs { uid, gid }),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "running as root, but there is no `postgres` user to run the cluster as \
             (Postgres refuses to run as root)",
        )),
    }
}

/// Runs `id` with these arguments and parses the number it prints.
fn id(args: &[&str]) -> io::Result<u32> {
    let out = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("`id {}` failed", args.join(" "))))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory holding both `initdb` and `postgres`, symlinks resolved so the server finds its
/// `share/` files.
fn find_bin_dir() -> io::Result<PathBuf> {
    let has_both =
        |dir: &Path| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"));
    let resolve = |dir: &Path| {
        fs::canonicalize(dir.join("postgres"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_both(d))
            .unwrap_or_else(|| dir.to_path_buf())
    };
    if let Some(dir) = env::var_os("SUPASAASY_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_both(&dir) {
            return Ok(resolve(&dir));
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "SUPASAASY_PG_BIN={} holds no initdb and postgres",
                dir.display()
            ),
        ));
    }
    let on_path = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.iter().find(|d| has_both(d)) {
        return Ok(resolve(dir));
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no Postgres server binaries (initdb and postgres) on PATH or in \
             /usr/lib/postgresql/*/bin; install the Postgres server package or set SUPASAASY_PG_BIN",
        )
    })
}

/// Replaces the database name of a `postgres://` URL, keeping its query string
/// (`?host=/run/postgresql`).
pub fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| i + scheme_end);
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..host_end]),
        None => format!("{}/{db}", &base[..host_end]),
    }
}
