//! The throwaway cluster starts (as root too), accepts connections, and leaves nothing behind.

use std::io::{Read, Write};
use std::net::TcpStream;

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
