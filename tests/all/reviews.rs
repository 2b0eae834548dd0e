//! Fact-checkers' reviews: a rating on a scale of the user's choosing, history and undo, the review as the
//! training target, and the ClaimReview JSON-LD export checked against Google's fact-check markup properties.

use std::path::Path;
use std::process::Command;

use argus::domain::{NewReview, RatingScale, Verdict};
use argus::ingest::claimreview::{ClaimReviewOptions, export_claimreview};
use argus::jobs::NoProgress;
use argus::store::Store;
use serde_json::Value;

/// The properties Google's fact-check structured data documentation marks required and recommended
/// (https://developers.google.com/search/docs/appearance/structured-data/factcheck, "Structured data type
/// definitions": ClaimReview, Claim, Rating; as of 2026-12):
/// - ClaimReview: required `claimReviewed`, `reviewRating`, `url`; recommended `author`, `datePublished`,
///   `itemReviewed`;
/// - Claim (`itemReviewed`): recommended `appearance`, `author`, `datePublished`, `firstAppearance`;
/// - Rating (`reviewRating`): required `alternateName`; recommended `bestRating`, `name`, `ratingValue`,
///   `worstRating`.
///
/// And the JSON-LD must declare `@context` `https://schema.org` with `@type` `ClaimReview` at its root.
const CLAIMREVIEW_REQUIRED: &[&str] = &["claimReviewed", "reviewRating", "url"];
const CLAIMREVIEW_RECOMMENDED: &[&str] = &["author", "datePublished", "itemReviewed"];
const CLAIM_RECOMMENDED: &[&str] = &["appearance", "author", "datePublished", "firstAppearance"];
const RATING_REQUIRED: &[&str] = &["alternateName"];
const RATING_RECOMMENDED: &[&str] = &["bestRating", "name", "ratingValue", "worstRating"];

fn demo(dir: &Path) -> Store {
    let mut store = Store::open(dir.join("fc.db")).unwrap();
    argus::studio::import_demo(&mut store, &NoProgress).unwrap();
    store
}

fn review(store: &Store, item: i64, scale: &RatingScale, rating: &str, evidence: &[&str]) -> argus::store::Result<i64> {
    store.record_review(&NewReview {
        item_id: item,
        reviewer: store.annotator_id("Dana").unwrap(),
        scale: scale.clone(),
        rating: rating.into(),
        explanation: format!("Rated {rating} after checking the record."),
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
    })
}

/// Checks one ClaimReview document against the lists above; `claim_has_appearance` when the item had a URL.
fn assert_valid_claimreview(doc: &Value, claim_has_appearance: bool) {
    assert_eq!(doc["@context"], "https://schema.org", "{doc:#}");
    assert_eq!(doc["@type"], "ClaimReview");
    for p in CLAIMREVIEW_REQUIRED.iter().chain(CLAIMREVIEW_RECOMMENDED) {
        let v = &doc[*p];
        assert!(!v.is_null() && v != "", "ClaimReview lacks {p}: {doc:#}");
    }
    assert!(doc["url"].as_str().unwrap().starts_with("https://"), "{}", doc["url"]);
    let rating = &doc["reviewRating"];
    assert_eq!(rating["@type"], "Rating");
    for p in RATING_REQUIRED.iter().chain(RATING_RECOMMENDED) {
        assert!(!rating[*p].is_null(), "Rating lacks {p}: {rating:#}");
    }
    let (value, best, worst) = (
        rating["ratingValue"].as_i64().unwrap(),
        rating["bestRating"].as_i64().unwrap(),
        rating["worstRating"].as_i64().unwrap(),
    );
    assert!(worst <= value && value <= best, "{rating:#}");
    let claim = &doc["itemReviewed"];
    assert_eq!(claim["@type"], "Claim");
    for p in CLAIM_RECOMMENDED {
        let needed = claim_has_appearance || !p.ends_with("ppearance");
        if needed {
            assert!(!claim[*p].is_null(), "Claim lacks {p}: {claim:#}");
        }
    }
    assert!(doc["author"]["name"].is_string(), "{doc:#}");
}

#[test]
fn a_review_keeps_its_history_becomes_the_training_target_and_exports_as_valid_claimreview() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo(dir.path());
    let politifact = RatingScale::politifact();

    // Bad input is refused and stores nothing.
    let e = review(&store, 1, &politifact, "Totally Bogus", &[]).unwrap_err().to_string();
    assert!(e.contains("'Totally Bogus' is not a level of the politifact scale (Pants on Fire, False"), "{e}");
    let e = review(&store, 1, &politifact, "False", &["not a link"]).unwrap_err().to_string();
    assert!(e.contains("evidence link 'not a link' is not an http(s) URL"), "{e}");
    assert!(store.reviews_of(1).unwrap().is_empty());

    // A review, then a second opinion of the same reviewer, then undo: the history keeps all three states.
    let first = review(&store, 1, &politifact, "mostly false", &["https://example.org/record"]).unwrap();
    let second = review(&store, 1, &politifact, "Pants on Fire", &[]).unwrap();
    assert_eq!(store.standing_reviews().unwrap()[&1].id, second);
    store.retract_review(second).unwrap();
    let history = store.reviews_of(1).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().any(|r| r.id == second && r.retracted));
    let standing = &store.standing_reviews().unwrap()[&1];
    assert_eq!(
        (standing.id, standing.rating.as_str(), standing.rating_value, standing.best_rating),
        (first, "Mostly False", 3, 6)
    );
    assert_eq!(standing.verdict, Some(Verdict::Fake));
    assert_eq!(standing.evidence, ["https://example.org/record"]);

    // A scale of the user's choosing, with a level that is neither real nor fake.
    let afp = RatingScale::parse("afp: False=fake, Misleading=fake, Missing context=other, True=real").unwrap();
    review(&store, 2, &afp, "Missing context", &[]).unwrap();
    review(&store, 3, &afp, "True", &[]).unwrap();
    let reviews = store.standing_reviews().unwrap();
    assert_eq!((reviews[&2].rating_value, reviews[&2].best_rating, reviews[&2].verdict), (3, 4, None));

    // The published review is the people's verdict for training.
    let training = store.training_items().unwrap();
    let human = |id: i64| training.iter().find(|t| t.id == id).unwrap().human;
    assert_eq!((human(1), human(2), human(3)), (Some(Verdict::Fake), None, Some(Verdict::Real)));

    // ClaimReview: one file per review, each valid against Google's required and recommended properties.
    let out = dir.path().join("claimreview");
    let opts = ClaimReviewOptions {
        url_pattern: "https://factcheck.example.org/reviews/{key}".into(),
        publisher: Some("Example Fact Check".into()),
        publisher_url: Some("https://factcheck.example.org".into()),
        one_file: false,
    };
    let summary = export_claimreview(&store, &opts, &out).unwrap();
    assert_eq!(summary.items, 3);
    let item1 = store.item(1).unwrap();
    let file = out.join(format!("{}.jsonld", argus::ingest::claimreview::url_safe_key(&item1.key)));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("JSON-LD parses as JSON");
    assert_valid_claimreview(&doc, false);
    assert_eq!(doc["claimReviewed"], item1.news_text());
    assert_eq!(doc["reviewRating"]["alternateName"], "Mostly False");
    assert_eq!(
        doc["author"],
        serde_json::json!({"@type": "Organization", "name": "Example Fact Check", "url": "https://factcheck.example.org"})
    );
    assert_eq!(doc["itemReviewed"]["author"]["name"], item1.source.clone().unwrap());
    assert_eq!(doc["citation"][0], "https://example.org/record");
    assert!(doc["url"].as_str().unwrap().ends_with(&argus::ingest::claimreview::url_safe_key(&item1.key)));
    for entry in std::fs::read_dir(&out).unwrap() {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        assert_valid_claimreview(&doc, false);
    }

    // A claim whose metadata has the URL where it appeared gets appearance and firstAppearance.
    let mut item = store.item(2).unwrap();
    item.metadata = serde_json::json!({"url": "https://social.example/post/1"});
    let with_url = argus::ingest::claimreview::claim_review(&item, &reviews[&2], &opts);
    assert_valid_claimreview(&with_url, true);

    // The one-array form, from the command line; without the URL pattern it says what is missing.
    let db = store.path().to_path_buf();
    drop(store);
    let all = dir.path().join("all.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_argus")).args(args).env("ARGUS_LOG", "error").output().unwrap()
    };
    let db_s = db.to_str().unwrap();
    let o = run(&[
        "export",
        "--db",
        db_s,
        "--format",
        "claimreview",
        "--out",
        all.to_str().unwrap(),
        "--one-file",
        "--url-pattern",
        "https://fc.example/{key}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let docs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&all).unwrap()).unwrap();
    assert_eq!(docs.len(), 3);
    docs.iter().for_each(|d| assert_valid_claimreview(d, false));
    assert_eq!(docs[0]["author"]["@type"], "Person", "without a publisher the reviewer is the author");
    let o = run(&["export", "--db", db_s, "--format", "claimreview", "--out", dir.path().join("x").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Google requires every ClaimReview to have a url"));
    // And `argus review` adds one by key.
    let key = item1.key.clone();
    let o = run(&[
        "review",
        "--db",
        db_s,
        "--item",
        &key,
        "--rating",
        "True",
        "--reviewer",
        "Eli",
        "--evidence",
        "https://example.org/2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Eli: True (6/6 on politifact) [https://example.org/2]"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
