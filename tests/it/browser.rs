//! The Settings → API Keys page in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) with fantoccini, against `offkey serve` on an ephemeral port.
//!
//! One flow, as a person would use the page: sign in (a wrong password first), find the legacy
//! key with no recorded creator, create a key and see it once, reload and see only its last 4,
//! rotate it with a grace period, delete a key through the dialog, sign out; a member sees the
//! admin-only message and no key data; a cross-site form post with the admin's cookie is refused.
//! Screenshots of the main states go to `target/screenshots/` (gitignored) for review.
//!
//! When chromium or chromedriver is missing the test installs them with apt-get (CI runs as root).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{self, Server};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);
const DESKTOP: (u32, u32) = (1280, 900);
const NARROW: (u32, u32) = (360, 780);

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

// ---- the browser and its driver ----------------------------------------------------------------

/// Install `chromium` and `chromium-driver` with apt-get when either is missing, once per process.
/// apt-get waits for the dpkg lock, so two test processes installing at once do not fail.
fn ensure_browser() {
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
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
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
    async fn session(&self, profile: &Path) -> Client {
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

// ---- small page helpers ------------------------------------------------------------------------

/// Poll a JavaScript expression until it is truthy.
async fn wait_js(c: &Client, expr: &str, what: &str) -> TestResult<Value> {
    let start = Instant::now();
    let script = format!("return ({expr});");
    loop {
        let v = c.execute(&script, vec![]).await?;
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return Ok(v);
        }
        if start.elapsed() > WAIT {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            return Err(format!("timed out waiting for {what} ({expr}) at {url}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, expr: &str) -> TestResult<Value> {
    Ok(c.execute(&format!("return ({expr});"), vec![]).await?)
}

async fn js_string(c: &Client, expr: &str) -> TestResult<String> {
    Ok(js(c, expr).await?.as_str().unwrap_or_default().to_owned())
}

async fn css(c: &Client, selector: &str) -> TestResult<fantoccini::elements::Element> {
    Ok(c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await?)
}

async fn visible(c: &Client, selector: &str) -> TestResult<bool> {
    let sel = serde_json::to_string(selector)?;
    Ok(js(
        c,
        &format!("(function(e){{return !!e && e.getClientRects().length > 0;}})(document.querySelector({sel}))"),
    )
    .await?
    .as_bool()
    .unwrap_or(false))
}

async fn active_id(c: &Client) -> TestResult<String> {
    js_string(c, "document.activeElement && document.activeElement.id").await
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("OFFKEY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

async fn shot(c: &Client, name: &str) -> TestResult {
    // Let transitions and fonts settle so the picture shows the state, not a frame of a change.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let png = c.screenshot().await?;
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png)?;
    Ok(())
}

/// Make the layout viewport `w` × `h` CSS pixels (the window may have a frame around it).
async fn viewport(c: &Client, (w, h): (u32, u32)) -> TestResult {
    c.set_window_size(w, h).await?;
    let inner = js(c, "[window.innerWidth, window.innerHeight]").await?;
    let iw = inner[0].as_u64().unwrap_or(u64::from(w));
    let ih = inner[1].as_u64().unwrap_or(u64::from(h));
    if iw != u64::from(w) || ih != u64::from(h) {
        let dw = u32::try_from(iw).unwrap_or(w).abs_diff(w);
        let dh = u32::try_from(ih).unwrap_or(h).abs_diff(h);
        c.set_window_size(w + dw, h + dh).await?;
    }
    Ok(())
}

/// Sign in on /login and wait for the keys page.
async fn sign_in(c: &Client, base: &str, email: &str, password: &str) -> TestResult {
    c.goto(&format!("{base}/login")).await?;
    css(c, "#login-email").await?.send_keys(email).await?;
    css(c, "#login-password").await?.send_keys(password).await?;
    css(c, "#login-submit").await?.click().await?;
    wait_js(
        c,
        "location.pathname === '/settings/api-keys' && document.readyState === 'complete'",
        "the keys page after sign-in",
    )
    .await?;
    Ok(())
}

/// The keys the page shows: (id, text of the row).
async fn rows(c: &Client) -> TestResult<Vec<(String, String)>> {
    let v = js(
        c,
        "Array.from(document.querySelectorAll('table#keys tbody tr[data-key-id]'))\
         .map(function(r){return [r.getAttribute('data-key-id'), r.innerText];})",
    )
    .await?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or_default().to_owned(),
                        r[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn row_id_with_memo(c: &Client, memo: &str) -> TestResult<String> {
    rows(c)
        .await?
        .into_iter()
        .find(|(_, text)| text.contains(memo))
        .map(|(id, _)| id)
        .ok_or_else(|| format!("no row with memo {memo:?}").into())
}

fn is_current_key(s: &str) -> bool {
    s.strip_prefix("oc_live_")
        .is_some_and(|rest| rest.len() == 38 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn random_password() -> String {
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}

// ---- the test ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_page_in_a_real_browser() {
    ensure_browser();
    let data = tempfile::tempdir().expect("temp dir");
    let admin_pw = random_password();
    let member_pw = random_password();
    common::add_member(data.path(), "admin@example.com", "admin", &admin_pw);
    common::add_member(data.path(), "member@example.com", "member", &member_pw);

    // A legacy key, made up here: 32 lowercase hex, created long ago, no recorded creator.
    let legacy: String = {
        let mut rng = rand::thread_rng();
        (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
            .collect()
    };
    let line =
        json!({"key": legacy, "memo": "Legacy storefront", "created_at": "2024-01-15T10:00:00Z"});
    let scratch = tempfile::tempdir().expect("temp dir");
    common::offkey(scratch.path())
        .args(["keys", "import-legacy", "--data"])
        .arg(data.path())
        .write_stdin(format!("{line}\n"))
        .assert()
        .success();

    let server = Server::start(data.path());
    report_exposure(&server.url, &admin_pw, &legacy).await;
    let driver = Driver::start();
    let admin_profile = tempfile::tempdir().expect("temp dir");
    let member_profile = tempfile::tempdir().expect("temp dir");

    let c = driver.session(admin_profile.path()).await;
    let flow = {
        let (c, url, pw, legacy) = (
            c.clone(),
            server.url.clone(),
            admin_pw.clone(),
            legacy.clone(),
        );
        let driver = driver.url.clone();
        tokio::spawn(async move {
            admin_flow(&c, &url, &pw, &legacy).await?;
            no_console_errors(&c, &driver).await
        })
    };
    finish(&c, "admin", flow.await, &server).await;

    let c = driver.session(member_profile.path()).await;
    let flow = {
        let (c, url, pw) = (c.clone(), server.url.clone(), member_pw.clone());
        let driver = driver.url.clone();
        tokio::spawn(async move {
            member_flow(&c, &url, &pw).await?;
            no_console_errors(&c, &driver).await
        })
    };
    finish(&c, "member", flow.await, &server).await;

    let log = server.log();
    assert!(!log.contains(&legacy), "the server log never holds a key");
    assert!(
        !log.contains("oc_live_"),
        "the server log never holds a key"
    );
}

/// End a browser session; when its flow failed (an error or a failed assertion), keep a
/// screenshot of where it stood and fail with the server's log.
async fn finish(
    c: &Client,
    name: &str,
    outcome: Result<TestResult, tokio::task::JoinError>,
    server: &Server,
) {
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(join) => Some(match join.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned()),
            Err(e) => e.to_string(),
        }),
    };
    if failure.is_some() {
        let _ = shot(c, &format!("failure-{name}")).await;
    }
    let _ = c.clone().close().await;
    if let Some(f) = failure {
        panic!(
            "{name} flow: {f}\n(screenshot: {}/failure-{name}.png)\n--- server log ---\n{}",
            screenshot_dir().display(),
            server.log()
        );
    }
}

/// The browser console since the last call holds no CSP violation and no script error (an HTTP
/// 401 or 403 that the page handles is fine: the browser logs those as failed loads).
async fn no_console_errors(c: &Client, driver: &str) -> TestResult {
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

/// Tell the service, as `offkey scan --verify` would, that the legacy key was seen in a file.
async fn report_exposure(base: &str, admin_pw: &str, legacy: &str) {
    let http = reqwest::Client::new();
    let session: Value = http
        .post(format!("{base}/v1/session"))
        .json(&json!({"email": "admin@example.com", "password": admin_pw}))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("session JSON");
    let token = session["token"].as_str().expect("a session token");
    let seen_at = (chrono::Utc::now() - chrono::Duration::hours(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = http
        .post(format!("{base}/v1/keys/exposures"))
        .bearer_auth(token)
        .json(&json!({"exposures": [{
            "sha256": offkey::key::sha256_hex(legacy.as_bytes()),
            "source": "offkey scan",
            "where": "deploy/env.sh:3 @ 9c1e2f0",
            "seen_at": seen_at,
        }]}))
        .send()
        .await
        .expect("report an exposure");
    assert_eq!(r.status(), 200);
    let r = http
        .delete(format!("{base}/v1/session"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sign out");
    assert_eq!(r.status(), 204);
}

async fn admin_flow(c: &Client, base: &str, password: &str, legacy: &str) -> TestResult {
    viewport(c, DESKTOP).await?;

    // The keys page without a session sends the browser to /login.
    c.goto(&format!("{base}/settings/api-keys")).await?;
    wait_js(
        c,
        "location.pathname === '/login'",
        "the redirect to /login",
    )
    .await?;

    // A wrong password: an inline error, and still on /login.
    css(c, "#login-email")
        .await?
        .send_keys("admin@example.com")
        .await?;
    css(c, "#login-password")
        .await?
        .send_keys("not-the-password")
        .await?;
    css(c, "#login-submit").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('login-error').hidden",
        "the sign-in error",
    )
    .await?;
    let error = css(c, "#login-error").await?.text().await?;
    assert!(error.contains("Wrong email or password"), "{error}");
    assert_eq!(c.current_url().await?.path(), "/login");
    shot(c, "01-login-error").await?;

    // The right password: to the keys page.
    css(c, "#login-password").await?.clear().await?;
    css(c, "#login-password").await?.send_keys(password).await?;
    css(c, "#login-submit").await?.click().await?;
    wait_js(
        c,
        "location.pathname === '/settings/api-keys'",
        "the keys page",
    )
    .await?;
    wait_js(
        c,
        "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === 1",
        "the legacy key's row",
    )
    .await?;

    // The session cookie is HttpOnly and SameSite=Strict; the page stored nothing.
    let cookie = c.get_named_cookie("offkey_session").await?;
    assert_eq!(cookie.http_only(), Some(true), "session cookie is HttpOnly");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "session cookie is SameSite=Strict"
    );
    let session_cookie = format!("offkey_session={}", cookie.value());
    assert_eq!(
        js(c, "document.cookie").await?,
        json!(""),
        "the token is not readable by script"
    );

    // The legacy key: blank Created By, with the explanation on hover; rotation is due.
    let legacy_id = row_id_with_memo(c, "Legacy storefront").await?;
    let legacy_row = format!("tr[data-key-id=\"{legacy_id}\"]");
    let by = css(c, &format!("{legacy_row} .created-by")).await?;
    assert_eq!(
        by.text().await?.trim(),
        "",
        "no creator recorded for a legacy key"
    );
    let title = by.attr("title").await?.unwrap_or_default();
    assert!(title.contains("before this page existed"), "{title}");
    let legacy_text = css(c, &legacy_row).await?.text().await?;
    assert!(
        legacy_text.contains(&format!("…{}", &legacy[28..])),
        "{legacy_text}"
    );
    assert!(legacy_text.contains("Never"), "{legacy_text}");
    assert!(
        legacy_text.contains("Candidate for removal"),
        "{legacy_text}"
    );
    assert!(legacy_text.contains("Rotation due"), "{legacy_text}");
    assert!(legacy_text.contains("Exposed"), "{legacy_text}");
    assert!(
        legacy_text.contains("deploy/env.sh:3 @ 9c1e2f0"),
        "{legacy_text}"
    );
    assert!(legacy_text.contains("3 hours ago"), "{legacy_text}");
    assert!(
        !c.source().await?.contains(legacy),
        "the legacy key is not in the page"
    );

    // Create: the dialog takes focus, a memo is required, the key is shown once.
    css(c, "#create-key").await?.click().await?;
    wait_js(
        c,
        "document.getElementById('create-dialog').open",
        "the create dialog",
    )
    .await?;
    assert_eq!(active_id(c).await?, "memo", "focus moves into the dialog");
    let placeholder = css(c, "#memo")
        .await?
        .attr("placeholder")
        .await?
        .unwrap_or_default();
    assert!(
        placeholder.contains("Fulfillment integration"),
        "{placeholder}"
    );
    css(c, "#create-submit").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('memo-error').hidden",
        "the memo-required error",
    )
    .await?;
    assert_eq!(
        js(c, "document.getElementById('create-dialog').open").await?,
        json!(true)
    );
    css(c, "#memo")
        .await?
        .send_keys("Fulfillment integration")
        .await?;
    css(c, "#create-submit").await?.click().await?;
    let key = wait_js(
        c,
        "document.getElementById('new-key-dialog').open && document.getElementById('new-key-value').textContent",
        "the new key panel",
    )
    .await?
    .as_str()
    .unwrap_or_default()
    .to_owned();
    assert!(
        is_current_key(&key),
        "a current-format key is shown: {} chars",
        key.len()
    );
    assert!(visible(c, "#copy-key").await?, "a Copy button");
    assert_eq!(
        active_id(c).await?,
        "copy-key",
        "focus moves into the key panel"
    );
    let advice = css(c, "#new-key-advice").await?.text().await?;
    assert!(advice.contains("directly into the tool"), "{advice}");
    assert!(
        advice.contains("shared document, an email or a chat"),
        "{advice}"
    );
    assert!(advice.contains("last characters"), "{advice}");
    css(c, "#copy-key").await?.click().await?;
    wait_js(
        c,
        "document.getElementById('copy-status').textContent",
        "the copy feedback",
    )
    .await?;
    // The key is nowhere but in its panel: not in the URL, not in web storage.
    assert!(!c.current_url().await?.as_str().contains(&key));
    let storage = js_string(
        c,
        "JSON.stringify([Object.assign({}, localStorage), Object.assign({}, sessionStorage)])",
    )
    .await?;
    assert!(!storage.contains(&key) && storage == "[{},{}]", "{storage}");
    // The screenshot of the panel blurs the key (a throwaway store's key, but still).
    js(
        c,
        "document.getElementById('new-key-value').style.filter = 'blur(6px)'",
    )
    .await?;
    shot(c, "03-new-key-panel").await?;
    js(
        c,
        "document.getElementById('new-key-value').style.filter = ''",
    )
    .await?;

    // Closing the panel removes the key for good and gives focus back to "+ Create Key".
    css(c, "#close-new-key").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('new-key-dialog').open",
        "the panel to close",
    )
    .await?;
    assert_eq!(
        js(c, "document.getElementById('new-key-value').textContent").await?,
        json!("")
    );
    assert!(!c.source().await?.contains(&key), "the key left the page");
    wait_js(
        c,
        "document.activeElement && document.activeElement.id === 'create-key'",
        "focus back on + Create Key",
    )
    .await?;
    let last4 = &key[key.len() - 4..];
    wait_js(
        c,
        "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === 2",
        "the new row",
    )
    .await?;
    let new_id = row_id_with_memo(c, "Fulfillment integration").await?;
    let new_row = format!("tr[data-key-id=\"{new_id}\"]");
    let text = css(c, &new_row).await?.text().await?;
    assert!(text.contains(&format!("…{last4}")), "{text}");
    assert!(text.contains("by Test Person"), "{text}");
    assert!(
        text.contains("Candidate for removal"),
        "a never-used key: {text}"
    );

    // An integration uses the key: after a reload its row says when, with the exact time on hover,
    // and it is no longer a candidate for removal.
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/account"))
        .bearer_auth(&key)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the new key works");

    // Reload: only …last4; the whole key is nowhere in the page.
    c.refresh().await?;
    wait_js(
        c,
        "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === 2",
        "the rows after reload",
    )
    .await?;
    let source = c.source().await?;
    assert!(
        !source.contains(&key),
        "after reload the key is not in the page"
    );
    assert!(source.contains(&format!("…{last4}")));
    assert_eq!(
        js(c, "document.getElementById('new-key-value').textContent").await?,
        json!("")
    );
    assert!(
        !js(c, "document.getElementById('new-key-dialog').open")
            .await?
            .as_bool()
            .unwrap_or(true)
    );

    let used = css(c, &format!("{new_row} .cell-used time")).await?;
    let used_text = used.text().await?;
    assert!(
        used_text.contains("now") || used_text.contains("minute"),
        "{used_text}"
    );
    assert!(
        !used.attr("title").await?.unwrap_or_default().is_empty(),
        "exact time on hover"
    );
    let text = css(c, &new_row).await?.text().await?;
    assert!(
        !text.contains("Candidate for removal"),
        "a used key: {text}"
    );

    // The delete button is labelled by the key's memo.
    let label = css(c, &format!("{new_row} .delete-key"))
        .await?
        .attr("aria-label")
        .await?;
    assert_eq!(label.as_deref(), Some("Delete key Fulfillment integration"));

    // Rotate the new key, keeping the old one for 1 hour: a replacement shown once, and the old
    // key's row shows its expiry.
    css(c, &format!("{new_row} .rotate-key"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "document.getElementById('rotate-dialog').open",
        "the rotate dialog",
    )
    .await?;
    css(c, "#rotate-dialog input[name=grace][value='3600']")
        .await?
        .click()
        .await?;
    shot(c, "04-rotate-dialog").await?;
    css(c, "#confirm-rotate").await?.click().await?;
    let replacement = wait_js(
        c,
        "document.getElementById('new-key-dialog').open && document.getElementById('new-key-value').textContent",
        "the replacement key panel",
    )
    .await?
    .as_str()
    .unwrap_or_default()
    .to_owned();
    assert!(is_current_key(&replacement) && replacement != key);
    css(c, "#close-new-key").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('new-key-dialog').open",
        "the panel to close",
    )
    .await?;
    wait_js(
        c,
        "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === 3",
        "the replacement's row",
    )
    .await?;
    let refocus = format!(
        "document.activeElement && document.activeElement.matches('{new_row} .rotate-key')"
    );
    wait_js(c, &refocus, "focus back on the old key's Rotate").await?;
    let expiry = css(c, &format!("{new_row} .key-expiry"))
        .await?
        .text()
        .await?;
    assert!(
        expiry.contains("expires in"),
        "the old key's row shows its expiry: {expiry}"
    );
    c.refresh().await?;
    wait_js(
        c,
        "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === 3",
        "the rows after reload",
    )
    .await?;
    let expiry = css(c, &format!("{new_row} .key-expiry"))
        .await?
        .text()
        .await?;
    assert!(
        expiry.contains("expires in"),
        "the expiry survives a reload: {expiry}"
    );
    assert!(!c.source().await?.contains(&replacement));

    shot(c, "02-keys-desktop").await?;
    viewport(c, NARROW).await?;
    let overflow = js(
        c,
        "document.documentElement.scrollWidth - window.innerWidth",
    )
    .await?;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "no sideways scrolling at 360 px: {overflow}"
    );
    shot(c, "05-keys-360px").await?;
    css(c, &format!("{legacy_row} .delete-key"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "document.getElementById('delete-dialog').open",
        "the delete dialog",
    )
    .await?;
    shot(c, "08-delete-dialog-360px").await?;
    css(c, "#cancel-delete").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('delete-dialog').open",
        "the dialog to close",
    )
    .await?;
    viewport(c, DESKTOP).await?;

    // Delete the legacy key through the dialog: it names the memo and last use, and warns.
    let before = rows(c).await?.len();
    css(c, &format!("{legacy_row} .delete-key"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "document.getElementById('delete-dialog').open",
        "the delete dialog",
    )
    .await?;
    assert_eq!(
        active_id(c).await?,
        "cancel-delete",
        "focus moves into the dialog, on Cancel"
    );
    let body = css(c, "#delete-dialog").await?.text().await?;
    assert!(body.contains("Legacy storefront"), "{body}");
    assert!(body.contains("never"), "{body}");
    assert!(body.contains("immediate and permanent"), "{body}");
    assert!(body.contains("stops working at once"), "{body}");
    shot(c, "06-delete-dialog").await?;
    // Cancel first: nothing happens, focus goes back to the × of that row.
    css(c, "#cancel-delete").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('delete-dialog').open",
        "the dialog to close",
    )
    .await?;
    assert_eq!(rows(c).await?.len(), before);
    let focused_row = js_string(
        c,
        "document.activeElement.classList.contains('delete-key') && document.activeElement.closest('tr').getAttribute('data-key-id')",
    )
    .await?;
    assert_eq!(focused_row, legacy_id, "focus is back on the row's ×");
    css(c, &format!("{legacy_row} .delete-key"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "document.getElementById('delete-dialog').open",
        "the delete dialog",
    )
    .await?;
    css(c, "#confirm-delete").await?.click().await?;
    let gone = format!("!document.querySelector('{legacy_row}')");
    wait_js(c, &gone, "the deleted row to disappear").await?;
    assert_eq!(rows(c).await?.len(), before - 1);
    c.refresh().await?;
    wait_js(
        c,
        &format!(
            "document.querySelectorAll('table#keys tbody tr[data-key-id]').length === {}",
            before - 1
        ),
        "the rows after reload",
    )
    .await?;
    assert!(
        js(c, &gone).await?.as_bool().unwrap_or(false),
        "the deletion is permanent"
    );

    // The keyboard alone: Enter on "+ Create Key", type, Enter; Escape closes the panel, clears
    // the key and gives focus back.
    js(c, "document.getElementById('create-key').focus()").await?;
    c.active_element().await?.send_keys(&Key::Enter).await?;
    wait_js(
        c,
        "document.getElementById('create-dialog').open",
        "the create dialog",
    )
    .await?;
    c.active_element()
        .await?
        .send_keys(&format!("Keyboard-made key{}", &*Key::Enter))
        .await?;
    wait_js(
        c,
        "document.getElementById('new-key-dialog').open && document.getElementById('new-key-value').textContent",
        "the new key panel",
    )
    .await?;
    c.active_element().await?.send_keys(&Key::Escape).await?;
    wait_js(
        c,
        "!document.getElementById('new-key-dialog').open",
        "Escape to close the panel",
    )
    .await?;
    assert_eq!(
        js(c, "document.getElementById('new-key-value').textContent").await?,
        json!("")
    );
    wait_js(
        c,
        "document.activeElement && document.activeElement.id === 'create-key'",
        "focus back on + Create Key",
    )
    .await?;
    let kb_id = row_id_with_memo(c, "Keyboard-made key").await?;
    let kb_row = format!("tr[data-key-id=\"{kb_id}\"]");

    // Rotate it with the default choice, "until the new key is first used": the old row says so,
    // and once an integration uses the replacement, the old key is gone.
    css(c, &format!("{kb_row} .rotate-key"))
        .await?
        .click()
        .await?;
    wait_js(
        c,
        "document.getElementById('rotate-dialog').open",
        "the rotate dialog",
    )
    .await?;
    let checked = js_string(
        c,
        "document.querySelector('#rotate-dialog input[name=grace]:checked').value",
    )
    .await?;
    assert_eq!(
        checked, "first-use",
        "the default keeps the old key until the new one is used"
    );
    css(c, "#confirm-rotate").await?.click().await?;
    let replacement = wait_js(
        c,
        "document.getElementById('new-key-dialog').open && document.getElementById('new-key-value').textContent",
        "the replacement key panel",
    )
    .await?
    .as_str()
    .unwrap_or_default()
    .to_owned();
    let note = css(c, "#rotate-note").await?.text().await?;
    assert!(note.contains("until this key is first used"), "{note}");
    css(c, "#close-new-key").await?.click().await?;
    wait_js(
        c,
        "!document.getElementById('new-key-dialog').open",
        "the panel to close",
    )
    .await?;
    let expiry_js = format!("document.querySelector('{kb_row} .key-expiry')");
    let expiry = wait_js(
        c,
        &format!("{expiry_js} && {expiry_js}.textContent"),
        "the old key's expiry",
    )
    .await?;
    assert!(
        expiry.as_str().unwrap_or_default().contains("first use"),
        "{expiry}"
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/account"))
        .bearer_auth(&replacement)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the replacement works");
    c.refresh().await?;
    wait_js(
        c,
        "document.querySelector('table#keys tbody tr[data-key-id]')",
        "the rows after reload",
    )
    .await?;
    assert!(
        js(c, &format!("!document.querySelector('{kb_row}')"))
            .await?
            .as_bool()
            .unwrap_or(false),
        "the old key is gone once its replacement was used"
    );

    // A cross-site form post with the admin's cookie is refused, and changes nothing.
    let http = reqwest::Client::new();
    let list = |http: reqwest::Client, cookie: String| async move {
        let r = http
            .get(format!("{base}/v1/keys"))
            .header("Cookie", cookie)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await?;
        let ids: Vec<String> = v["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        TestResult::Ok(ids)
    };
    let ids_before = list(http.clone(), session_cookie.clone()).await?;
    for (origin, what) in [
        (Some("https://evil.example"), "a foreign Origin"),
        (None, "no Origin"),
    ] {
        let mut req = http
            .post(format!("{base}/v1/keys"))
            .header("Cookie", session_cookie.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("memo=pwned");
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        let r = req.send().await?;
        assert_eq!(
            r.status(),
            403,
            "a cookie POST without X-Offkey-CSRF and with {what} is refused"
        );
    }
    // Even with the header, another site's Origin is refused.
    let r = http
        .post(format!("{base}/v1/keys"))
        .header("Cookie", session_cookie.clone())
        .header("Origin", "https://evil.example")
        .header("X-Offkey-CSRF", "1")
        .json(&json!({"memo": "pwned"}))
        .send()
        .await?;
    assert_eq!(r.status(), 403, "a foreign Origin is refused");
    assert_eq!(
        list(http.clone(), session_cookie.clone()).await?,
        ids_before,
        "the key list is unchanged"
    );

    // Sign out: back to /login, and the session is over.
    css(c, "#sign-out").await?.click().await?;
    wait_js(
        c,
        "location.pathname === '/login'",
        "/login after signing out",
    )
    .await?;
    let r = http
        .get(format!("{base}/v1/me"))
        .header("Cookie", session_cookie)
        .send()
        .await?;
    assert_eq!(r.status(), 401, "the session ended with sign-out");
    shot(c, "00-login").await?;
    viewport(c, NARROW).await?;
    shot(c, "09-login-360px").await?;
    Ok(())
}

async fn member_flow(c: &Client, base: &str, password: &str) -> TestResult {
    viewport(c, DESKTOP).await?;
    sign_in(c, base, "member@example.com", password).await?;
    wait_js(
        c,
        "!document.getElementById('admin-only-message').hidden",
        "the admin-only message",
    )
    .await?;
    let message = css(c, "#admin-only-message").await?.text().await?;
    assert!(
        message.contains("Only team members with admin permissions can view and manage API keys"),
        "{message}"
    );
    assert!(message.contains("Ask an admin"), "{message}");
    assert!(rows(c).await?.is_empty(), "a member sees no keys");
    assert!(!visible(c, "table#keys").await?, "no key table");
    assert!(!visible(c, "#create-key").await?, "no create button");
    // No key data was even asked for.
    let fetched = js_string(
        c,
        "performance.getEntriesByType('resource').map(function(e){return e.name;}).join(' ')",
    )
    .await?;
    assert!(fetched.contains("/v1/me"), "{fetched}");
    assert!(
        !fetched.contains("/v1/keys"),
        "a member's page never calls /v1/keys: {fetched}"
    );
    shot(c, "07-member").await?;
    Ok(())
}

/// The page files themselves: nothing the Content-Security-Policy would block (inline script,
/// inline style, handler attributes), nothing external, and no way for a key to be stored,
/// logged or injected as HTML. A quick guard that needs no browser.
#[test]
fn page_files_need_no_inline_code_and_keep_no_secrets() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/web");
    let read = |name: &str| std::fs::read_to_string(web.join(name)).expect("read a page file");
    let handler = regex::Regex::new(r"\son[a-z]+\s*=").expect("regex");
    for page in ["login.html", "api-keys.html"] {
        let html = read(page).to_ascii_lowercase();
        for tag in html.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(
                open.contains("src=\"/assets/app.js\""),
                "{page}: inline <script>"
            );
            assert!(
                tag.split('>')
                    .nth(1)
                    .is_some_and(|t| t.starts_with("</script")),
                "{page}: a <script> with a body"
            );
        }
        assert!(!html.contains("<style"), "{page}: inline <style>");
        assert!(!html.contains(" style="), "{page}: style attribute");
        assert!(!html.contains("javascript:"), "{page}: javascript: URL");
        assert!(
            !handler.is_match(&html),
            "{page}: an on…= handler attribute"
        );
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(
                !html.contains(external),
                "{page}: external reference {external}"
            );
        }
        assert!(
            html.contains("href=\"/assets/app.css\""),
            "{page}: the stylesheet"
        );
    }
    let app = read("app.js");
    for banned in [
        "localStorage",
        "sessionStorage",
        "indexedDB",
        "console.",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "history.pushState",
        "history.replaceState",
    ] {
        assert!(!app.contains(banned), "app.js uses {banned}");
    }
    assert!(
        app.contains("'X-Offkey-CSRF'"),
        "app.js sends the CSRF header"
    );
    assert!(app.contains("credentials: 'same-origin'"));
    let css = read("app.css");
    assert!(
        !css.contains("@import") && !css.contains("url("),
        "app.css loads nothing"
    );
}
