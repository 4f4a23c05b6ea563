//! `offkey serve` on a network, over real sockets: HTTPS served by offkey itself (rustls, a
//! certificate made with rcgen), refusing plain HTTP on a non-loopback address, closing a client
//! that sends half its headers, the data directory's permissions whatever the umask, a burst of
//! 200 parallel sign-ins (bounded memory), and nginx as the reverse proxy of
//! `examples/nginx.conf` with the limiter seeing the client's address through it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::{add_member, offkey_bin};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "admin@example.com";

/// A running `offkey serve` with extra arguments.
struct Serve {
    child: Child,
    /// `host:port` it listens on.
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(data: &Path, args: &[&str]) -> Serve {
        Self::start_with(Command::new(offkey_bin()), data, args)
    }

    fn start_with(mut cmd: Command, data: &Path, args: &[&str]) -> Serve {
        let mut child = cmd
            .arg("serve")
            .args(args)
            .arg("--data")
            .arg(data)
            .env_remove("OFFKEY_DATA")
            .env("OFFKEY_LOG", "info")
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
        let Ok(url) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("offkey serve did not start: {}", log.lock().expect("log"));
        };
        let addr = url
            .split_once("://")
            .map(|(_, a)| a)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("address in {url:?}"));
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_login(email: &str, password: &str) -> String {
    serde_json::json!({"email": email, "password": password}).to_string()
}

/// A self-signed certificate and key for `names`, written as PEM files into `dir`.
fn certificate(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, reqwest::Certificate) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let ck = rcgen::generate_simple_self_signed(names).expect("certificate");
    let cert_pem = ck.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    let trusted = reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem");
    (cert, key, trusted)
}

#[test]
fn https_is_served_by_offkey_itself() {
    let data = tempfile::tempdir().expect("temp dir");
    let certs = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), ADMIN, "admin", PASSWORD);
    let (cert, key, trusted) = certificate(certs.path(), &["localhost"]);
    let cert = cert.to_str().expect("utf-8");
    let key = key.to_str().expect("utf-8");
    let server = Serve::start(
        data.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--public-url",
            "https://localhost",
        ],
    );
    assert!(
        server.log().contains("listening on https://"),
        "{}",
        server.log()
    );
    let port = server.addr.port();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(trusted)
        .resolve("localhost", server.addr)
        .build()
        .expect("client");
    // Host is localhost:PORT, not the public URL's localhost(:443): refused, but over TLS.
    let res = client
        .get(format!("https://localhost:{port}/v1/me"))
        .send()
        .expect("https");
    assert_eq!(res.status().as_u16(), 421);
    let res = client
        .post(format!("https://localhost:{port}/v1/session"))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(json_login(ADMIN, PASSWORD))
        .send()
        .expect("https");
    assert_eq!(res.status().as_u16(), 200);
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("__Host-offkey_session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    let token = res.json::<serde_json::Value>().expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send();
    assert!(plain.is_err(), "{plain:?}");
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::blocking::Client::builder()
        .resolve("localhost", server.addr)
        .build()
        .expect("client")
        .get(format!("https://localhost:{port}/healthz"))
        .send();
    assert!(untrusting.is_err(), "{untrusting:?}");
    let log = server.log();
    assert!(
        !log.contains(&token),
        "the session token leaked into the log"
    );
}

#[test]
fn bad_tls_files_are_named_and_nothing_starts() {
    let data = tempfile::tempdir().expect("temp dir");
    let certs = tempfile::tempdir().expect("temp dir");
    let missing = certs.path().join("missing.pem");
    let not_pem = certs.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    for (cert, key) in [(&missing, &not_pem), (&not_pem, &not_pem)] {
        let out = Command::new(offkey_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--data")
            .arg(data.path().join("store"))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&cert.display().to_string()), "{err}");
        assert!(!data.path().join("store").exists(), "nothing created");
    }
}

#[test]
fn plain_http_on_a_network_address_needs_tls_or_insisting() {
    let data = tempfile::tempdir().expect("temp dir");
    let store = data.path().join("store");
    let out = Command::new(offkey_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(&store)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needed in [
        "--tls-cert",
        "--public-url https://",
        "--insecure-http",
        "0.0.0.0",
    ] {
        assert!(err.contains(needed), "{needed} in {err}");
    }
    assert!(!store.exists(), "a refused start creates no store");
    // An http public URL is no excuse.
    let out = Command::new(offkey_bin())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--public-url",
            "http://keys.example.com",
            "--data",
        ])
        .arg(&store)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // Each way out starts.
    for args in [
        &["--listen", "0.0.0.0:0", "--insecure-http"][..],
        &[
            "--listen",
            "0.0.0.0:0",
            "--public-url",
            "https://keys.example.com",
        ][..],
        &["--listen", "127.0.0.1:0"][..],
    ] {
        let server = Serve::start(&store, args);
        assert!(server.log().contains("listening on http://"), "{args:?}");
    }
}

/// Read until the server closes the connection (or `limit` passes): answers how long it took,
/// or `None` if it was still open.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn a_client_that_stops_halfway_through_its_headers_is_closed() {
    let data = tempfile::tempdir().expect("temp dir");
    // A short header timeout keeps the test quick; the default is 10 s.
    let server = Serve::start(
        data.path(),
        &["--listen", "127.0.0.1:0", "--header-timeout", "1"],
    );
    let mut half = TcpStream::connect(server.addr).expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .expect("write");
    assert!(
        closed_within(&mut half, Duration::from_secs(30)).is_some(),
        "half headers: still open after 30 s"
    );
    // Ten bytes, then nothing.
    let mut tiny = TcpStream::connect(server.addr).expect("connect");
    tiny.write_all(b"GET / HTTP").expect("write");
    assert!(closed_within(&mut tiny, Duration::from_secs(30)).is_some());
    // Connected and silent.
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(30)).is_some());
    // Idle after an answer (keep-alive).
    let mut idle = TcpStream::connect(server.addr).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    assert!(closed_within(&mut idle, Duration::from_secs(30)).is_some());
    // A whole request is still answered.
    let res = reqwest::blocking::get(format!("http://{}/healthz", server.addr)).expect("get");
    assert_eq!(res.status().as_u16(), 200);
}

#[test]
fn a_body_that_stops_coming_is_answered_408() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Serve::start(
        data.path(),
        &["--listen", "127.0.0.1:0", "--body-timeout", "1"],
    );
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(
        b"POST /v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":",
    )
    .expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[test]
fn a_silent_tls_client_is_closed_too() {
    let data = tempfile::tempdir().expect("temp dir");
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, key, _) = certificate(certs.path(), &["localhost"]);
    let server = Serve::start(
        data.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "1",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(30)).is_some());
    // Half a ClientHello.
    let mut half = TcpStream::connect(server.addr).expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("write");
    assert!(closed_within(&mut half, Duration::from_secs(30)).is_some());
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("a").join("data");
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    // `members add` creates the store, `serve` keeps it open with its -wal and -shm.
    let mut add = Command::new("sh");
    add.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(offkey_bin())
        .args([
            "members",
            "add",
            "--email",
            ADMIN,
            "--name",
            "Admin",
            "--role",
            "admin",
            "--password-stdin",
            "--data",
        ])
        .arg(&data)
        .env_remove("OFFKEY_DATA")
        .stdin(Stdio::piped());
    let mut child = add.spawn().expect("members add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    assert!(child.wait().expect("wait").success());
    let mut serve = Command::new("sh");
    serve
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(offkey_bin());
    let server = Serve::start_with(serve, &data, &["--listen", "127.0.0.1:0"]);
    let res = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/session", server.addr))
        .header("content-type", "application/json")
        .body(json_login(ADMIN, PASSWORD))
        .send()
        .expect("sign in");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in ["keys.db", "keys.db-wal", "keys.db-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    drop(server);
    // A store made before this fix (world-readable) is tightened when opened.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(data.join("keys.db"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let server = Serve::start(&data, &["--listen", "127.0.0.1:0"]);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("keys.db")), 0o600);
    drop(server);
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[cfg(target_os = "linux")]
#[test]
fn a_burst_of_200_parallel_sign_ins_stays_bounded() {
    let data = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), ADMIN, "admin", PASSWORD);
    // Each request claims another client address through the trusted proxy (this test), so
    // the per-address limits do not stop them before the password checks do.
    let server = Serve::start(
        data.path(),
        &["--listen", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1/32"],
    );
    let url = format!("http://{}/v1/session", server.addr);
    let before = peak_rss_kib(server.pid());
    let barrier = Arc::new(std::sync::Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let url = url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                barrier.wait();
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(
                        "x-forwarded-for",
                        format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    )
                    .body(json_login(ADMIN, &format!("guess number {i}")))
                    .send()
                    .map(|r| {
                        let retry = r.headers().contains_key("retry-after");
                        (r.status().as_u16(), retry)
                    })
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for t in threads {
        let (status, retry) = t.join().expect("thread").expect("an answer");
        if status == 429 || status == 503 {
            assert!(retry, "{status} without Retry-After");
        }
        *counts.entry(status).or_insert(0) += 1;
    }
    let peak = peak_rss_kib(server.pid());
    eprintln!("200 parallel sign-ins: {counts:?}; peak RSS {before} KiB before, {peak} KiB after");
    assert!(
        counts.keys().all(|s| [401, 429, 503].contains(s)),
        "{counts:?}"
    );
    assert!(
        counts.get(&429).copied().unwrap_or(0) + counts.get(&503).copied().unwrap_or(0) > 0,
        "some refused: {counts:?}"
    );
    assert!(counts.get(&401).copied().unwrap_or(0) <= 100, "{counts:?}");
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
    let health = reqwest::blocking::get(format!("http://{}/healthz", server.addr)).expect("up");
    assert_eq!(health.status().as_u16(), 200);
}

/// `examples/nginx.conf` with the test's port, certificate and upstream in place of the
/// example's; each replaced piece must be there, so the example cannot drift from the test.
fn nginx_site(example: &str, listen: u16, cert: &Path, key: &Path, upstream: SocketAddr) -> String {
    let mut site = example.to_owned();
    for (from, to) in [
        ("listen 443 ssl;", format!("listen 127.0.0.1:{listen} ssl;")),
        ("/etc/ssl/offkey/fullchain.pem", cert.display().to_string()),
        ("/etc/ssl/offkey/privkey.pem", key.display().to_string()),
        ("http://127.0.0.1:8787", format!("http://{upstream}")),
    ] {
        assert!(site.contains(from), "examples/nginx.conf has no {from:?}");
        site = site.replace(from, &to);
    }
    site
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nginx_in_front_the_limiter_sees_the_forwarded_client() {
    let nginx_bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect(
            "nginx is not installed: run scripts/test.sh (as root it installs it), or apt-get install nginx",
        );
    let data = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), ADMIN, "admin", PASSWORD);
    let server = Serve::start(
        data.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--trusted-proxy",
            "127.0.0.1/32",
            "--public-url",
            "https://keys.example.com",
        ],
    );
    let prefix = tempfile::tempdir().expect("temp dir");
    let (cert, key, trusted) = certificate(prefix.path(), &["keys.example.com"]);
    let port = free_port();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx.conf"))
            .expect("examples/nginx.conf");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&example),
        "README.md must show examples/nginx.conf as it is"
    );
    let site = nginx_site(&example, port, &cert, &key, server.addr);
    std::fs::write(prefix.path().join("offkey.conf"), site).expect("site");
    let p = prefix.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log info;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         include {p}/offkey.conf;\n}}\n"
    );
    let conf_path = prefix.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("conf");
    let nginx = Nginx(
        Command::new(&nginx_bin)
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx"),
    );
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let start = Instant::now();
    while TcpStream::connect(front).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nginx did not start: {}",
            std::fs::read_to_string(prefix.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Clients on two loopback addresses: 127.0.0.2 guesses, 127.0.0.3 is the admin.
    let client_from = |ip: &str| {
        reqwest::blocking::Client::builder()
            .add_root_certificate(trusted.clone())
            .resolve("keys.example.com", front)
            .local_address(ip.parse::<std::net::IpAddr>().ok())
            .build()
            .expect("client")
    };
    let session_url = format!("https://keys.example.com:{port}/v1/session");
    let attacker = client_from("127.0.0.2");
    let sign_in = |c: &reqwest::blocking::Client, password: &str| {
        c.post(&session_url)
            .header("content-type", "application/json")
            // What a client claims is ignored: nginx appends the real address after it.
            .header("x-forwarded-for", "203.0.113.50")
            .body(json_login(ADMIN, password))
            .send()
            .expect("through nginx")
    };
    for _ in 0..5 {
        assert_eq!(sign_in(&attacker, "wrong guess").status().as_u16(), 401);
    }
    let refused = sign_in(&attacker, PASSWORD);
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Through the same proxy, from another address: the admin gets in.
    let admin = client_from("127.0.0.3");
    let ok = sign_in(&admin, PASSWORD);
    assert_eq!(ok.status().as_u16(), 200);
    let token = ok.json::<serde_json::Value>().expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let audit: serde_json::Value = admin
        .get(format!(
            "https://keys.example.com:{port}/v1/audit?limit=100"
        ))
        .bearer_auth(&token)
        .send()
        .expect("audit")
        .json()
        .expect("json");
    let text = audit.to_string();
    assert!(text.contains("from 127.0.0.2"), "{text}");
    assert!(text.contains("from 127.0.0.3"), "{text}");
    assert!(!text.contains("203.0.113.50"), "{text}");
    assert!(!text.contains("from 127.0.0.1\""), "{text}");
    // Straight to offkey, with its own address as Host: not the public URL, refused.
    let direct = reqwest::blocking::get(format!("http://{}/v1/me", server.addr)).expect("direct");
    assert_eq!(direct.status().as_u16(), 421);
    drop(nginx);
}
