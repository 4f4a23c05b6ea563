//! The Settings → API Keys page in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) with fantoccini, through haproxy against three `offkey serve`
//! replicas on one PostgreSQL (`OFFKEY_TEST_DATABASE_URL`), as in production.
//!
//! One flow, as a person would use the page: sign in (a wrong password first), find the legacy
//! key with no recorded creator, create a key and see it once, reload and see only its last 4,
//! rotate with a grace period, delete a key through the dialog, do it all by keyboard, sign out;
//! a member sees the admin-only message and no key data; a cross-site form post with the admin's
//! cookie is refused. Screenshots of the main states go to `target/screenshots/` (gitignored).
//!
//! When chromium or chromedriver is missing the test installs them with apt-get (CI runs as root).

mod driver;
mod page;

use std::path::Path;

use fantoccini::Client;
use fantoccini::key::Key;
use rand::Rng;
use serde_json::{Value, json};

use crate::common;
use driver::{Driver, ensure_browser, no_console_errors};
use page::{
    DESKTOP, NARROW, ROWS, TestResult, active_id, click, css, dialog_closes, dialog_opens,
    focus_on, has_row, js, js_bool, js_string, key_in_panel, panel_text, row, row_id_with_memo,
    rows, rows_are, screenshot_dir, shot, sign_in, text, type_into, viewport, visible, wait_js,
};

fn is_current_key(s: &str) -> bool {
    s.strip_prefix("oc_live_")
        .is_some_and(|rest| rest.len() == 38 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_page_in_a_real_browser() {
    ensure_browser();
    // The one browser run goes through haproxy to three replicas on one PostgreSQL: the page's
    // requests land on all of them (sessions, CSRF, the limiter and the keys are shared).
    // (On threads of their own: the synchronous clients they use cannot run inside this test's
    // runtime.)
    let db = std::thread::spawn(crate::postgres::fresh_url)
        .join()
        .expect("a fresh schema");
    let admin_pw = random_hex(24);
    let member_pw = random_hex(24);
    let scratch = tempfile::tempdir().expect("temp dir");
    for (email, role, pw) in [
        ("admin@example.com", "admin", &admin_pw),
        ("member@example.com", "member", &member_pw),
    ] {
        common::offkey(scratch.path())
            .args(["members", "add", "--email", email, "--name", "Test Person"])
            .args(["--role", role])
            .args(["--password-stdin", "--database", &db])
            .env_remove("OFFKEY_DATABASE_URL")
            .write_stdin(format!("{pw}\n"))
            .assert()
            .success();
    }

    // A legacy key, made up here: 32 lowercase hex, created long ago, no recorded creator.
    let legacy = random_hex(32);
    let line =
        json!({"key": legacy, "memo": "Legacy storefront", "created_at": "2024-01-15T10:00:00Z"});
    common::offkey(scratch.path())
        .args(["keys", "import-legacy", "--database", &db])
        .env_remove("OFFKEY_DATABASE_URL")
        .write_stdin(format!("{line}\n"))
        .assert()
        .success();

    let server = {
        let db = db.clone();
        std::thread::spawn(move || crate::postgres::Balanced::start(&db))
            .join()
            .expect("replicas and balancer")
    };
    report_exposure(&server.url, &admin_pw, &legacy).await;
    let driver = Driver::start();
    let admin_profile = tempfile::tempdir().expect("temp dir");
    let member_profile = tempfile::tempdir().expect("temp dir");

    let c = driver.session(admin_profile.path()).await;
    let flow = {
        let (c, url, driver) = (c.clone(), server.url.clone(), driver.url.clone());
        let (pw, legacy) = (admin_pw.clone(), legacy.clone());
        tokio::spawn(async move {
            admin_flow(&c, &url, &pw, &legacy).await?;
            no_console_errors(&c, &driver).await
        })
    };
    finish(&c, "admin", flow.await, &server).await;

    let c = driver.session(member_profile.path()).await;
    let flow = {
        let (c, url, driver) = (c.clone(), server.url.clone(), driver.url.clone());
        let pw = member_pw.clone();
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
    server: &crate::postgres::Balanced,
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

/// Everything an admin does, in order; each step leaves the page where the next one starts.
async fn admin_flow(c: &Client, base: &str, password: &str, legacy: &str) -> TestResult {
    viewport(c, DESKTOP).await?;
    let cookie = sign_in_after_a_wrong_password(c, base, password).await?;
    let legacy_id = legacy_key_row(c, legacy).await?;
    let (key, key_id) = create_a_key_and_see_it_once(c).await?;
    used_key_after_reload(c, base, &key, &key_id).await?;
    rotate_keeping_the_old_key_an_hour(c, &key, &key_id).await?;
    shot(c, "02-keys-desktop").await?;
    narrow_screen(c, &legacy_id).await?;
    delete_through_the_dialog(c, &legacy_id).await?;
    by_keyboard_create_then_rotate_until_first_use(c, base).await?;
    cross_site_post_is_refused(base, &cookie).await?;
    sign_out(c, base, &cookie).await?;
    Ok(())
}

/// The keys page without a session leads to /login; a wrong password shows an inline error; the
/// right one leads to the keys. Answers the session cookie (as a `Cookie` header value).
async fn sign_in_after_a_wrong_password(
    c: &Client,
    base: &str,
    password: &str,
) -> TestResult<String> {
    c.goto(&format!("{base}/settings/api-keys")).await?;
    wait_js(
        c,
        "location.pathname === '/login'",
        "the redirect to /login",
    )
    .await?;

    type_into(c, "#login-email", "admin@example.com").await?;
    type_into(c, "#login-password", "not-the-password").await?;
    click(c, "#login-submit").await?;
    wait_js(
        c,
        "!document.getElementById('login-error').hidden",
        "the sign-in error",
    )
    .await?;
    let error = text(c, "#login-error").await?;
    assert!(error.contains("Wrong email or password"), "{error}");
    assert_eq!(c.current_url().await?.path(), "/login");
    shot(c, "01-login-error").await?;

    css(c, "#login-password").await?.clear().await?;
    type_into(c, "#login-password", password).await?;
    click(c, "#login-submit").await?;
    wait_js(
        c,
        "location.pathname === '/settings/api-keys'",
        "the keys page",
    )
    .await?;
    rows_are(c, 1, "the legacy key's row").await?;

    // The session cookie is HttpOnly and SameSite=Strict, out of reach of the page's script.
    let cookie = c.get_named_cookie("offkey_session").await?;
    assert_eq!(cookie.http_only(), Some(true), "session cookie is HttpOnly");
    let same_site = format!("{:?}", cookie.same_site());
    assert_eq!(
        same_site, "Some(Strict)",
        "session cookie is SameSite=Strict"
    );
    assert_eq!(
        js(c, "document.cookie").await?,
        json!(""),
        "no script-readable cookie"
    );
    Ok(format!("offkey_session={}", cookie.value()))
}

/// The legacy key's row: blank Created By with the reason on hover, never used, rotation due, and
/// the exposure the scanner reported. Answers its id.
async fn legacy_key_row(c: &Client, legacy: &str) -> TestResult<String> {
    let id = row_id_with_memo(c, "Legacy storefront").await?;
    let by = css(c, &format!("{} .created-by", row(&id))).await?;
    assert_eq!(
        by.text().await?.trim(),
        "",
        "no creator recorded for a legacy key"
    );
    let title = by.attr("title").await?.unwrap_or_default();
    assert!(title.contains("before this page existed"), "{title}");
    let t = text(c, &row(&id)).await?;
    for expected in [
        &format!("…{}", &legacy[28..]),
        "Never",
        "Candidate for removal",
        "Rotation due",
        "Exposed",
        "deploy/env.sh:3 @ 9c1e2f0",
        "3 hours ago",
    ] {
        assert!(t.contains(expected), "legacy row lacks {expected:?}: {t}");
    }
    assert!(
        !c.source().await?.contains(legacy),
        "the legacy key is not in the page"
    );
    Ok(id)
}

/// "+ Create Key": focus moves into the dialog, a memo is required, the key is shown once with a
/// Copy button and the advice; closing the panel removes it and gives focus back. Answers the
/// key and its id.
async fn create_a_key_and_see_it_once(c: &Client) -> TestResult<(String, String)> {
    click(c, "#create-key").await?;
    dialog_opens(c, "create-dialog").await?;
    assert_eq!(active_id(c).await?, "memo", "focus moves into the dialog");
    let placeholder = css(c, "#memo").await?.attr("placeholder").await?;
    let placeholder = placeholder.unwrap_or_default();
    assert!(
        placeholder.contains("Fulfillment integration"),
        "{placeholder}"
    );
    click(c, "#create-submit").await?;
    wait_js(
        c,
        "!document.getElementById('memo-error').hidden",
        "memo required",
    )
    .await?;
    assert!(js_bool(c, "document.getElementById('create-dialog').open").await?);
    type_into(c, "#memo", "Fulfillment integration").await?;
    click(c, "#create-submit").await?;

    let key = key_in_panel(c).await?;
    assert!(
        is_current_key(&key),
        "a current-format key is shown ({} chars)",
        key.len()
    );
    assert!(visible(c, "#copy-key").await?, "a Copy button");
    assert_eq!(
        active_id(c).await?,
        "copy-key",
        "focus moves into the key panel"
    );
    let advice = text(c, "#new-key-advice").await?;
    for expected in [
        "directly into the tool",
        "shared document, an email or a chat",
        "last characters",
    ] {
        assert!(
            advice.contains(expected),
            "advice lacks {expected:?}: {advice}"
        );
    }
    click(c, "#copy-key").await?;
    wait_js(
        c,
        "document.getElementById('copy-status').textContent",
        "copy feedback",
    )
    .await?;
    // The key is nowhere but in its panel: not in the URL, not in web storage.
    assert!(!c.current_url().await?.as_str().contains(&key));
    let storage =
        "JSON.stringify([Object.assign({}, localStorage), Object.assign({}, sessionStorage)])";
    assert_eq!(
        js_string(c, storage).await?,
        "[{},{}]",
        "web storage stays empty"
    );
    // The picture of the panel blurs the key (a throwaway store's key, but still).
    let blur = |on: bool| {
        let filter = if on { "blur(6px)" } else { "" };
        format!("document.getElementById('new-key-value').style.filter = '{filter}'")
    };
    js(c, &blur(true)).await?;
    shot(c, "03-new-key-panel").await?;
    js(c, &blur(false)).await?;

    click(c, "#close-new-key").await?;
    dialog_closes(c, "new-key-dialog").await?;
    assert_eq!(panel_text(c).await?, "", "closing the panel empties it");
    assert!(!c.source().await?.contains(&key), "the key left the page");
    focus_on(c, "#create-key", "focus back on + Create Key").await?;
    rows_are(c, 2, "the new row").await?;
    let id = row_id_with_memo(c, "Fulfillment integration").await?;
    let t = text(c, &row(&id)).await?;
    assert!(t.contains(&format!("…{}", &key[key.len() - 4..])), "{t}");
    assert!(t.contains("by Test Person"), "{t}");
    assert!(
        !t.contains("Candidate for removal"),
        "a key created a minute ago is not yet a candidate for removal: {t}"
    );
    let label = css(c, &format!("{} .delete-key", row(&id)))
        .await?
        .attr("aria-label")
        .await?;
    assert_eq!(label.as_deref(), Some("Delete key Fulfillment integration"));
    Ok((key, id))
}

/// An integration uses the key; after a reload its row shows only `…last4`, says when it was
/// used (exact time on hover), and it is no longer a candidate for removal.
async fn used_key_after_reload(c: &Client, base: &str, key: &str, id: &str) -> TestResult {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/account"))
        .bearer_auth(key)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the new key works");

    c.refresh().await?;
    rows_are(c, 2, "the rows after reload").await?;
    let source = c.source().await?;
    assert!(
        !source.contains(key),
        "after reload the key is not in the page"
    );
    assert!(source.contains(&format!("…{}", &key[key.len() - 4..])));
    assert_eq!(panel_text(c).await?, "");
    assert!(!js_bool(c, "document.getElementById('new-key-dialog').open").await?);

    let used = css(c, &format!("{} .cell-used time", row(id))).await?;
    let when = used.text().await?;
    assert!(when.contains("now") || when.contains("minute"), "{when}");
    let exact = used.attr("title").await?.unwrap_or_default();
    assert!(!exact.is_empty(), "the exact time on hover");
    let t = text(c, &row(id)).await?;
    assert!(!t.contains("Candidate for removal"), "a used key: {t}");
    Ok(())
}

/// Rotate, keeping the old key for 1 hour: a replacement shown once, focus back on the old
/// row's Rotate, and the old row shows its expiry, also after a reload.
async fn rotate_keeping_the_old_key_an_hour(c: &Client, key: &str, id: &str) -> TestResult {
    click(c, &format!("{} .rotate-key", row(id))).await?;
    dialog_opens(c, "rotate-dialog").await?;
    click(c, "#rotate-dialog input[name=grace][value='3600']").await?;
    shot(c, "04-rotate-dialog").await?;
    click(c, "#confirm-rotate").await?;
    let replacement = key_in_panel(c).await?;
    assert!(is_current_key(&replacement) && replacement != key);
    click(c, "#close-new-key").await?;
    dialog_closes(c, "new-key-dialog").await?;
    rows_are(c, 3, "the replacement's row").await?;
    let rotate = format!("{} .rotate-key", row(id));
    focus_on(c, &rotate, "focus back on the old key's Rotate").await?;
    let expiry = text(c, &format!("{} .key-expiry", row(id))).await?;
    assert!(
        expiry.contains("expires in"),
        "the old row shows its expiry: {expiry}"
    );

    c.refresh().await?;
    rows_are(c, 3, "the rows after reload").await?;
    let expiry = text(c, &format!("{} .key-expiry", row(id))).await?;
    assert!(
        expiry.contains("expires in"),
        "the expiry survives a reload: {expiry}"
    );
    assert!(!c.source().await?.contains(&replacement));
    Ok(())
}

/// At 360 px: cards, no sideways scrolling, dialogs fit.
async fn narrow_screen(c: &Client, legacy_id: &str) -> TestResult {
    viewport(c, NARROW).await?;
    let overflow = js(
        c,
        "document.documentElement.scrollWidth - window.innerWidth",
    )
    .await?;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "sideways scrolling at 360 px: {overflow}"
    );
    shot(c, "05-keys-360px").await?;
    click(c, &format!("{} .delete-key", row(legacy_id))).await?;
    dialog_opens(c, "delete-dialog").await?;
    shot(c, "08-delete-dialog-360px").await?;
    click(c, "#cancel-delete").await?;
    dialog_closes(c, "delete-dialog").await?;
    viewport(c, DESKTOP).await?;
    Ok(())
}

/// ×: the dialog names the memo and last use and warns; Cancel changes nothing and gives focus
/// back to the ×; Confirm deletes, the row disappears, for good.
async fn delete_through_the_dialog(c: &Client, id: &str) -> TestResult {
    let before = rows(c).await?.len();
    let delete = format!("{} .delete-key", row(id));
    click(c, &delete).await?;
    dialog_opens(c, "delete-dialog").await?;
    assert_eq!(
        active_id(c).await?,
        "cancel-delete",
        "focus moves into the dialog, on Cancel"
    );
    let body = text(c, "#delete-dialog").await?;
    for expected in [
        "Legacy storefront",
        "never",
        "immediate and permanent",
        "stops working at once",
    ] {
        assert!(
            body.contains(expected),
            "the dialog lacks {expected:?}: {body}"
        );
    }
    shot(c, "06-delete-dialog").await?;

    click(c, "#cancel-delete").await?;
    dialog_closes(c, "delete-dialog").await?;
    assert_eq!(rows(c).await?.len(), before);
    focus_on(c, &delete, "focus back on the row's ×").await?;

    click(c, &delete).await?;
    dialog_opens(c, "delete-dialog").await?;
    click(c, "#confirm-delete").await?;
    let gone = format!("!document.querySelector('{}')", row(id));
    wait_js(c, &gone, "the deleted row to disappear").await?;
    assert_eq!(rows(c).await?.len(), before - 1);
    c.refresh().await?;
    rows_are(c, before - 1, "the rows after reload").await?;
    assert!(!has_row(c, id).await?, "the deletion is permanent");
    Ok(())
}

/// The keyboard alone: Enter on "+ Create Key", type, Enter; Escape closes the panel, empties it
/// and gives focus back. Then rotate that key with the default choice, "until the new key is
/// first used": once an integration uses the replacement, the old key is gone.
async fn by_keyboard_create_then_rotate_until_first_use(c: &Client, base: &str) -> TestResult {
    js(c, "document.getElementById('create-key').focus()").await?;
    c.active_element().await?.send_keys(&Key::Enter).await?;
    dialog_opens(c, "create-dialog").await?;
    let typed = format!("Keyboard-made key{}", &*Key::Enter);
    c.active_element().await?.send_keys(&typed).await?;
    key_in_panel(c).await?;
    c.active_element().await?.send_keys(&Key::Escape).await?;
    dialog_closes(c, "new-key-dialog").await?;
    assert_eq!(panel_text(c).await?, "", "Escape empties the panel too");
    focus_on(c, "#create-key", "focus back on + Create Key").await?;
    let id = row_id_with_memo(c, "Keyboard-made key").await?;

    click(c, &format!("{} .rotate-key", row(id.as_str()))).await?;
    dialog_opens(c, "rotate-dialog").await?;
    let checked = "document.querySelector('#rotate-dialog input[name=grace]:checked').value";
    assert_eq!(
        js_string(c, checked).await?,
        "first-use",
        "the default choice"
    );
    click(c, "#confirm-rotate").await?;
    let replacement = key_in_panel(c).await?;
    let note = text(c, "#rotate-note").await?;
    assert!(note.contains("until this key is first used"), "{note}");
    click(c, "#close-new-key").await?;
    dialog_closes(c, "new-key-dialog").await?;
    let expiry = format!("document.querySelector('{} .key-expiry')", row(&id));
    let expiry = wait_js(
        c,
        &format!("{expiry} && {expiry}.textContent"),
        "the expiry",
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
        &format!("document.querySelector('{ROWS}')"),
        "the rows after reload",
    )
    .await?;
    assert!(
        !has_row(c, &id).await?,
        "the old key is gone once its replacement was used"
    );
    Ok(())
}

/// A cross-site form post carrying the admin's cookie is refused (no `X-Offkey-CSRF`, with or
/// without a foreign `Origin`; and a foreign `Origin` even with the header), and the key list
/// stays as it was.
async fn cross_site_post_is_refused(base: &str, cookie: &str) -> TestResult {
    let http = reqwest::Client::new();
    let ids = || async {
        let r = http
            .get(format!("{base}/v1/keys"))
            .header("Cookie", cookie)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await?;
        let keys = v["keys"].as_array().cloned().unwrap_or_default();
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| k["id"].as_str().map(str::to_owned))
            .collect();
        TestResult::Ok(ids)
    };
    let before = ids().await?;
    for (origin, csrf) in [
        (Some("https://evil.example"), false),
        (None, false),
        (Some("https://evil.example"), true),
    ] {
        let mut req = http
            .post(format!("{base}/v1/keys"))
            .header("Cookie", cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("memo=pwned");
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        if csrf {
            req = req.header("X-Offkey-CSRF", "1");
        }
        let status = req.send().await?.status();
        assert_eq!(
            status, 403,
            "cookie POST, Origin {origin:?}, CSRF header {csrf}: refused"
        );
    }
    assert_eq!(ids().await?, before, "the key list is unchanged");
    Ok(())
}

/// Sign out: back to /login, and the session is over.
async fn sign_out(c: &Client, base: &str, cookie: &str) -> TestResult {
    click(c, "#sign-out").await?;
    wait_js(
        c,
        "location.pathname === '/login'",
        "/login after signing out",
    )
    .await?;
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .header("Cookie", cookie)
        .send()
        .await?;
    assert_eq!(r.status(), 401, "the session ended with sign-out");
    shot(c, "00-login").await?;
    viewport(c, NARROW).await?;
    shot(c, "09-login-360px").await?;
    Ok(())
}

/// A member: the admin-only message, no key table, no create button, and no key data asked for.
async fn member_flow(c: &Client, base: &str, password: &str) -> TestResult {
    viewport(c, DESKTOP).await?;
    sign_in(c, base, "member@example.com", password).await?;
    let shown = "!document.getElementById('admin-only-message').hidden";
    wait_js(c, shown, "the admin-only message").await?;
    let message = text(c, "#admin-only-message").await?;
    let only = "Only team members with admin permissions can view and manage API keys";
    assert!(message.contains(only), "{message}");
    assert!(message.contains("Ask an admin"), "{message}");
    assert!(rows(c).await?.is_empty(), "a member sees no keys");
    assert!(!visible(c, "table#keys").await?, "no key table");
    assert!(!visible(c, "#create-key").await?, "no create button");
    let fetched =
        "performance.getEntriesByType('resource').map(function(e){return e.name;}).join(' ')";
    let fetched = js_string(c, fetched).await?;
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
