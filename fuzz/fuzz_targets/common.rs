// Shared by the import targets: read `data` as the file `name` with these options, and as the studio's preview of
// its head would; both may refuse it with an error, never panic.
use std::path::Path;

use argus::ingest::{ImportFlags, ImportOptions, read_bytes};

#[allow(dead_code)]
pub fn read_as(name: &str, data: &[u8], flags: ImportFlags) {
    // A map made from the input's own header may not parse (an odd column name): that is the flag's error.
    let Ok(opts) = ImportOptions::from_flags(&flags) else { return };
    let _ = read_bytes(Path::new(name), data, &opts);
    let _ = argus::ingest::preview_bytes(Path::new(name), data, &opts, 5);
}
