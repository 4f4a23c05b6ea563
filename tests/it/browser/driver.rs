//! Debian's `chromium` and `chromedriver` for the browser test: install them when missing, start
//! the driver on an ephemeral port, open headless sessions with a fresh profile, read the
//! browser console.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::page::{DESKTOP, TestResult};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Install `chromium` and `chromium-driver` with apt-get when either is missing, once per process.
/// apt-get waits for the dpkg lock, so two test processes installing at once do not fail.
pub fn ensure_browser() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
            return;
        }
        eprintln!("browser test: installing chromium and chromium-driver with apt-get");
        let apt = |args: &[&str]| {
            let status = Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "-q"])
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .status()
                .expect("run apt-get (the browser test needs chromium and chromium-driver)");
            assert!(status.success(), "apt-get {args:?} failed: {status}");
        };
        apt(&["update"]);
        apt(&[
            "install",
            "-y",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ]);
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "apt-get ran but {CHROMIUM} or {CHROMEDRIVER} is still missing"
        );
    });
}

/// A `chromedriver` on an ephemeral loopback port, in its own process group so that dropping it
/// also ends any browser it started.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading so chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromedriver did not say its port");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new headless Chromium session with a fresh profile.
    pub async fn session(&self, profile: &Path) -> Client {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("start a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any chromium it left behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser console since the last call holds no CSP violation and no script error (an HTTP
/// 401 or 403 that the page handles is fine: the browser logs those as failed loads).
pub async fn no_console_errors(c: &Client, driver: &str) -> TestResult {
    let sid = c.session_id().await?.ok_or("no WebDriver session")?;
    let log: Value = reqwest::Client::new()
        .post(format!("{driver}/session/{sid}/se/log"))
        .json(&json!({"type": "browser"}))
        .send()
        .await?
        .json()
        .await?;
    let entries = log["value"]
        .as_array()
        .ok_or_else(|| format!("chromedriver gave no browser log: {log}"))?;
    let bad: Vec<String> = entries
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| {
            m.contains("Content Security Policy")
                || m.contains("Refused to")
                || m.contains("Uncaught")
                || m.contains("TypeError")
                || m.contains("ReferenceError")
        })
        .map(str::to_owned)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("browser console errors: {bad:#?}").into())
    }
}
