//! Replays every fuzz target's corpus (`fuzz/corpus/<target>/`) and its crash regressions
//! (`fuzz/regressions/<target>/`) on the stable toolchain through the same functions the
//! cargo-fuzz crate calls (`offkey::fuzzing`), so CI keeps them passing without nightly.

use std::path::Path;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

/// Each input gets this long (a debug build): a hang regression fails naming its file instead
/// of hanging CI.
const PER_INPUT: Duration = Duration::from_secs(10);

#[test]
fn every_fuzz_target_replays_its_corpus_and_regressions_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in offkey::fuzzing::TARGETS {
        let corpus = root.join("corpus").join(name);
        let seeds = std::fs::read_dir(&corpus).unwrap_or_else(|e| {
            panic!(
                "fuzz target {name} has no corpus at {}: {e}",
                corpus.display()
            )
        });
        let mut inputs: Vec<_> = seeds.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        assert!(!inputs.is_empty(), "fuzz target {name}: empty corpus");
        if let Ok(reg) = std::fs::read_dir(root.join("regressions").join(name)) {
            inputs.extend(reg.filter_map(|e| e.ok()).map(|e| e.path()));
        }
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).expect("read corpus input");
            let (tx, rx) = channel();
            let worker = std::thread::spawn(move || {
                let outcome = std::panic::catch_unwind(|| target(&data));
                let _ = tx.send(outcome.is_ok());
            });
            match rx.recv_timeout(PER_INPUT) {
                Ok(ok) => assert!(ok, "fuzz target {name} panicked on {}", input.display()),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "fuzz target {name} took more than {PER_INPUT:?} on {} (a hang?)",
                    input.display()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("fuzz target {name} died on {}", input.display())
                }
            }
            worker.join().expect("the replay thread ends");
            replayed += 1;
        }
    }
    let fuzz_dir = root.join("fuzz_targets");
    for (name, _) in offkey::fuzzing::TARGETS {
        assert!(
            fuzz_dir.join(format!("{name}.rs")).exists(),
            "fuzz target {name} has no fuzz/fuzz_targets/{name}.rs"
        );
    }
    assert!(replayed >= offkey::fuzzing::TARGETS.len());
}
