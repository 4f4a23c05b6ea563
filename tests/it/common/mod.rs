//! Helpers shared by the integration tests: run `offkey` commands in isolation (own data dir,
//! own config dir) and start `offkey serve` on an ephemeral port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of the built `offkey` binary.
pub fn offkey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_offkey"))
}

/// An `offkey` command with no inherited service settings.
pub fn offkey(config_dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(offkey_bin());
    cmd.env("OFFKEY_CONFIG_DIR", config_dir)
        .env_remove("OFFKEY_SERVER")
        .env_remove("OFFKEY_TOKEN")
        .env_remove("OFFKEY_DATA");
    cmd
}

/// Add a member to the store in `data` with `offkey members add`.
pub fn add_member(data: &Path, email: &str, role: &str, password: &str) {
    let scratch = tempfile::tempdir().expect("temp dir");
    offkey(scratch.path())
        .args([
            "members",
            "add",
            "--email",
            email,
            "--name",
            "Test Person",
            "--role",
            role,
        ])
        .arg("--password-stdin")
        .arg("--data")
        .arg(data)
        .write_stdin(format!("{password}\n"))
        .assert()
        .success();
}

/// A running `offkey serve`.
pub struct Server {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Start `offkey serve --listen 127.0.0.1:0 --data DIR` and wait for its address.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[], "info")
    }

    /// Start it with more arguments and another `OFFKEY_LOG` level.
    pub fn start_with(data: &Path, args: &[std::ffi::OsString], log_level: &str) -> Server {
        let mut child = Command::new(offkey_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env_remove("OFFKEY_DATA")
            .env("OFFKEY_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start offkey serve");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Into the log first, so the log holds the line once the address is known.
                {
                    let mut l = sink.lock().expect("log lock");
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(url) = line.strip_prefix("offkey serve listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("offkey serve did not start: {}", log.lock().expect("log"));
            }
        };
        Server { child, url, log }
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// A client of this server, not signed in.
    pub fn client(&self) -> offkey::client::Client {
        offkey::client::Client::new(&self.url).expect("client")
    }

    /// Stop with SIGTERM (a graceful shutdown) and answer the whole log.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        // Let the reader thread drain the pipe.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            exit.success(),
            "graceful shutdown exits 0: {exit:?}\n{}",
            self.log()
        );
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write `lines` to a file and answer its path (for stdin).
pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(content.as_bytes()).expect("write");
    path
}
