#![no_main]

use argus::studies::spec::StudySpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for spec in [StudySpec::from_toml(text), StudySpec::from_json(text)].into_iter().flatten() {
        if spec.validate().is_ok() {
            // A valid study plans its first participants without panicking (pool: the listed ids, or a few).
            let pool: Vec<i64> = if spec.items.ids.is_empty() { (1..=64).collect() } else { spec.items.ids.clone() };
            for n in 1..=3 {
                let _ = argus::studies::assign::plan(&spec, &pool, n);
            }
            let _ = spec.canonical_json();
            let _ = spec.to_toml();
        }
    }
});
