//! Importers and exporters on the real shared data (`../shared/data`), on malformed inputs, and round trips through
//! the store. The shared data must be present: these tests fail, never skip, without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use argus::domain::{NewItem, NewJudgement, RationaleOrigin, Stats, Verdict};
use argus::ingest::{
    self, ColumnMap, ExportFormat, FileFormat, ImportError, ImportFlags, ImportOptions, LabelMap, ParsedFile,
    read_bytes, read_file,
};
use argus::jobs::{NoProgress, Progress};
use argus::store::Store;
use serde_json::Value;

fn shared(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel);
    assert!(p.is_file(), "shared data file {} is missing", p.display());
    p
}

fn demo_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/liar2-sample.csv")
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("argus.db")).expect("open store")
}

fn read(path: &Path) -> ParsedFile {
    read_file(path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn original_label_counts(items: &[NewItem]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.original_label.clone().unwrap_or_default()).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

fn gold_counts(items: &[NewItem]) -> (usize, usize, usize) {
    let n = |v: Option<Verdict>| items.iter().filter(|i| i.gold_label == v).count();
    (n(Some(Verdict::Real)), n(Some(Verdict::Fake)), n(None))
}

fn rationale_count(items: &[NewItem]) -> usize {
    items.iter().map(|i| i.rationales.len()).sum()
}

/// Imports `paths` and checks that the store's counts grew by exactly what was parsed.
fn import_and_check(store: &mut Store, paths: &[PathBuf], opts: &ImportOptions) -> Vec<ParsedFile> {
    let parsed: Vec<ParsedFile> = paths.iter().map(|p| read_file(p, opts).unwrap_or_else(|e| panic!("{e}"))).collect();
    let before = store.stats().unwrap();
    let summaries = ingest::import_files(store, paths, opts, &NoProgress).unwrap_or_else(|e| panic!("{e}"));
    let after = store.stats().unwrap();
    assert_eq!(summaries.len(), paths.len());
    for (s, p) in summaries.iter().zip(&parsed) {
        assert_eq!(s.items, p.items.len());
        assert_eq!(s.rationales, rationale_count(&p.items));
    }
    let items: usize = parsed.iter().map(|p| p.items.len()).sum();
    let rationales: usize = parsed.iter().map(|p| rationale_count(&p.items)).sum();
    assert_eq!(after.datasets, before.datasets + paths.len() as u64);
    assert_eq!(after.items, before.items + items as u64);
    assert_eq!(after.rationales, before.rationales + rationales as u64);
    parsed
}

// -------------------------------------------------------------------------------------------------------------
// The real files

#[test]
fn liar2_csv_files_import_with_exact_counts() {
    let valid = read(&shared("liar2/valid.csv"));
    let test = read(&shared("liar2/test.csv"));
    assert_eq!(valid.items.len(), 2_297);
    assert_eq!(test.items.len(), 2_296);
    assert_eq!(test.dataset.format, "liar2-csv");
    assert_eq!(test.dataset.name, "test.csv");
    assert_eq!(test.dataset.license_note.as_deref(), Some("LIAR2 (chengxuphd/liar2), Apache-2.0; PolitiFact text"));
    assert_eq!(
        original_label_counts(&test.items),
        counts(&[("0", 303), ("1", 660), ("2", 360), ("3", 371), ("4", 343), ("5", 259)])
    );
    assert_eq!(
        original_label_counts(&valid.items),
        counts(&[("0", 303), ("1", 661), ("2", 361), ("3", 371), ("4", 343), ("5", 258)])
    );
    assert_eq!(gold_counts(&test.items), (371 + 343 + 259, 303 + 660 + 360, 0));
    assert!(valid.items.iter().all(|i| i.split.as_deref() == Some("val")));
    assert!(test.items.iter().all(|i| i.split.as_deref() == Some("test")));

    let first = &valid.items[0];
    assert_eq!(first.external_id.as_deref(), Some("419"));
    assert_eq!(first.source.as_deref(), Some("barack obama"));
    assert_eq!(first.published.as_deref(), Some("April 16, 2008"));
    assert_eq!(first.metadata["label_name"], "mostly-true");
    assert_eq!(first.metadata["true_counts"], 124);
    assert_eq!(first.metadata["subjects"], serde_json::json!(["energy"]));
    // Nothing was stripped from this justification, so it is not stored twice.
    assert!(!first.metadata.contains_key("justification_original"));
    let r = &first.rationales[0];
    assert_eq!(
        (r.perspective.as_str(), r.origin, r.model.as_deref(), r.verdict),
        ("human", RationaleOrigin::Imported, None, None)
    );
    assert!(r.text.starts_with("It's worth noting, however"), "{}", r.text);
    // LIAR2 already blanked the verdict of this sentence ("we find his statement ."): no verdict word, so it stays.
    assert!(r.text.ends_with("For these reasons, we find his statement ."), "{}", r.text);

    // The verdict sentences are gone from the rationales.
    for items in [&valid.items, &test.items] {
        for r in items.iter().flat_map(|i| &i.rationales) {
            let lower = format!(" {} ", r.text.to_lowercase());
            for word in [" true ", " true.", " false ", " false.", "pants on fire", "mostly true", "half-true"] {
                assert!(!lower.contains(word), "'{word}' left in: {}", r.text);
            }
        }
    }
    // LIAR2's published justifications already have every verdict word deleted in place ("We rate it ."): no
    // sentence contains one, so stripping changes none of them (it stays as a guard for other LIAR2 files) and
    // every row keeps a rationale.
    let (valid_r, test_r) = (rationale_count(&valid.items), rationale_count(&test.items));
    assert_eq!((valid_r, test_r), (2_297, 2_296));
    // An unmodified justification is kept in metadata only when stripping removed something.
    let shortened =
        |items: &[NewItem]| items.iter().filter(|i| i.metadata.contains_key("justification_original")).count();
    let (valid_s, test_s) = (shortened(&valid.items), shortened(&test.items));
    assert_eq!((valid_s, test_s), (0, 0));

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    import_and_check(&mut store, &[shared("liar2/valid.csv"), shared("liar2/test.csv")], &ImportOptions::default());
    let stats = store.stats().unwrap();
    assert_eq!((stats.datasets, stats.items), (2, 4_593));
    assert_eq!(stats.rationales, (valid_r + test_r) as u64);
}

#[test]
fn liar_plus_tsv_files_import_with_exact_counts() {
    let val = read(&shared("liar-plus/val2.tsv"));
    let test = read(&shared("liar-plus/test2.tsv"));
    assert_eq!(val.items.len(), 1_284);
    assert_eq!(test.items.len(), 1_267);
    assert_eq!(test.dataset.format, "liar-plus-tsv");
    assert!(test.dataset.license_note.as_deref().is_some_and(|n| n.starts_with("LIAR-PLUS (Tariq60/LIAR-PLUS)")));
    assert_eq!(
        original_label_counts(&test.items),
        counts(&[
            ("half-true", 265),
            ("false", 249),
            ("mostly-true", 241),
            ("barely-true", 212),
            ("true", 208),
            ("pants-fire", 92)
        ])
    );
    assert_eq!(
        original_label_counts(&val.items),
        counts(&[
            ("false", 263),
            ("mostly-true", 251),
            ("half-true", 248),
            ("barely-true", 237),
            ("true", 169),
            ("pants-fire", 116)
        ])
    );
    assert_eq!(gold_counts(&test.items), (265 + 241 + 208, 249 + 212 + 92, 0));
    // Justification is empty in 9 rows of test2.tsv and 4 of val2.tsv (SOURCE.md).
    assert_eq!(rationale_count(&test.items), 1_267 - 9);
    assert_eq!(rationale_count(&val.items), 1_284 - 4);
    assert!(val.items.iter().all(|i| i.split.as_deref() == Some("val")));
    assert!(test.items.iter().all(|i| i.split.as_deref() == Some("test")));

    let first = &test.items[0];
    assert_eq!(first.external_id.as_deref(), Some("11972.json"));
    assert_eq!(first.text, "Building a wall on the U.S.-Mexico border will take literally years.");
    assert_eq!(first.source.as_deref(), Some("rick-perry"));
    assert_eq!(first.gold_label, Some(Verdict::Real));
    assert_eq!(first.metadata["speaker_job_title"], "Governor");
    assert_eq!(first.metadata["state"], "Texas");
    assert_eq!(first.metadata["party"], "republican");
    assert_eq!(first.metadata["barely_true_counts"], 30);
    assert_eq!(first.metadata["context"], "Radio interview");
    assert_eq!(first.metadata["row_index"], 0);
    assert!(first.rationales[0].text.starts_with("Meantime, engineering experts agree"));

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    import_and_check(
        &mut store,
        &[shared("liar-plus/val2.tsv"), shared("liar-plus/test2.tsv")],
        &ImportOptions::default(),
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.items, stats.rationales), (1_284 + 1_267, 1_280 + 1_258));
}

#[test]
fn liar_plus_jsonl_files_import_with_exact_counts() {
    let bytes = std::fs::read(shared("liar-plus/test2.jsonl")).unwrap();
    assert_eq!(FileFormat::detect(Path::new("test2.jsonl"), &bytes), Ok(FileFormat::LiarPlusJsonl));
    let val = read(&shared("liar-plus/val2.jsonl"));
    let test = read(&shared("liar-plus/test2.jsonl"));
    assert_eq!(val.items.len(), 1_284);
    assert_eq!(test.items.len(), 1_283);
    assert_eq!(test.dataset.format, "liar-plus-jsonl");
    // Justification is empty (or null) in 25 rows of test2.jsonl and 4 of val2.jsonl (SOURCE.md).
    assert_eq!(rationale_count(&test.items), 1_283 - 25);
    assert_eq!(rationale_count(&val.items), 1_284 - 4);
    assert_eq!(
        original_label_counts(&test.items),
        counts(&[
            ("half-true", 267),
            ("false", 250),
            ("mostly-true", 249),
            ("barely-true", 214),
            ("true", 211),
            ("pants-fire", 92)
        ])
    );
    let first = &test.items[0];
    assert_eq!(first.external_id.as_deref(), Some("11972.json"));
    assert_eq!(first.source.as_deref(), Some("rick-perry"));
    assert_eq!(first.split.as_deref(), Some("test"));
    assert_eq!(first.metadata["subjects"], serde_json::json!(["immigration"]));
    assert_eq!(first.metadata["speaker_job_title"], "Governor");
    // The published JSONL's `party` holds the state.
    assert_eq!(first.metadata["party"], "Texas");
    assert!(first.rationales[0].text.ends_with("border."), "trimmed: {:?}", first.rationales[0].text);

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    import_and_check(
        &mut store,
        &[shared("liar-plus/val2.jsonl"), shared("liar-plus/test2.jsonl")],
        &ImportOptions::default(),
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.items, stats.rationales), (1_284 + 1_283, 1_280 + 1_258));
}

#[test]
fn generic_csv_with_a_column_map_reads_liar2() {
    let opts = ImportOptions {
        format: None,
        columns: Some(
            ColumnMap::parse(
                "content=statement,label=label,rationale:human=justification,source=speaker,date=date,id=id",
            )
            .unwrap(),
        ),
        labels: LabelMap::parse("0=fake,1=fake,2=fake,3=real,4=real,5=real").unwrap(),
        delimiter: None,
        dataset_name: Some("LIAR2 test (generic)".into()),
    };
    let generic = read_file(&shared("liar2/test.csv"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let preset = read(&shared("liar2/test.csv"));
    assert_eq!(generic.dataset.format, "csv");
    assert_eq!(generic.dataset.name, "LIAR2 test (generic)");
    assert_eq!(generic.dataset.license_note, None);
    assert_eq!(generic.items.len(), 2_296);
    // The generic reader keeps justifications whole: one rationale per row.
    assert_eq!(rationale_count(&generic.items), 2_296);
    for (g, p) in generic.items.iter().zip(&preset.items) {
        assert_eq!(
            (&g.text, &g.external_id, &g.source, &g.published),
            (&p.text, &p.external_id, &p.source, &p.published)
        );
        assert_eq!((g.gold_label, &g.original_label, &g.split), (p.gold_label, &p.original_label, &p.split));
        assert!(g.metadata.contains_key("context") || p.metadata.get("context").is_none());
        assert!(!g.metadata.contains_key("statement"));
        assert!(g.metadata.contains_key("speaker_description") || !p.metadata.contains_key("speaker_description"));
    }

    // A preset format with a map is refused rather than silently ignoring the map.
    let e = read_file(&shared("liar2/test.csv"), &ImportOptions { format: Some(FileFormat::Liar2Csv), ..opts.clone() })
        .unwrap_err();
    assert!(e.to_string().contains("--map only applies to the csv, json and jsonl formats"), "{e}");
    // The generic formats need a map.
    let e =
        read_file(&shared("liar2/test.csv"), &ImportOptions { format: Some(FileFormat::Csv), ..Default::default() })
            .unwrap_err();
    assert!(e.to_string().contains("needs a column map"), "{e}");
}

#[test]
fn generic_jsonl_with_a_column_map_reads_liar_plus() {
    let opts = ImportOptions {
        columns: Some(
            ColumnMap::parse(
                "content=claim,label=label,rationale:human=justification,source=originator,id=json_file_id",
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    let parsed = read_file(&shared("liar-plus/val2.jsonl"), &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.dataset.format, "jsonl");
    assert_eq!(parsed.items.len(), 1_284);
    assert_eq!(rationale_count(&parsed.items), 1_280);
    let first = &parsed.items[0];
    assert_eq!(first.split.as_deref(), Some("val"));
    assert!(first.metadata.contains_key("topics") && first.metadata.contains_key("party"));
    assert!(!first.metadata.contains_key("claim"));
}

const ARG_FIXTURE: &str = r#"[
  {"content": "某地发生地震，伤亡惨重。", "label": "fake", "time": "2021-03-01 10:00",
   "source_id": 17, "td_rationale": "描述夸张。", "td_pred": "fake", "td_acc": 1,
   "cs_rationale": "常识上可信。", "cs_pred": "real", "cs_acc": 0},
  {"content": "Celebrity X married Y in a private ceremony.", "label": 0, "source_id": 18,
   "td_rationale": "The wording is neutral.", "td_pred": 2, "td_acc": 0,
   "cs_rationale": "", "cs_pred": 1, "split": "train", "extra": [1, 2]},
  {"content": "  No label here.  ", "source_id": "a-19", "fc_rationale": "Checked: matches reports.", "fc_pred": 0},
  {"content": "Rumour with label REAL", "label": "Real"}
]
"#;

#[test]
fn arg_json_reads_rationales_verdicts_metadata_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("val.json");
    std::fs::write(&path, ARG_FIXTURE).unwrap();
    let parsed = read(&path);
    assert_eq!(parsed.dataset.format, "arg-json");
    assert_eq!(parsed.dataset.license_note, None);
    let items = &parsed.items;
    assert_eq!(items.len(), 4);

    let zh = &items[0];
    assert_eq!(zh.text, "某地发生地震，伤亡惨重。");
    assert_eq!((zh.gold_label, zh.original_label.as_deref()), (Some(Verdict::Fake), Some("fake")));
    assert_eq!(zh.external_id.as_deref(), Some("17"));
    assert_eq!(zh.published.as_deref(), Some("2021-03-01 10:00"));
    assert_eq!(zh.split.as_deref(), Some("val"), "split from the file stem");
    let got: Vec<_> = zh.rationales.iter().map(|r| (r.perspective.as_str(), r.text.as_str(), r.verdict)).collect();
    assert_eq!(got, [("cs", "常识上可信。", Some(Verdict::Real)), ("td", "描述夸张。", Some(Verdict::Fake))]);
    assert!(zh.rationales.iter().all(|r| r.origin == RationaleOrigin::Imported && r.model.is_none()));
    assert_eq!(zh.metadata["td_acc"], 1);
    assert_eq!(zh.metadata["cs_acc"], 0);
    assert!(!zh.metadata.contains_key("td_pred") && !zh.metadata.contains_key("content"));

    let en = &items[1];
    assert_eq!((en.gold_label, en.original_label.as_deref()), (Some(Verdict::Real), Some("0")));
    assert_eq!(en.split.as_deref(), Some("train"), "the split field wins over the stem");
    assert_eq!(en.rationales.len(), 1, "an empty rationale is no rationale");
    assert_eq!(en.rationales[0].verdict, Some(Verdict::Other));
    assert_eq!(en.metadata["cs_pred"], 1, "the pred of an empty rationale stays in metadata");
    assert_eq!(en.metadata["extra"], serde_json::json!([1, 2]));

    let unlabelled = &items[2];
    assert_eq!(unlabelled.text, "No label here.");
    assert_eq!((unlabelled.gold_label, unlabelled.original_label.as_deref()), (None, None));
    assert_eq!(unlabelled.external_id.as_deref(), Some("a-19"));
    assert_eq!(unlabelled.rationales[0].perspective, "fc");
    assert_eq!(unlabelled.rationales[0].verdict, Some(Verdict::Real));

    assert_eq!((items[3].gold_label, items[3].original_label.as_deref()), (Some(Verdict::Real), Some("Real")));

    let mut store = open_store(&dir);
    import_and_check(&mut store, &[path], &ImportOptions::default());
    assert_eq!(store.stats().unwrap().rationales, 4);
}

#[test]
fn bom_is_stripped_and_bytes_can_be_read_from_memory() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(ARG_FIXTURE.as_bytes());
    let parsed = read_bytes(Path::new("bundled/test.json"), &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(parsed.items.len(), 4);
    assert_eq!(parsed.items[0].split.as_deref(), Some("test"));
    assert_eq!(parsed.dataset.source_path, "bundled/test.json");
}

#[test]
fn demo_sample_imports_as_liar2_with_300_items() {
    let bytes = std::fs::read(demo_sample()).expect("assets/demo/liar2-sample.csv");
    assert_eq!(FileFormat::detect(&demo_sample(), &bytes), Ok(FileFormat::Liar2Csv));
    let parsed = read_bytes(Path::new("liar2-sample.csv"), &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(parsed.dataset.format, "liar2-csv");
    assert_eq!(parsed.items.len(), 300);
    assert_eq!(
        original_label_counts(&parsed.items),
        counts(&[("0", 37), ("1", 83), ("2", 42), ("3", 62), ("4", 38), ("5", 38)])
    );
    // Every 7th record of valid.csv: the sample's items are exactly those.
    let valid = read(&shared("liar2/valid.csv"));
    for (i, item) in parsed.items.iter().enumerate() {
        let source = &valid.items[i * 7];
        assert_eq!(
            (&item.external_id, &item.text, &item.metadata),
            (&source.external_id, &source.text, &source.metadata)
        );
        assert_eq!(item.split, None);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    import_and_check(&mut store, &[demo_sample()], &ImportOptions::default());
    assert_eq!(store.stats().unwrap().items, 300);

    // The copy bundled into the binary is the same file.
    assert_eq!(ingest::DEMO_SAMPLE_CSV, &bytes[..]);
    let bundled = ingest::read_demo_sample().unwrap();
    assert_eq!((bundled.dataset.name.as_str(), bundled.dataset.format.as_str()), ("LIAR2 demo sample", "liar2-csv"));
    assert_eq!(bundled.items, parsed.items);
}

// -------------------------------------------------------------------------------------------------------------
// Malformed inputs: the error names the file and line, and the database is unchanged

/// A store that already holds LIAR-PLUS test2.tsv, so that "unchanged" means something.
fn seeded_store(dir: &tempfile::TempDir) -> (Store, Stats) {
    let mut store = open_store(dir);
    ingest::import_files(&mut store, &[shared("liar-plus/test2.tsv")], &ImportOptions::default(), &NoProgress).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.items, 1_267);
    (store, stats)
}

/// Imports `paths`, expects an error starting `FILE:LINE: ` that contains `needle`, and checks the store is
/// unchanged.
fn assert_fails(
    store: &mut Store,
    before: &Stats,
    paths: &[PathBuf],
    opts: &ImportOptions,
    bad: &Path,
    line: usize,
    needle: &str,
) {
    let err = ingest::import_files(store, paths, opts, &NoProgress).expect_err("import should fail");
    let msg = err.to_string();
    let prefix = format!("{}:{line}: ", bad.display());
    assert!(msg.starts_with(&prefix), "expected '{prefix}...', got: {msg}");
    assert!(msg.contains(needle), "expected '{needle}' in: {msg}");
    match &err {
        ImportError::Parse(e) => assert_eq!((e.file.as_path(), e.line), (bad, Some(line))),
        other => panic!("not a parse error: {other:?}"),
    }
    assert_eq!(&store.stats().unwrap(), before, "the database changed after a failed import");
}

/// Byte offset and physical line of the first byte of each record of a CSV text (after the header).
///
/// (The csv crate's own `Position::line()` is one too small in CRLF files such as LIAR2's, so lines are counted here.)
fn csv_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(bytes);
    let mut out = Vec::new();
    let mut rec = csv::ByteRecord::new();
    let (mut counted_to, mut line) = (0, 1);
    while rdr.read_byte_record(&mut rec).unwrap() {
        let mut start = rec.position().unwrap().byte() as usize;
        while matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        line += bytes[counted_to..start].iter().filter(|&&b| b == b'\n').count();
        counted_to = start;
        out.push((start, line));
    }
    out
}

#[test]
fn truncated_liar2_csv_names_the_cut_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bytes = std::fs::read(shared("liar2/test.csv")).unwrap();
    let records = csv_records(&bytes);
    // Cut inside the justification (the last, quoted field) of record 1000.
    let (_, line) = records[1000];
    let (next_start, _) = records[1001];
    let cut = &bytes[..next_start - 40];
    let bad = dir.path().join("test.csv");
    std::fs::write(&bad, cut).unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &ImportOptions::default(), &bad, line, "truncated");

    // Cut in the middle of the row's unquoted fields: too few columns.
    let (start, line) = records[1500];
    let comma = start + bytes[start..].iter().position(|&b| b == b',').unwrap();
    std::fs::write(&bad, &bytes[..comma + 3]).unwrap();
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &ImportOptions::default(),
        &bad,
        line,
        "expected 16 columns",
    );
}

#[test]
fn mapped_column_missing_from_the_header_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bad = dir.path().join("news.csv");
    std::fs::write(&bad, "id,label,statement\n1,real,Some text\n").unwrap();
    let opts = ImportOptions {
        columns: Some(ColumnMap::parse("content=statement,title=headline").unwrap()),
        ..Default::default()
    };
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &opts,
        &bad,
        1,
        "column 'headline' (mapped to title) is not in the header; the header's columns (delimiter ',') are: id, label, statement",
    );
    // JSONL: the keys of the first object.
    let bad = dir.path().join("news.jsonl");
    std::fs::write(&bad, "\n{\"statement\": \"x\", \"label\": \"real\"}\n").unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &opts, &bad, 2, "key 'headline' (mapped to title)");
}

#[test]
fn wrong_column_count_in_liar_plus_tsv_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let text = std::fs::read_to_string(shared("liar-plus/val2.tsv")).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // Find a physical line that is a whole record (16 fields, no quotes) and drop its last column.
    let n = (200..lines.len()).find(|&i| lines[i].split('\t').count() == 16 && !lines[i].contains('"')).unwrap();
    let cut = lines[n].rfind('\t').unwrap();
    lines[n].truncate(cut);
    let bad = dir.path().join("val2.tsv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &ImportOptions::default(),
        &bad,
        n + 1,
        "expected 16 tab-separated columns",
    );
}

#[test]
fn bad_utf8_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bytes = std::fs::read(shared("liar-plus/test2.jsonl")).unwrap();
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines[99].insert(5, 0xFF);
    let bad = dir.path().join("test2.jsonl");
    std::fs::write(&bad, lines.join(&b'\n')).unwrap();
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &ImportOptions::default(),
        &bad,
        100,
        "invalid UTF-8 (byte 0xff at column 6)",
    );
}

#[test]
fn label_outside_the_map_names_its_physical_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bad = dir.path().join("claims.csv");
    // The second record spans two physical lines, so the bad record starts on line 5.
    std::fs::write(&bad, "text,label\nfirst,real\n\"second,\nover two lines\",fake\nthird,Maybe\nfourth,real\n")
        .unwrap();
    let opts =
        ImportOptions { columns: Some(ColumnMap::parse("content=text,label=label").unwrap()), ..Default::default() };
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &opts,
        &bad,
        5,
        "label 'Maybe' is not in the label map (known: ",
    );

    // LIAR2's integer labels through the default map of the generic reader: '2' is unknown there.
    let opts = ImportOptions {
        columns: Some(ColumnMap::parse("content=statement,label=label").unwrap()),
        ..Default::default()
    };
    let test = shared("liar2/test.csv");
    let bytes = std::fs::read(&test).unwrap();
    let first = read(&test).items.iter().position(|i| !matches!(i.original_label.as_deref(), Some("0" | "1"))).unwrap();
    let (start, line) = csv_records(&bytes)[first];
    assert!(line > 2 && bytes[start].is_ascii_digit());
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&test),
        &opts,
        &test,
        line,
        "is not in the label map (known: 0, 1, ",
    );

    // A user map on LIAR2's label names that lacks one.
    let opts = ImportOptions {
        labels: LabelMap::parse("pants-fire=fake,false=fake,barely-true=fake,half-true=real,mostly-true=real").unwrap(),
        ..Default::default()
    };
    let first_5 = read(&test).items.iter().position(|i| i.original_label.as_deref() == Some("5")).unwrap();
    let line = csv_records(&bytes)[first_5].1;
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&test),
        &opts,
        &test,
        line,
        "label '5' is not in the label map",
    );
}

#[test]
fn empty_text_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bad = dir.path().join("claims.csv");
    std::fs::write(&bad, "text,label\nfirst,real\n  ,fake\n").unwrap();
    let opts =
        ImportOptions { columns: Some(ColumnMap::parse("content=text,label=label").unwrap()), ..Default::default() };
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &opts, &bad, 3, "empty text");
}

#[test]
fn malformed_jsonl_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let text = std::fs::read_to_string(shared("liar-plus/val2.jsonl")).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let half = lines[56].len() / 2;
    let cut = (0..=half).rev().find(|&i| lines[56].is_char_boundary(i)).unwrap();
    lines[56].truncate(cut);
    let bad = dir.path().join("val2.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &ImportOptions::default(),
        &bad,
        57,
        "malformed JSON",
    );
}

#[test]
fn malformed_arg_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bad = dir.path().join("train.json");
    // A missing comma between two fields of the third object, on line 6.
    let text = "[\n  {\"content\": \"a\", \"label\": 0},\n  {\"content\": \"b\", \"label\": 1},\n  {\n    \"content\": \"c\",\n    \"label\": 1 \"time\": \"x\"\n  }\n]\n";
    std::fs::write(&bad, text).unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &ImportOptions::default(), &bad, 6, "malformed JSON");
    // An object without content: the line where the object starts.
    std::fs::write(&bad, "[\n  {\"content\": \"a\", \"label\": 0},\n\n  {\"label\": 1,\n   \"time\": \"x\"}\n]")
        .unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &ImportOptions::default(), &bad, 4, "'content'");
    // A bad verdict code.
    std::fs::write(&bad, "[{\"content\": \"a\"},\n {\"content\": \"b\", \"td_rationale\": \"r\", \"td_pred\": 7}]")
        .unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &ImportOptions::default(), &bad, 2, "'td_pred'");
    // Truncated array.
    std::fs::write(&bad, "[\n{\"content\": \"a\"},\n{\"content\": \"b\"}").unwrap();
    assert_fails(&mut store, &before, std::slice::from_ref(&bad), &ImportOptions::default(), &bad, 3, "truncated");
    // Not an array.
    std::fs::write(&bad, "\n\n{\"content\": \"a\"}").unwrap();
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&bad),
        &ImportOptions::default(),
        &bad,
        3,
        "expected a JSON array",
    );
}

#[test]
fn a_bad_second_file_leaves_the_first_unimported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let bad = dir.path().join("test2.tsv");
    std::fs::write(&bad, "0\t1.json\ttrue\tA claim.\n1\t2.json\tfalse\n").unwrap();
    assert_fails(
        &mut store,
        &before,
        &[shared("liar2/valid.csv"), bad.clone()],
        &ImportOptions::default(),
        &bad,
        1,
        "expected 16 tab-separated columns (LIAR-PLUS), found 4",
    );
    // An unknown extension is a clear error too.
    let odd = dir.path().join("data.txt");
    std::fs::write(&odd, "x").unwrap();
    let e = ingest::import_files(&mut store, std::slice::from_ref(&odd), &ImportOptions::default(), &NoProgress)
        .unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: cannot tell the format", odd.display())), "{e}");
    assert_eq!(store.stats().unwrap(), before);
}

/// Counts progress reports and cancels once the import is under way.
struct CancelDuringInsert {
    reports: AtomicU64,
    cancel_after: u64,
}

impl Progress for CancelDuringInsert {
    fn set(&self, _done: u64, _total: u64, _message: &str) {
        self.reports.fetch_add(1, Ordering::Relaxed);
    }
    fn is_cancelled(&self) -> bool {
        self.reports.load(Ordering::Relaxed) >= self.cancel_after
    }
}

#[test]
fn a_cancelled_import_writes_nothing_and_progress_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, before) = seeded_store(&dir);
    let files = [shared("liar2/valid.csv"), shared("liar2/test.csv")];
    // Two "reading" reports, one "importing" start, one from the store: then cancel.
    let progress = CancelDuringInsert { reports: AtomicU64::new(0), cancel_after: 4 };
    let e = ingest::import_files(&mut store, &files, &ImportOptions::default(), &progress).unwrap_err();
    assert!(matches!(e, ImportError::Cancelled(_)), "{e:?}");
    assert_eq!(store.stats().unwrap(), before);

    let progress = CancelDuringInsert { reports: AtomicU64::new(0), cancel_after: u64::MAX };
    let summaries = ingest::import_files(&mut store, &files, &ImportOptions::default(), &progress).unwrap();
    assert_eq!(summaries.iter().map(|s| s.items).sum::<usize>(), 4_593);
    assert!(progress.reports.load(Ordering::Relaxed) >= 4);
}

// -------------------------------------------------------------------------------------------------------------
// Exports

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn exports_merge_judgements_and_keep_original_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    // LIAR2 test (split "test"), the demo sample (no split: assigned by id) and two unlabelled items.
    let unlabelled = dir.path().join("unlabelled.csv");
    std::fs::write(&unlabelled, "text,label\nno label one,\nno label two,\n").unwrap();
    import_and_check(&mut store, &[shared("liar2/test.csv"), demo_sample()], &ImportOptions::default());
    let opts =
        ImportOptions { columns: Some(ColumnMap::parse("content=text,label=label").unwrap()), ..Default::default() };
    import_and_check(&mut store, &[unlabelled], &opts);
    let total = 2_296 + 300 + 2;

    let rows = store.export_rows().unwrap();
    let real_item = rows.iter().find(|r| r.item.gold_label == Some(Verdict::Real)).unwrap().item.clone();
    let fake_item = rows.iter().find(|r| r.item.gold_label == Some(Verdict::Fake)).unwrap().item.clone();
    let unlabelled_item = rows.iter().find(|r| r.item.gold_label.is_none()).unwrap().item.clone();
    let alice = store.annotator_id("alice").unwrap();
    let bob = store.annotator_id("bob").unwrap();
    let judge = |item: i64, who: i64, verdict: Verdict| {
        store
            .record_judgement(&NewJudgement {
                item_id: item,
                annotator_id: who,
                verdict,
                confidence: Some(0.8),
                note: None,
                time_spent_ms: 1_000,
            })
            .unwrap();
    };
    judge(real_item.id, alice, Verdict::Fake); // a single human verdict overrides the gold label
    judge(fake_item.id, alice, Verdict::Real); // a tie: no human verdict, gold stays
    judge(fake_item.id, bob, Verdict::Fake);
    judge(unlabelled_item.id, bob, Verdict::Real); // a human verdict labels an unlabelled item

    // JSON Lines.
    let out = dir.path().join("out/all.jsonl");
    let summary = ingest::export(&store, ExportFormat::Jsonl, &out).unwrap();
    assert_eq!((summary.items, summary.skipped, summary.files.len()), (total, 0, 1));
    let rows = read_jsonl(&out);
    assert_eq!(rows.len(), total);
    let by_id = |id: i64| rows.iter().find(|r| r["id"] == id).unwrap();
    let r = by_id(real_item.id);
    assert_eq!(
        (&r["gold_label"], &r["human_verdict"], &r["label"], &r["n_judgements"]),
        (&"real".into(), &"fake".into(), &"fake".into(), &1.into())
    );
    assert_eq!(r["original_label"], real_item.original_label.clone().unwrap().as_str());
    assert_eq!(r["judgements"][0]["annotator"], "alice");
    assert_eq!(r["rationales"][0]["perspective"], "human");
    assert_eq!(r["metadata"]["label_name"], real_item.metadata["label_name"]);
    let f = by_id(fake_item.id);
    assert_eq!((&f["human_verdict"], &f["label"], &f["n_judgements"]), (&Value::Null, &"fake".into(), &2.into()));
    let u = by_id(unlabelled_item.id);
    assert_eq!((&u["gold_label"], &u["label"]), (&Value::Null, &"real".into()));
    let liar2_rows = rows.iter().filter(|r| r["dataset"] == "test.csv").count();
    assert_eq!(liar2_rows, 2_296);
    assert!(rows.iter().filter(|r| r["dataset"] != "unlabelled.csv").all(|r| r["original_label"].is_string()));

    // CSV.
    let out = dir.path().join("all.csv");
    let summary = ingest::export(&store, ExportFormat::Csv, &out).unwrap();
    assert_eq!(summary.items, total);
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header,
        [
            "id",
            "item_key",
            "dataset",
            "external_id",
            "title",
            "text",
            "source",
            "published",
            "split",
            "gold_label",
            "original_label",
            "human_verdict",
            "n_judgements",
            "label",
            "rationale:human",
            "verdict:human",
            "metadata"
        ]
    );
    let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), total);
    let rec = records.iter().find(|r| r[0] == real_item.id.to_string()).unwrap();
    assert_eq!(
        (&rec[9], &rec[10], &rec[11], &rec[12], &rec[13]),
        ("real", real_item.original_label.as_deref().unwrap(), "fake", "1", "fake")
    );
    assert_eq!(rec[5], real_item.text);
    assert_eq!(rec[1], real_item.key, "the stable key travels with the row");
    let meta: Value = serde_json::from_str(&rec[16]).unwrap();
    assert_eq!(meta["label_name"], real_item.metadata["label_name"]);

    // ARG JSON.
    let arg_dir = dir.path().join("arg");
    let summary = ingest::export(&store, ExportFormat::ArgJson, &arg_dir).unwrap();
    assert_eq!((summary.items, summary.skipped), (total - 1, 1), "one unlabelled item has no final label");
    assert_eq!(summary.files, ["train", "val", "test"].map(|s| arg_dir.join(format!("{s}.json"))));
    let mut exported = 0;
    let mut per_split = BTreeMap::new();
    for file in &summary.files {
        let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(list.iter().all(|o| o["split"] == stem.as_str()));
        per_split.insert(stem, list.len());
        exported += list.len();
        for o in &list {
            assert!(o["label"] == 0 || o["label"] == 1, "{o}");
            assert!(o["content"].is_string() && o["source_id"].is_i64());
            assert!(o.get("human_pred").is_none(), "PolitiFact justifications have no verdict");
        }
        if let Some(o) = list.iter().find(|o| o["source_id"] == real_item.id) {
            assert_eq!(
                (&o["label"], &o["gold_label"], &o["human_verdict"]),
                (&1.into(), &"real".into(), &"fake".into())
            );
            assert_eq!(o["original_label"], real_item.original_label.clone().unwrap().as_str());
            assert!(o["human_rationale"].is_string());
        }
    }
    assert_eq!(exported, total - 1);
    // LIAR2 test keeps its split; the 300 demo items and 1 labelled extra are spread 70/15/15 by id.
    assert!(per_split["test"] >= 2_296, "{per_split:?}");
    assert!(per_split["train"] > 150 && per_split["val"] > 20, "{per_split:?}");

    // The exported ARG JSON reads back with the ARG reader.
    let back: usize = summary.files.iter().map(|f| read(f).items.len()).sum();
    assert_eq!(back, total - 1);
    let test_back = read(&arg_dir.join("test.json"));
    let again = test_back.items.iter().find(|i| i.external_id == Some(real_item.id.to_string())).unwrap();
    assert_eq!((again.gold_label, again.original_label.as_deref()), (Some(Verdict::Fake), Some("1")));
    assert_eq!(again.metadata["gold_label"], "real");
    assert_eq!(again.rationales[0].perspective, "human");
    let reimport_dir = tempfile::tempdir().unwrap();
    let mut reimport = open_store(&reimport_dir);
    let summaries =
        ingest::import_files(&mut reimport, &summary.files, &ImportOptions::default(), &NoProgress).unwrap();
    assert_eq!(summaries.iter().map(|s| s.items).sum::<usize>(), total - 1);
}

#[test]
fn a_failed_export_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    import_and_check(&mut store, &[demo_sample()], &ImportOptions::default());
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let e = ingest::export(&store, ExportFormat::Jsonl, &folder).unwrap_err();
    assert!(e.to_string().contains("is a folder"), "{e}");
    // An ARG export into a path that is a file cannot create its folder.
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "x").unwrap();
    assert!(ingest::export(&store, ExportFormat::ArgJson, &file).is_err());
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.retain(|n| !n.starts_with("argus.db"));
    names.sort();
    assert_eq!(names, ["folder", "plain.txt"]);
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
}

#[test]
fn liar2_justification_loses_its_verdict_sentences_and_keeps_the_original_in_metadata() {
    let header = "id,label,statement,date,subject,speaker,speaker_description,state_info,true_counts,mostly_true_counts,\
                  half_true_counts,mostly_false_counts,false_counts,pants_on_fire_counts,context,justification";
    let row = "7,0,\"The moon is cheese.\",\"May 1, 2020\",space,bob,a man,Ohio,0,0,0,0,0,1,a post,\
               \"Bob posted it. Astronomers disagree. We rate it Pants on Fire! The post was shared widely.\"";
    let parsed =
        read_bytes(Path::new("liar2-like.csv"), format!("{header}\n{row}\n").as_bytes(), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.dataset.format, "liar2-csv");
    let item = &parsed.items[0];
    assert_eq!(item.gold_label, Some(Verdict::Fake));
    assert_eq!(item.rationales[0].text, "Bob posted it. Astronomers disagree. The post was shared widely.");
    assert!(item.metadata["justification_original"].as_str().unwrap().contains("Pants on Fire"));
}

// -------------------------------------------------------------------------------------------------------------
// Data as it ships: JSON arrays with nested fields, any delimiter, undecided labels; stable keys

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import").join(name)
}

fn flags(map: &str, labels: &str, default_label: Option<&str>) -> ImportOptions {
    ImportOptions::from_flags(&ImportFlags {
        map: Some(map.into()),
        labels: Some(labels.into()),
        default_label: default_label.map(str::to_owned),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

const AVERITEC_MAP: &str = "id=claim_id,content=claim.text,source=claim.speaker,label=label,\
                            rationale:human=justification,evidence=questions[*].answers[*].answer";
const AVERITEC_LABELS: &str = "Supported=real,Refuted=fake,Not Enough Evidence=unlabelled";

fn line_of(path: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

#[test]
fn a_json_array_with_nested_fields_imports_with_one_command() {
    let path = fixture("averitec-like.json");
    let opts = flags(AVERITEC_MAP, AVERITEC_LABELS, Some("unlabelled"));
    let file = read_file(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.dataset.format, "json");
    assert_eq!(file.items.len(), 4);
    assert_eq!(gold_counts(&file.items), (1, 1, 2), "undecided labels are kept unlabelled");
    let first = &file.items[0];
    assert_eq!(first.text, "The city council voted to close every public library in 2021.");
    assert_eq!(first.source.as_deref(), Some("A blog post"));
    assert_eq!(first.external_id.as_deref(), Some("av-1"));
    assert_eq!(first.original_label.as_deref(), Some("Refuted"));
    assert_eq!(first.rationales[0].perspective, "human");
    assert_eq!(first.rationales[0].text, "Council minutes show two branch closures, not all libraries.");
    assert_eq!(first.metadata["evidence"], "Two branches.\nThe main library stayed open.\nYes, on two branches.");
    assert_eq!(first.metadata["reporting_source"], "Blog", "unmapped keys go to metadata");
    assert!(!first.metadata.contains_key("claim"), "a mapped key does not also go to metadata");
    assert_eq!(file.items[2].source, None, "a null nested field is no value");
    assert_eq!(file.items[3].original_label.as_deref(), Some("Conflicting Evidence/Cherrypicking"));
    assert_eq!(file.items[3].gold_label, None, "--default-label unlabelled");

    // `--format jsonl` on an array reads it too (the first byte tells).
    let jsonl = ImportOptions { format: Some(FileFormat::Jsonl), ..opts.clone() };
    assert_eq!(read_file(&path, &jsonl).unwrap().items, file.items);

    // Strict by default: a label outside the map fails the import and names its line.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    let before = store.stats().unwrap();
    let strict = flags(AVERITEC_MAP, AVERITEC_LABELS, None);
    let line = line_of(&path, "\"claim_id\": \"av-4\"") - 1;
    assert_fails(
        &mut store,
        &before,
        std::slice::from_ref(&path),
        &strict,
        &path,
        line,
        "label 'Conflicting Evidence/Cherrypicking'",
    );

    // A path into an object names the field and the line.
    let bad = flags("content=claim,label=label", AVERITEC_LABELS, Some("unlabelled"));
    let line = line_of(&path, "\"claim_id\": \"av-1\"") - 1;
    assert_fails(&mut store, &before, std::slice::from_ref(&path), &bad, &path, line, "content: 'claim' is an object");

    let summaries = ingest::import_files(&mut store, &[path], &opts, &NoProgress).unwrap();
    assert_eq!((summaries[0].items, summaries[0].rationales), (4, 4));
    let items = store.items_all().unwrap();
    assert_eq!(items[0].key, "id:av-1");
}

#[test]
fn a_tsv_imports_with_a_column_map_and_its_delimiter_guessed() {
    let path = fixture("claims.tsv");
    let opts = flags(
        "id=id,content=claim,label=verdict,rationale:human=explanation,source=speaker",
        "true=real,false=fake,mostly-false=fake",
        None,
    );
    let file = read_file(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.dataset.format, "csv");
    assert_eq!(file.items.len(), 3);
    assert_eq!(file.items[2].text, "The stadium holds 90,000 people.");
    assert_eq!(file.items[2].source.as_deref(), Some("A fan"));
    assert_eq!(gold_counts(&file.items), (1, 2, 0));
    // A wrong column names the header's columns and the delimiter read.
    let wrong = flags("content=statement", "true=real", None);
    let e = read_file(&path, &wrong).unwrap_err().to_string();
    assert!(
        e.contains("column 'statement' (mapped to content) is not in the header") && e.contains("(delimiter tab)"),
        "{e}"
    );
}

#[test]
fn a_semicolon_csv_with_undecided_labels_imports_and_a_reimport_adds_nothing() {
    let path = fixture("fever-like.csv");
    let opts = flags(
        "id=id,content=claim,label=label,evidence=evidence",
        "SUPPORTS=real,REFUTES=fake,NOT ENOUGH INFO=unlabelled",
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    let first = ingest::import_files(&mut store, std::slice::from_ref(&path), &opts, &NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first[0].items, first[0].already_present), (4, 0));
    let items = store.items_all().unwrap();
    assert_eq!(items[0].text, "The tower is the tallest building in the city; it was finished in 1931.");
    assert_eq!(items[2].gold_label, None);
    assert_eq!(items[2].original_label.as_deref(), Some("NOT ENOUGH INFO"));
    assert_eq!(
        items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["id:75397", "id:150448", "id:214861", "id:156709"]
    );
    let stats = store.stats().unwrap();
    let again = ingest::import_files(&mut store, &[path], &opts, &NoProgress).unwrap();
    assert_eq!((again[0].items, again[0].already_present, again[0].dataset_id), (0, 4, None));
    assert_eq!(store.stats().unwrap(), stats, "a re-import adds nothing, not even a dataset row");
}

#[test]
fn keys_are_content_addressed_without_ids_and_the_same_id_with_another_text_is_another_item() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    let a = dir.path().join("a.csv");
    std::fs::write(&a, "text,label\nOne claim,real\nOne  CLAIM ,fake\nAnother claim,fake\n").unwrap();
    let opts = flags("content=text,label=label", "real=real,fake=fake", None);
    ingest::import_files(&mut store, std::slice::from_ref(&a), &opts, &NoProgress).unwrap();
    let keys: Vec<String> = store.items_all().unwrap().into_iter().map(|i| i.key).collect();
    assert!(keys[0].starts_with("sha:") && keys[0].len() == 24, "{keys:?}");
    assert_eq!(keys[1], format!("{}#2", keys[0]), "the same normalised text again is numbered, not dropped");
    let again = ingest::import_files(&mut store, &[a], &opts, &NoProgress).unwrap();
    assert_eq!((again[0].items, again[0].already_present), (0, 3));

    // Two sources numbering from 1: the second file's id 1 has another text, so it is another item.
    let b = dir.path().join("b.csv");
    let c = dir.path().join("c.csv");
    std::fs::write(&b, "id,text\n1,First source's claim\n").unwrap();
    std::fs::write(&c, "id,text\n1,Second source's claim\n").unwrap();
    let ids = flags("id=id,content=text", "real=real", None);
    let s = ingest::import_files(&mut store, &[b, c.clone()], &ids, &NoProgress).unwrap();
    assert_eq!((s[0].items, s[1].items), (1, 1));
    let items = store.items_all().unwrap();
    assert_eq!(items[3].key, "id:1");
    assert!(items[4].key.starts_with("sha:"), "{}", items[4].key);
    let s = ingest::import_files(&mut store, &[c], &ids, &NoProgress).unwrap();
    assert_eq!((s[0].items, s[0].already_present), (0, 1));
}

#[test]
fn the_shared_liar2_file_imported_twice_adds_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(&dir);
    let path = shared("liar2/valid.csv");
    let first =
        ingest::import_files(&mut store, std::slice::from_ref(&path), &ImportOptions::default(), &NoProgress).unwrap();
    let stats = store.stats().unwrap();
    let again = ingest::import_files(&mut store, &[path], &ImportOptions::default(), &NoProgress).unwrap();
    assert_eq!((again[0].items, again[0].already_present), (0, first[0].items));
    assert_eq!(store.stats().unwrap(), stats);
    assert!(store.items_all().unwrap().iter().all(|i| i.key.starts_with("liar2:")));
}

#[test]
fn a_version_5_database_gets_keys_for_its_items_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        for sql in [
            include_str!("../../migrations/0001_init.sql"),
            include_str!("../../migrations/0002_perspectives.sql"),
            include_str!("../../migrations/0003_guidance.sql"),
            include_str!("../../migrations/0004_formats.sql"),
            include_str!("../../migrations/0005_studies.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.pragma_update(None, "application_id", argus::store::APPLICATION_ID).unwrap();
        conn.execute_batch(
            "INSERT INTO datasets(name, format, source_path) VALUES ('l', 'liar2-csv', 'valid.csv'), ('x', 'csv', 'x.csv');
             INSERT INTO items(dataset_id, external_id, text, text_sha256) VALUES
               (1, '7', 'a', 'ha'), (1, '7', 'a', 'ha'), (2, NULL, 'b', 'hb'), (2, NULL, 'b', 'hb'), (2, '7', 'c', 'hc');",
        )
        .unwrap();
    }
    let store = Store::open(&db).unwrap();
    let keys: Vec<String> = store.items_all().unwrap().into_iter().map(|i| i.key).collect();
    let b = argus::domain::content_key("b", None);
    assert_eq!(keys, ["liar2:7".to_string(), "liar2:7#2".into(), b.clone(), format!("{b}#2"), "id:7".into()]);
}
