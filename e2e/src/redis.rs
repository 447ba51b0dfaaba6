//! A real `redis-server` (Debian's, installed by `scripts/install-redis.sh`, part of
//! `make peers`) as a child process on a free loopback port, keeping nothing on disk. It is
//! killed when dropped; a test can kill, freeze and restart it on the same port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Arguments beyond the port and persistence (`--requirepass …`).
    args: Vec<String>,
    password: Option<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with_password(None).await
    }

    /// Same, with `requirepass` when `password` is given.
    pub async fn start_with_password(password: Option<&str>) -> Self {
        let port = crate::process::free_port().port();
        let args = password.map(|p| vec!["--requirepass".to_owned(), p.to_owned()]).unwrap_or_default();
        let mut server = RedisServer { child: None, port, args, password: password.map(str::to_owned) };
        server.restart().await;
        server
    }

    /// `redis://[:password@]127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u8) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/{db}", self.port),
            None => format!("redis://127.0.0.1:{}/{db}", self.port),
        }
    }

    /// Kills it (SIGKILL: everything it held is gone) and waits for it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing answers, as with a hung server.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Starts it (again) on its port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill().await;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start redis-server ({e}): install it with scripts/install-redis.sh (part of `make peers`)")
            });
        self.child = Some(child);
        let port = self.port;
        crate::eventually("redis-server answers PING", Duration::from_secs(20), || async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(b"PING\r\n").await.ok()?;
            let mut reply = [0u8; 64];
            let n = stream.read(&mut reply).await.ok()?;
            // `+PONG`, or `-NOAUTH` from a server with a password: either way it is serving.
            (n > 0).then_some(())
        })
        .await;
    }

    /// Runs `redis-cli` against it (database `db`) and returns what it prints.
    pub async fn cli(&self, db: u8, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string(), "-n", &db.to_string()]);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command.args(args).output().await.expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("redis-server runs");
        let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }
}
