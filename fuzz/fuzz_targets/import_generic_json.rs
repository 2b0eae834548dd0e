#![no_main]
mod common;

use argus::ingest::ImportFlags;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (name, map) in [
        (
            "x.json",
            "content=claim.text,source=claim.speaker,label=label,id=claim_id,evidence=questions[*].answers[*].answer",
        ),
        ("x.jsonl", "content=text,label=verdict.rating,rationale:td=r[0],verdict:td=r[1],title=a.b[*]"),
    ] {
        common::read_as(
            name,
            data,
            ImportFlags {
                map: Some(map.into()),
                labels: Some("Supported=real,Refuted=fake,Not Enough Evidence=unlabelled".into()),
                default_label: Some("unlabelled".into()),
                ..Default::default()
            },
        );
    }
});
