#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = argus::ingest::bundle::read_bundle_bytes(std::path::Path::new("x.bundle.jsonl"), data);
});
