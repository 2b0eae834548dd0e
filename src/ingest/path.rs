//! Field paths of the generic JSON readers' column map: `claim.text`, `verdict.rating`, `questions[0].question`,
//! `questions[*].answers[*].answer`.
//!
//! A path is a key, then `.key`, `[N]` (the N-th element, from 0) or `[*]` (every element) steps. A key that exists
//! in an object exactly as written (dots and brackets included) is taken as that key first, so flat files whose
//! keys contain dots keep working.

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// A parsed field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FieldPath {
    raw: String,
    steps: Vec<Step>,
}

impl FieldPath {
    /// Parses a path; the message says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("field path '{raw}': {why}"));
        let mut steps = Vec::new();
        let mut key = String::new();
        let mut chars = raw.chars().peekable();
        let mut after_bracket = false;
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    if key.is_empty() && !after_bracket {
                        return bad("an empty key (two dots, or a dot at the start)");
                    }
                    if !key.is_empty() {
                        steps.push(Step::Key(std::mem::take(&mut key)));
                    }
                    after_bracket = false;
                    if chars.peek().is_none() {
                        return bad("a dot at the end");
                    }
                }
                '[' => {
                    if !key.is_empty() {
                        steps.push(Step::Key(std::mem::take(&mut key)));
                    } else if steps.is_empty() {
                        return bad("it starts with '[': name a key first");
                    }
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some(']') => break,
                            Some(c) => inner.push(c),
                            None => return bad("a '[' is not closed"),
                        }
                    }
                    let inner = inner.trim();
                    if inner == "*" {
                        steps.push(Step::All);
                    } else {
                        match inner.parse::<usize>() {
                            Ok(i) => steps.push(Step::Index(i)),
                            Err(_) => return bad("write [N] for the N-th element (from 0) or [*] for every element"),
                        }
                    }
                    after_bracket = true;
                }
                ']' => return bad("a ']' without its '['"),
                c => {
                    if after_bracket && key.is_empty() && !steps.is_empty() {
                        // `a[0]b` would silently read `a[0].b`; make the dot explicit.
                        if !matches!(steps.last(), Some(Step::Key(_))) {
                            return bad("write a '.' between ']' and the next key");
                        }
                    }
                    key.push(c);
                }
            }
        }
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        if steps.is_empty() {
            return bad("it is empty");
        }
        Ok(Self { raw: raw.to_string(), steps })
    }

    /// The top-level key the path starts from (the whole path when the object has it as a key).
    pub fn top_key<'a>(&'a self, obj: &Map<String, Value>) -> &'a str {
        if obj.contains_key(&self.raw) {
            return &self.raw;
        }
        match &self.steps[0] {
            Step::Key(k) => k,
            _ => &self.raw,
        }
    }

    /// True when the object has the path's top-level key.
    pub fn starts_in(&self, obj: &Map<String, Value>) -> bool {
        obj.contains_key(self.top_key(obj))
    }

    /// Every value the path reaches, in document order. A missing key or an index past the end reaches nothing;
    /// `null`s are skipped. An error names the step that cannot apply (a key on a string, `[*]` on an object).
    pub fn values<'a>(&self, obj: &'a Map<String, Value>) -> Result<Vec<&'a Value>, String> {
        if let Some(v) = obj.get(&self.raw) {
            return Ok(if v.is_null() { vec![] } else { vec![v] });
        }
        let Step::Key(first) = &self.steps[0] else { unreachable!("parse makes the first step a key") };
        let mut current: Vec<&Value> = obj.get(first).into_iter().collect();
        let mut walked = first.clone();
        for step in &self.steps[1..] {
            let mut next = Vec::new();
            for v in current {
                match (step, v) {
                    (_, Value::Null) => {}
                    (Step::Key(k), Value::Object(o)) => next.extend(o.get(k)),
                    (Step::Index(i), Value::Array(a)) => next.extend(a.get(*i)),
                    (Step::All, Value::Array(a)) => next.extend(a.iter()),
                    (Step::Key(k), other) => {
                        return Err(format!(
                            "'{}': '{walked}' is {}, so it has no key '{k}'",
                            self.raw,
                            kind_of(other)
                        ));
                    }
                    (_, other) => {
                        return Err(format!("'{}': '{walked}' is {}, not an array", self.raw, kind_of(other)));
                    }
                }
            }
            walked.push_str(&match step {
                Step::Key(k) => format!(".{k}"),
                Step::Index(i) => format!("[{i}]"),
                Step::All => "[*]".to_string(),
            });
            current = next;
        }
        Ok(current.into_iter().filter(|v| !v.is_null()).collect())
    }

    /// The text the path reaches: every scalar, arrays of scalars flattened, joined with `sep`; `None` when there
    /// is none or all are empty. An object is an error (name a field inside it).
    pub fn text(&self, obj: &Map<String, Value>, sep: &str) -> Result<Option<String>, String> {
        let mut parts = Vec::new();
        for v in self.values(obj)? {
            collect_scalars(&self.raw, v, &mut parts)?;
        }
        let parts: Vec<String> = parts.into_iter().filter(|p| !p.trim().is_empty()).collect();
        Ok((!parts.is_empty()).then(|| parts.iter().map(|p| p.trim()).collect::<Vec<_>>().join(sep)))
    }

    /// The one scalar the path reaches, or `None`; several values are an error (pick one with `[N]`).
    pub fn scalar(&self, obj: &Map<String, Value>) -> Result<Option<String>, String> {
        let mut parts = Vec::new();
        for v in self.values(obj)? {
            collect_scalars(&self.raw, v, &mut parts)?;
        }
        let parts: Vec<String> = parts.into_iter().filter(|p| !p.trim().is_empty()).collect();
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.into_iter().next().map(|p| p.trim().to_string())),
            n => Err(format!("'{}' gives {n} values where one is needed; pick one with [N]", self.raw)),
        }
    }
}

fn collect_scalars(path: &str, v: &Value, out: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::Null => {}
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(a) => {
            for x in a {
                collect_scalars(path, x, out)?;
            }
        }
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(8).collect();
            return Err(format!(
                "'{path}' is an object; name a field inside it ({path}.FIELD; its keys: {})",
                keys.join(", ")
            ));
        }
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn paths_parse_and_refuse_what_they_cannot_read() {
        assert!(FieldPath::parse("a.b[0].c[*]").is_ok());
        for (bad, needle) in [
            ("", "empty"),
            ("a..b", "empty key"),
            (".a", "empty key"),
            ("a.", "dot at the end"),
            ("[0]", "starts with '['"),
            ("a[", "not closed"),
            ("a[x]", "[N]"),
            ("a]", "without its"),
            ("a[0]b", "'.' between"),
        ] {
            let e = FieldPath::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn nested_fields_arrays_and_literal_keys() {
        let o = obj(json!({
            "claim": {"text": "The moon is cheese.", "author": null},
            "verdict": {"rating": "False"},
            "questions": [
                {"question": "Is it?", "answers": [{"answer": "No"}, {"answer": "Never"}]},
                {"question": "Why?", "answers": [{"answer": "Rock"}]}
            ],
            "tags": ["a", "b"],
            "a.b": "literal"
        }));
        let p = |s: &str| FieldPath::parse(s).unwrap();
        assert_eq!(p("claim.text").scalar(&o).unwrap().as_deref(), Some("The moon is cheese."));
        assert_eq!(p("claim.author").scalar(&o).unwrap(), None);
        assert_eq!(p("claim.missing").scalar(&o).unwrap(), None);
        assert_eq!(p("verdict.rating").scalar(&o).unwrap().as_deref(), Some("False"));
        assert_eq!(p("questions[1].question").scalar(&o).unwrap().as_deref(), Some("Why?"));
        assert_eq!(p("questions[5].question").scalar(&o).unwrap(), None);
        assert_eq!(p("questions[*].answers[*].answer").text(&o, "\n").unwrap().as_deref(), Some("No\nNever\nRock"));
        assert_eq!(p("tags").text(&o, "; ").unwrap().as_deref(), Some("a; b"));
        assert_eq!(p("a.b").scalar(&o).unwrap().as_deref(), Some("literal"));
        let e = p("questions[*].question").scalar(&o).unwrap_err();
        assert!(e.contains("gives 2 values"), "{e}");
        let e = p("claim").text(&o, " ").unwrap_err();
        assert!(e.contains("is an object; name a field inside it (claim.FIELD"), "{e}");
        let e = p("verdict.rating.x").scalar(&o).unwrap_err();
        assert!(e.contains("'verdict.rating' is a string, so it has no key 'x'"), "{e}");
        let e = p("claim[0]").scalar(&o).unwrap_err();
        assert!(e.contains("'claim' is an object, not an array"), "{e}");
        assert_eq!(p("questions[0].answers").top_key(&o), "questions");
        assert!(p("a.b").starts_in(&o) && !p("nope.x").starts_in(&o));
    }
}
