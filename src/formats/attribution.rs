//! Attribution: every quote a format makes is matched back to a character span of the news text, first exactly,
//! then after normalising (case, whitespace, curly quotes, dashes, ellipses), then fuzzily (the most similar run
//! of words, accepted at a similarity of at least [`FUZZY_THRESHOLD`]). A quote that matches nothing is
//! *unsupported*: the model quoted something the news does not say.
//!
//! Spans are in characters (Unicode scalar values), `start` inclusive and `end` exclusive: `news[start..end]` in
//! Python, `news.chars().skip(start).take(end - start)` in Rust.

use serde::{Deserialize, Serialize};

/// Lowest similarity (1 − edit distance / length) at which a fuzzy match is accepted.
pub const FUZZY_THRESHOLD: f64 = 0.8;

/// How a quote was found in the news.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Exact,
    Normalised,
    Fuzzy,
}

/// Where a quote sits in the news.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// First character (inclusive).
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    pub method: Method,
    /// 1.0 for exact and normalised matches; the similarity for fuzzy ones.
    pub score: f64,
}

/// A quote of a format with its span in the news (`start`/`end` null when unsupported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuoteMatch {
    /// Where the quote sits in the format, e.g. `annotations[0].quote`.
    pub location: String,
    pub quote: String,
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub method: Option<Method>,
    pub score: Option<f64>,
}

impl QuoteMatch {
    pub fn supported(&self) -> bool {
        self.start.is_some()
    }
}

/// The news text prepared for matching: its characters normalised, each mapped back to the original character.
pub struct Matcher<'a> {
    news: &'a str,
    /// Normalised characters.
    norm: Vec<char>,
    /// For each normalised character, the index of the original character it came from.
    origin: Vec<usize>,
    /// Words of the normalised text: (first char, one past last char) in `norm`.
    words: Vec<(usize, usize)>,
}

/// The normal form of one character: lower case, one straight quote for every single or double quote mark (models
/// swap them when they quote a text that quotes), a plain hyphen for every dash, a space for every kind of
/// whitespace, three dots for an ellipsis.
fn normal(c: char, out: &mut Vec<char>) {
    match c {
        '\'' | '‘' | '’' | '‚' | '‛' | '′' | '`' | '´' | '“' | '”' | '„' | '‟' | '″' | '«' | '»' => {
            out.push('"')
        }
        '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' => out.push('-'),
        '…' => out.extend(['.', '.', '.']),
        c if c.is_whitespace() => out.push(' '),
        c => out.extend(c.to_lowercase()),
    }
}

/// `text` normalised, with whitespace runs collapsed, and each normalised char's original char index.
fn normalise(text: &str) -> (Vec<char>, Vec<usize>) {
    let mut norm = Vec::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    let mut buf = Vec::with_capacity(3);
    for (i, c) in text.chars().enumerate() {
        buf.clear();
        normal(c, &mut buf);
        for &n in &buf {
            if n == ' ' && norm.last().is_none_or(|&l| l == ' ') {
                continue;
            }
            norm.push(n);
            origin.push(i);
        }
    }
    if norm.last() == Some(&' ') {
        norm.pop();
        origin.pop();
    }
    (norm, origin)
}

/// A quote's normal form without the quote marks, ellipses and punctuation a model puts around what it quotes.
fn normalise_quote(quote: &str) -> Vec<char> {
    let (norm, _) = normalise(quote);
    let trim = |c: &char| matches!(c, '"' | '.' | ' ' | ',' | ';' | ':');
    let start = norm.iter().position(|c| !trim(c)).unwrap_or(norm.len());
    let end = norm.iter().rposition(|c| !trim(c)).map_or(start, |e| e + 1);
    norm[start..end].to_vec()
}

fn find_all(haystack: &[char], needle: &[char]) -> impl Iterator<Item = usize> {
    (0..(haystack.len() + 1).saturating_sub(needle.len().max(1))).filter(move |&i| haystack[i..].starts_with(needle))
}

/// Edit distance between two character sequences.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Letters and digits of a word, for comparing words.
fn bare(word: &[char]) -> String {
    word.iter().filter(|c| c.is_alphanumeric()).collect()
}

impl<'a> Matcher<'a> {
    pub fn new(news: &'a str) -> Self {
        let (norm, origin) = normalise(news);
        let mut words = Vec::new();
        let mut start = None;
        for (i, &c) in norm.iter().enumerate() {
            match (c == ' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    words.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            words.push((s, norm.len()));
        }
        Self { news, norm, origin, words }
    }

    /// The original span of normalised characters `from..to`.
    fn span(&self, from: usize, to: usize, method: Method, score: f64) -> Span {
        Span { start: self.origin[from], end: self.origin[to - 1] + 1, method, score }
    }

    /// Finds `quote` in the news, preferring an occurrence that starts at or after character `after` (so quotes
    /// made in reading order land on the right one of repeated phrases).
    pub fn find(&self, quote: &str, after: usize) -> Option<Span> {
        let quote = quote.trim();
        if quote.is_empty() {
            return None;
        }
        // 1. Exact.
        let exact: Vec<usize> = self.news.match_indices(quote).map(|(b, _)| self.news[..b].chars().count()).collect();
        let n = quote.chars().count();
        if let Some(&start) = exact.iter().find(|&&s| s >= after).or(exact.first()) {
            return Some(Span { start, end: start + n, method: Method::Exact, score: 1.0 });
        }
        // 2. Normalised.
        let q = normalise_quote(quote);
        if q.is_empty() {
            return None;
        }
        let found: Vec<usize> = find_all(&self.norm, &q).collect();
        if let Some(&i) = found.iter().find(|&&i| self.origin[i] >= after).or(found.first()) {
            return Some(self.span(i, i + q.len(), Method::Normalised, 1.0));
        }
        // 3. Fuzzy: the most similar run of words of about the quote's length.
        self.fuzzy(&q, after)
    }

    fn fuzzy(&self, q: &[char], after: usize) -> Option<Span> {
        let q_words: Vec<String> = q.split(|&c| c == ' ').map(bare).filter(|w| !w.is_empty()).collect();
        let n = q_words.len();
        if n < 2 {
            return None;
        }
        let slack = (n / 5).max(1);
        let news_words: Vec<String> = self.words.iter().map(|&(s, e)| bare(&self.norm[s..e])).collect();
        // (score, prefer after `after`, start word, end word)
        let mut best: Option<(f64, bool, usize, usize)> = None;
        for i in 0..self.words.len() {
            let widest = (i + n + slack).min(self.words.len());
            let overlap = q_words.iter().filter(|w| news_words[i..widest].contains(w)).count();
            if overlap * 2 < n {
                continue;
            }
            for len in n.saturating_sub(slack).max(1)..=n + slack {
                let j = i + len;
                if j > self.words.len() {
                    break;
                }
                let (s, e) = self.trimmed(self.words[i].0, self.words[j - 1].1);
                let window = &self.norm[s..e];
                let longest = window.len().max(q.len()) as f64;
                let score = 1.0 - levenshtein(window, q) as f64 / longest;
                let later = self.origin[self.words[i].0] >= after;
                let better = best.is_none_or(|(s, l, _, _)| score > s + 1e-9 || (later && !l && score >= s - 1e-9));
                if score >= FUZZY_THRESHOLD && better {
                    best = Some((score, later, s, e));
                }
            }
        }
        best.map(|(score, _, s, e)| self.span(s, e, Method::Fuzzy, score))
    }

    /// `from..to` of the normalised text without the punctuation around it.
    fn trimmed(&self, mut from: usize, mut to: usize) -> (usize, usize) {
        let punct = |c: char| !c.is_alphanumeric() && !matches!(c, '%' | '$' | '€' | '£');
        while to > from + 1 && punct(self.norm[to - 1]) {
            to -= 1;
        }
        while from + 1 < to && punct(self.norm[from]) {
            from += 1;
        }
        (from, to)
    }

    /// Matches quotes made in reading order: each is looked for from where the previous one ended.
    pub fn attribute(&self, quotes: &[(String, String)]) -> Vec<QuoteMatch> {
        let mut after = 0;
        quotes
            .iter()
            .map(|(location, quote)| {
                let span = self.find(quote, after);
                if let Some(s) = span {
                    after = s.end;
                }
                QuoteMatch {
                    location: location.clone(),
                    quote: quote.clone(),
                    start: span.map(|s| s.start),
                    end: span.map(|s| s.end),
                    method: span.map(|s| s.method),
                    score: span.map(|s| s.score),
                }
            })
            .collect()
    }
}

/// The characters `start..end` of `text`.
pub fn slice_chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end.saturating_sub(start)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(news: &str, quote: &str) -> Option<(String, Method)> {
        Matcher::new(news).find(quote, 0).map(|s| (slice_chars(news, s.start, s.end), s.method))
    }

    #[test]
    fn exact_then_normalised_then_fuzzy() {
        let news = "The mayor said “taxes will fall by 20%” — critics disagree.\nOfficials  declined to comment.";
        assert_eq!(found(news, "critics disagree"), Some(("critics disagree".into(), Method::Exact)));
        // Straight quotes, other case, a hyphen for the dash.
        assert_eq!(
            found(news, "\"Taxes will fall by 20%\" - critics"),
            Some(("taxes will fall by 20%” — critics".into(), Method::Normalised))
        );
        // Across a sentence and line boundary with different whitespace.
        assert_eq!(
            found(news, "critics disagree. Officials declined"),
            Some(("critics disagree.\nOfficials  declined".into(), Method::Normalised))
        );
        // Single quotes for the news's double ones.
        assert_eq!(
            found(news, "the mayor said 'taxes will fall by 20%'"),
            Some(("The mayor said “taxes will fall by 20%".into(), Method::Normalised))
        );
        // Wrapped in quote marks and an ellipsis by the model.
        assert_eq!(
            found(news, "\"...officials declined to comment…\""),
            Some(("Officials  declined to comment".into(), Method::Normalised))
        );
        // One word changed: fuzzy.
        let (text, method) = found(news, "officials refused to comment").unwrap();
        assert_eq!((text.as_str(), method), ("Officials  declined to comment", Method::Fuzzy));
        // Not in the news.
        assert_eq!(found(news, "the moon landing was staged"), None);
        assert_eq!(found(news, ""), None);
        assert_eq!(found(news, "\"...\""), None);
    }

    #[test]
    fn unicode_spans_are_in_characters() {
        let news = "Café owners 😀 say prices in Zürich rose 5%.";
        let m = Matcher::new(news);
        let s = m.find("prices in Zürich", 0).unwrap();
        assert_eq!((s.start, s.end), (18, 34));
        assert_eq!(slice_chars(news, s.start, s.end), "prices in Zürich");
        let s = m.find("PRICES IN ZÜRICH ROSE", 0).unwrap();
        assert_eq!(slice_chars(news, s.start, s.end), "prices in Zürich rose");
        assert_eq!(s.method, Method::Normalised);
    }

    #[test]
    fn repeated_phrases_follow_reading_order() {
        let news = "The bill passed. Critics say the bill passed too fast. Supporters say the bill passed at last.";
        let m = Matcher::new(news);
        let quotes: Vec<(String, String)> = ["Critics say", "the bill passed", "the bill passed"]
            .iter()
            .enumerate()
            .map(|(i, q)| (format!("q[{i}]"), (*q).to_owned()))
            .collect();
        let matched = m.attribute(&quotes);
        let starts: Vec<usize> = matched.iter().map(|q| q.start.unwrap()).collect();
        assert_eq!(starts, [17, 29, 70], "{matched:?}");
        // Without an order hint, the first occurrence.
        assert_eq!(m.find("the bill passed", 0).unwrap().start, 29);
        assert_eq!(m.find("The bill passed", 0).unwrap().start, 0);
    }

    #[test]
    fn unsupported_quotes_are_marked() {
        let news = "Unemployment fell to 3.5 percent in May, the lowest in fifty years.";
        let m = Matcher::new(news);
        let quotes = vec![
            ("a".to_owned(), "the lowest in fifty years".to_owned()),
            ("b".to_owned(), "according to a secret report by NASA".to_owned()),
        ];
        let matched = m.attribute(&quotes);
        assert!(matched[0].supported());
        assert!(!matched[1].supported());
        assert_eq!((matched[1].start, matched[1].end, matched[1].method), (None, None, None));
    }

    #[test]
    fn levenshtein_distances() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(levenshtein(&c("kitten"), &c("sitting")), 3);
        assert_eq!(levenshtein(&c(""), &c("abc")), 3);
        assert_eq!(levenshtein(&c("flaw"), &c("flaw")), 0);
    }
}
