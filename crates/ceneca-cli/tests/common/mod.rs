//! What the tests of the real binary share: the binary, a free port, and a `ceneca serve`
//! started, awaited until ready and stopped as an operator would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ceneca");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL database of its own on the test server (named `<prefix>_<uuid>`), by URL.
// Not every test binary that shares this module runs on PostgreSQL.
#[allow(dead_code)]
pub async fn fresh_postgres_database(prefix: &str) -> String {
    let admin_url = std::env::var("CENECA_TEST_DATABASE_URL")
        .expect("CENECA_TEST_DATABASE_URL is not set: run scripts/test, which starts PostgreSQL");
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// A running `ceneca serve`, killed if the test ends without [`stop`].
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd serve <args> --listen <free port>` with stderr to `stderr`, and waits until
/// `/readyz` answers.
pub async fn serve_with(mut cmd: Command, args: &[&str], stderr: Stdio) -> Server {
    let port = free_port();
    let child = cmd
        .arg("serve")
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start ceneca serve");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let http = reqwest::Client::new();
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ceneca serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server { child, base }
}

/// Stops a server as an operator does (SIGTERM), so it shuts down cleanly.
pub fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let started = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ceneca serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
