//! A progress line on stderr for long scans: only when stderr is a terminal, and only once a
//! scan has run for a second, so quick scans and pipes never see it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters the scan updates and the progress line reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Files or blobs scanned.
    pub files: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
}

/// A running progress line; stops when dropped.
pub struct Progress {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Start watching `counters` (nothing shows unless stderr is a terminal).
    pub fn start(counters: Arc<Counters>) -> Self {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let done = Arc::new(AtomicBool::new(false));
        let handle = std::io::stderr().is_terminal().then(|| {
            let stop = Arc::clone(&stop);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let (lock, cv) = &*stop;
                let guard = lock.lock().expect("progress lock");
                let (guard, _) = cv
                    .wait_timeout_while(guard, Duration::from_secs(1), |s| !*s)
                    .expect("progress wait");
                if *guard {
                    return;
                }
                drop(guard);
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} scanning: {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                while !done.load(Ordering::Relaxed) {
                    let files = counters.files.load(Ordering::Relaxed);
                    let bytes = counters.bytes.load(Ordering::Relaxed);
                    bar.set_message(format!("{files} files, {} MB", bytes / 1_000_000));
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(120));
                }
                bar.finish_and_clear();
            })
        });
        Progress { stop, done, handle }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let (lock, cv) = &*self.stop;
        if let Ok(mut s) = lock.lock() {
            *s = true;
        }
        cv.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
