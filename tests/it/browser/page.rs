//! Small helpers to read and drive the page through WebDriver: waiting on a condition in the
//! page, finding and clicking, the dialogs, the key rows, screenshots and the viewport.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::Value;

/// An error of a browser step (WebDriver, HTTP, or a named timeout).
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a step may take before it counts as failed.
const WAIT: Duration = Duration::from_secs(20);
/// A desktop and the narrowest phone the page must read well on, in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const NARROW: (u32, u32) = (360, 780);
/// The rows of the key table.
pub const ROWS: &str = "table#keys tbody tr[data-key-id]";

/// Poll a JavaScript expression until it is truthy, and answer its value.
pub async fn wait_js(c: &Client, expr: &str, what: &str) -> TestResult<Value> {
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
            let url = c.current_url().await.map(|u| u.to_string());
            let url = url.unwrap_or_default();
            return Err(format!("timed out waiting for {what} ({expr}) at {url}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of a JavaScript expression.
pub async fn js(c: &Client, expr: &str) -> TestResult<Value> {
    Ok(c.execute(&format!("return ({expr});"), vec![]).await?)
}

/// A JavaScript expression as a string ("" when it is not one).
pub async fn js_string(c: &Client, expr: &str) -> TestResult<String> {
    Ok(js(c, expr).await?.as_str().unwrap_or_default().to_owned())
}

/// A JavaScript expression as a boolean (false when it is not one).
pub async fn js_bool(c: &Client, expr: &str) -> TestResult<bool> {
    Ok(js(c, expr).await?.as_bool().unwrap_or(false))
}

/// The element for a CSS selector, once it exists.
pub async fn css(c: &Client, selector: &str) -> TestResult<Element> {
    let wait = c.wait().at_most(WAIT);
    Ok(wait.for_element(Locator::Css(selector)).await?)
}

/// Click the element for a CSS selector.
pub async fn click(c: &Client, selector: &str) -> TestResult {
    css(c, selector).await?.click().await?;
    Ok(())
}

/// Type into the element for a CSS selector.
pub async fn type_into(c: &Client, selector: &str, text: &str) -> TestResult {
    css(c, selector).await?.send_keys(text).await?;
    Ok(())
}

/// The rendered text of the element for a CSS selector.
pub async fn text(c: &Client, selector: &str) -> TestResult<String> {
    Ok(css(c, selector).await?.text().await?)
}

/// Whether the element for a CSS selector exists and takes up room on the page.
pub async fn visible(c: &Client, selector: &str) -> TestResult<bool> {
    let sel = serde_json::to_string(selector)?;
    js_bool(
        c,
        &format!("(function(e){{return !!e && e.getClientRects().length > 0;}})(document.querySelector({sel}))"),
    )
    .await
}

/// The id of the focused element.
pub async fn active_id(c: &Client) -> TestResult<String> {
    js_string(c, "document.activeElement && document.activeElement.id").await
}

/// Wait until the focused element matches a CSS selector.
pub async fn focus_on(c: &Client, selector: &str, what: &str) -> TestResult {
    let sel = serde_json::to_string(selector)?;
    let expr = format!("document.activeElement && document.activeElement.matches({sel})");
    wait_js(c, &expr, what).await?;
    Ok(())
}

/// Wait until the `<dialog>` with this id is open.
pub async fn dialog_opens(c: &Client, id: &str) -> TestResult {
    let expr = format!("document.getElementById('{id}').open");
    wait_js(c, &expr, &format!("#{id} to open")).await?;
    Ok(())
}

/// Wait until the `<dialog>` with this id is closed.
pub async fn dialog_closes(c: &Client, id: &str) -> TestResult {
    // The page empties the one-time key panel in the dialog's `close` event, which the browser
    // fires a task after `open` turns false: wait for that too (the callers then assert it).
    let expr = if id == "new-key-dialog" {
        format!(
            "!document.getElementById('{id}').open \
             && document.getElementById('new-key-value').textContent === ''"
        )
    } else {
        format!("!document.getElementById('{id}').open")
    };
    wait_js(c, &expr, &format!("#{id} to close")).await?;
    Ok(())
}

/// Wait for the one-time key panel and answer the key it shows.
pub async fn key_in_panel(c: &Client) -> TestResult<String> {
    let expr = "document.getElementById('new-key-dialog').open \
                && document.getElementById('new-key-value').textContent";
    let v = wait_js(c, expr, "the new key panel").await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// What the key panel holds now ("" once it was closed).
pub async fn panel_text(c: &Client) -> TestResult<String> {
    js_string(c, "document.getElementById('new-key-value').textContent").await
}

/// Wait until the table has `n` rows.
pub async fn rows_are(c: &Client, n: usize, what: &str) -> TestResult {
    let expr = format!("document.querySelectorAll('{ROWS}').length === {n}");
    wait_js(c, &expr, what).await?;
    Ok(())
}

/// The keys the page shows: (id, text of the row).
pub async fn rows(c: &Client) -> TestResult<Vec<(String, String)>> {
    let v = js(
        c,
        &format!(
            "Array.from(document.querySelectorAll('{ROWS}'))\
             .map(function(r){{return [r.getAttribute('data-key-id'), r.innerText];}})"
        ),
    )
    .await?;
    let field = |r: &Value, i: usize| r[i].as_str().unwrap_or_default().to_owned();
    let list = v.as_array().cloned().unwrap_or_default();
    Ok(list.iter().map(|r| (field(r, 0), field(r, 1))).collect())
}

/// The id of the first row whose text holds `memo`.
pub async fn row_id_with_memo(c: &Client, memo: &str) -> TestResult<String> {
    let found = rows(c).await?.into_iter().find(|(_, t)| t.contains(memo));
    found
        .map(|(id, _)| id)
        .ok_or_else(|| format!("no row with memo {memo:?}").into())
}

/// The CSS selector of a key's row.
pub fn row(id: &str) -> String {
    format!("tr[data-key-id=\"{id}\"]")
}

/// Whether the page has a row for this key.
pub async fn has_row(c: &Client, id: &str) -> TestResult<bool> {
    js_bool(c, &format!("!!document.querySelector('{}')", row(id))).await
}

/// Where screenshots go: `target/screenshots/` of this package (gitignored), or
/// `OFFKEY_SCREENSHOTS`.
pub fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("OFFKEY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

/// Save a screenshot of the window as `<name>.png`.
pub async fn shot(c: &Client, name: &str) -> TestResult {
    // Let layout settle so the picture shows the state, not a frame of a change.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let png = c.screenshot().await?;
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png)?;
    Ok(())
}

/// Make the layout viewport `w` × `h` CSS pixels (the window may have a frame around it).
pub async fn viewport(c: &Client, (w, h): (u32, u32)) -> TestResult {
    c.set_window_size(w, h).await?;
    let inner = js(c, "[window.innerWidth, window.innerHeight]").await?;
    let size = |i: usize, d: u32| {
        inner[i]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(d)
    };
    let (iw, ih) = (size(0, w), size(1, h));
    if iw != w || ih != h {
        c.set_window_size(w + iw.abs_diff(w), h + ih.abs_diff(h))
            .await?;
    }
    Ok(())
}

/// Sign in on /login and wait for the keys page.
pub async fn sign_in(c: &Client, base: &str, email: &str, password: &str) -> TestResult {
    c.goto(&format!("{base}/login")).await?;
    type_into(c, "#login-email", email).await?;
    type_into(c, "#login-password", password).await?;
    click(c, "#login-submit").await?;
    let expr = "location.pathname === '/settings/api-keys' && document.readyState === 'complete'";
    wait_js(c, expr, "the keys page after sign-in").await?;
    Ok(())
}
