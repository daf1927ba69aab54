//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`) through the same
//! property checks the fuzz targets run, so a regression on any input the
//! fuzzer ever kept is caught by an ordinary test run, without fuzzing time.

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "property violated by corpus input {}", path.display());
        n += 1;
    }
    assert!(n >= 20, "corpus for {target} unexpectedly small ({n} files)");
}

#[test]
fn request_head_corpus() {
    replay("request_head", pounce::fuzzing::request_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", pounce::fuzzing::chunked);
}
