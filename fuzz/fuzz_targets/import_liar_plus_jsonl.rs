#![no_main]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::read_as(
        "val2.jsonl",
        data,
        argus::ingest::ImportFlags { format: Some(argus::ingest::FileFormat::LiarPlusJsonl), ..Default::default() },
    );
    // The same bytes with a strict user label map, and with undecided labels kept unlabelled.
    common::read_as(
        "val2.jsonl",
        data,
        argus::ingest::ImportFlags {
            format: Some(argus::ingest::FileFormat::LiarPlusJsonl),
            labels: Some("true=real,false=fake,0=real,1=fake,2=fake,3=real".into()),
            default_label: Some("unlabelled".into()),
            ..Default::default()
        },
    );
});
