//! Helpers to run the real `plunk` binary: CLI commands and `plunk serve` processes.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn plunk() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_plunk"));
    c.env_remove("PLUNK_STORE")
        .env_remove("PLUNK_TABLE")
        .env_remove("PLUNK_DYNAMODB_ENDPOINT")
        .env_remove("PLUNK_DATA_DIR");
    c
}

/// Runs `plunk --json <args>` on `data_dir`; returns the exit code and the parsed stdout.
pub fn cli(data_dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = plunk()
        .arg("--json")
        .args(args)
        .env("PLUNK_DATA_DIR", data_dir)
        .output()
        .unwrap();
    parse(out)
}

/// Exit code and parsed stdout of a finished command.
pub fn parse(out: Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), value)
}

/// A running `plunk serve`, killed on drop. Its stdout lines are collected.
pub struct Server {
    pub child: Child,
    pub base_url: String,
    pub stdout: Vec<String>,
    stderr_path: std::path::PathBuf,
}

impl Server {
    /// Starts `plunk serve --bind 127.0.0.1:0` with extra environment and waits for its URL.
    // The child is killed and waited for by `Drop` (or right here when it never starts).
    #[allow(clippy::zombie_processes)]
    pub fn start(envs: &[(&str, &str)], extra_args: &[&str], log_dir: &Path) -> Self {
        Self::start_serving(envs, extra_args, &[], log_dir)
    }

    /// Like [`Server::start`], with options of `serve` itself (`serve_args`).
    #[allow(clippy::zombie_processes)]
    pub fn start_serving(
        envs: &[(&str, &str)],
        extra_args: &[&str],
        serve_args: &[&str],
        log_dir: &Path,
    ) -> Self {
        let stderr_path = log_dir.join(format!("serve-{}.log", uuid::Uuid::now_v7()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = plunk();
        cmd.args(extra_args)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(serve_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("plunk serve did not print its URL within 30 s");
            };
            let done = line.starts_with("Serving the API at ");
            lines.push(line.clone());
            if done {
                let url = line
                    .trim_start_matches("Serving the API at ")
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                return Self {
                    child,
                    base_url: url,
                    stdout: lines,
                    stderr_path,
                };
            }
        }
    }

    /// The secret key printed on first start, if any.
    pub fn printed_secret(&self) -> Option<String> {
        self.stdout
            .iter()
            .find_map(|l| l.trim().strip_prefix("secret key: ").map(str::to_owned))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a request; returns status, headers of interest and JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, ureq::Response) {
        let mut req = ureq::request(method, &format!("{}{path}", self.base_url));
        if let Some(k) = key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(code, r)) => (code, r),
            Err(e) => panic!("request failed: {e}"),
        }
    }
}

impl Server {
    /// Stops the server as Ctrl-C or a service manager would (SIGTERM) and waits until it has
    /// exited, at most 20 seconds, then kills it. Returns whether it exited by itself.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
