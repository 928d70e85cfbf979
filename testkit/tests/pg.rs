//! The throwaway cluster starts (as root too), accepts connections, survives a simulated outage
//! with its data and port, and leaves nothing behind, even when its owner aborts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use supasaasy_testkit::pg::TestPostgres;

/// Sends a Postgres startup message; true when the server asks for (or skips) authentication.
fn speaks_postgres(port: u16) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the cluster");
    let params = b"user\0postgres\0database\0postgres\0\0";
    let mut msg = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&196_608u32.to_be_bytes());
    msg.extend_from_slice(params);
    stream.write_all(&msg).unwrap();
    let mut reply = [0u8; 9];
    stream.read_exact(&mut reply).unwrap();
    // 'R', length 8, AuthenticationOk (0): trust authentication let us in.
    reply == [b'R', 0, 0, 0, 8, 0, 0, 0, 0]
}

/// Runs `sql` with the simple query protocol as `postgres`; the first column of every row, or the
/// server's error message.
fn query(port: u16, sql: &str) -> Result<Vec<String>, String> {
    fn send(stream: &mut TcpStream, tag: Option<u8>, body: &[u8]) {
        let mut msg = tag.map(|t| vec![t]).unwrap_or_default();
        msg.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
        msg.extend_from_slice(body);
        stream.write_all(&msg).unwrap();
    }
    /// Reads messages up to ReadyForQuery; the rows' first columns, or the last error.
    fn until_ready(stream: &mut TcpStream) -> Result<Vec<String>, String> {
        let (mut rows, mut error) = (Vec::new(), None);
        loop {
            let mut head = [0u8; 5];
            stream.read_exact(&mut head).unwrap();
            let len = u32::from_be_bytes(head[1..].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len - 4];
            stream.read_exact(&mut body).unwrap();
            match head[0] {
                b'Z' => return error.map_or(Ok(rows), Err),
                // DataRow: column count, then the first column's length and bytes.
                b'D' => {
                    let n = i32::from_be_bytes(body[2..6].try_into().unwrap());
                    rows.push(String::from_utf8_lossy(&body[6..6 + n.max(0) as usize]).into());
                }
                // ErrorResponse: typed fields; 'M' is the message.
                b'E' => {
                    error = body
                        .split(|&b| b == 0)
                        .find_map(|f| f.strip_prefix(b"M"))
                        .map(|m| String::from_utf8_lossy(m).into_owned());
                }
                _ => {}
            }
        }
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0postgres\0database\0postgres\0\0");
    send(&mut stream, None, &startup);
    until_ready(&mut stream)?;
    send(&mut stream, Some(b'Q'), format!("{sql}\0").as_bytes());
    let rows = until_ready(&mut stream);
    send(&mut stream, Some(b'X'), &[]);
    rows
}

fn refuses(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn starts_accepts_connections_and_cleans_up() {
    let pg = TestPostgres::start().expect("start a throwaway cluster");
    let port = pg.port();
    assert_eq!(
        pg.url("postgres"),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert!(speaks_postgres(port));
    let dir = pg.dir().to_path_buf();
    assert!(dir.join("data/PG_VERSION").exists());

    // Two clusters side by side.
    let other = TestPostgres::start().expect("start a second cluster");
    assert_ne!(other.port(), port);
    drop(other);

    pg.stop().expect("stop the cluster");
    assert!(!dir.exists(), "the cluster directory is removed");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is gone"
    );
}

#[test]
fn an_outage_keeps_the_port_and_the_data() {
    let pg = TestPostgres::start().expect("start a throwaway cluster");
    let port = pg.port();
    let dir = pg.dir().to_path_buf();
    query(
        port,
        "CREATE TABLE survivors (name text); INSERT INTO survivors VALUES ('kept')",
    )
    .expect("write before the outage");

    pg.stop_server().expect("stop the server");
    assert!(refuses(port), "no server during the outage");
    pg.stop_server()
        .expect("stopping a stopped server is a no-op");
    assert!(dir.join("data/PG_VERSION").exists(), "the data stays");

    pg.start_server().expect("start the server again");
    pg.start_server()
        .expect("starting a running server is a no-op");
    assert_eq!(pg.port(), port);
    assert!(speaks_postgres(port));
    assert_eq!(
        query(port, "SELECT name FROM survivors"),
        Ok(vec!["kept".to_string()])
    );

    drop(pg);
    assert!(!dir.exists(), "the cluster directory is removed");
    assert!(refuses(port), "the restarted server is gone");
}

/// Set in the child process that [`the_watchdog_stops_a_restarted_server`] runs.
const ABORTING_OWNER: &str = "SUPASAASY_PG_TEST_ABORTING_OWNER";

/// In the child: start, restart, report port and directory, then die without running `Drop`.
#[test]
fn aborting_owner() {
    if std::env::var_os(ABORTING_OWNER).is_none() {
        return;
    }
    let pg = TestPostgres::start().expect("start a throwaway cluster");
    pg.stop_server().expect("stop the server");
    pg.start_server().expect("start the server again");
    println!("cluster {} {}", pg.port(), pg.dir().display());
    std::process::abort();
}

#[test]
fn the_watchdog_stops_a_restarted_server() {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "aborting_owner",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ABORTING_OWNER, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the aborting owner");
    let output = child.wait_with_output().expect("the owner exits");
    // libtest prints "test aborting_owner ... " ahead of the report, on the same line.
    let line = BufReader::new(&output.stdout[..])
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("cluster ").map(|(_, rest)| rest.to_owned()))
        .expect("the owner reports its cluster");
    let (port, dir) = line.split_once(' ').unwrap();
    let (port, dir): (u16, PathBuf) = (port.parse().unwrap(), dir.into());
    assert!(!output.status.success(), "the owner aborted");

    // The watchdog polls once a second and allows the fast shutdown ten more. It removes the
    // directory only once the server has exited, so the port must be closed the moment the
    // directory is gone (a server left running would notice its lock file missing only a minute
    // later, and shut down on its own then).
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "the watchdog removes the cluster directory");
    assert!(
        refuses(port),
        "the watchdog stopped the restarted server first"
    );
}
