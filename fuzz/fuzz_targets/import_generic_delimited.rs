#![no_main]
mod common;

use argus::ingest::ImportFlags;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The map is made from the input's own header (whatever its delimiter), so the fuzzer reaches the rows:
    // content, label, id, a rationale and its verdict, and a metadata column, from the first columns in turn.
    let header = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(header);
    let delimiter = [',', '\t', ';', '|'].into_iter().max_by_key(|d| header.matches(*d).count()).unwrap_or(',');
    let columns: Vec<&str> = header.split(delimiter).map(str::trim).filter(|c| !c.is_empty()).collect();
    let ok = |c: &&str| !c.contains([',', '=']);
    let columns: Vec<&str> = columns.into_iter().filter(ok).collect();
    let targets = ["content", "label", "id", "rationale:td", "verdict:td", "meta:note"];
    let map: Vec<String> = targets.iter().zip(&columns).map(|(t, c)| format!("{t}={c}")).collect();
    let map = if map.is_empty() { "content=text".to_string() } else { map.join(",") };
    for (name, delimiter) in [("x.csv", None), ("x.tsv", None), ("x.csv", Some(delimiter.to_string()))] {
        common::read_as(
            name,
            data,
            ImportFlags {
                format: Some(argus::ingest::FileFormat::Csv),
                map: Some(map.clone()),
                labels: Some("real=real,fake=fake,nei=unlabelled,true=real,false=fake".into()),
                default_label: Some("unlabelled".into()),
                delimiter,
                ..Default::default()
            },
        );
    }
});
