//! Speech routing: what a caller said (`SpeechResult`) → a department. Words are normalised so
//! that Polish inflection and lost diacritics do not matter ("fakturę", "faktury", "faktura"
//! and "fakture" are one stem), then a multinomial naive Bayes model scores each department.
//! The model starts from the phrases a script lists per department and learns from the
//! categories agents confirm (`callgate routing train`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Folds Polish (and common Western) diacritics to ASCII and lowercases.
fn fold(c: char) -> char {
    match c {
        'ą' | 'Ą' | 'á' | 'à' | 'â' | 'ä' => 'a',
        'ć' | 'Ć' | 'č' | 'ç' => 'c',
        'ę' | 'Ę' | 'é' | 'è' | 'ê' | 'ë' => 'e',
        'ł' | 'Ł' => 'l',
        'ń' | 'Ń' | 'ñ' => 'n',
        'ó' | 'Ó' | 'ö' | 'ô' => 'o',
        'ś' | 'Ś' | 'š' => 's',
        'ź' | 'Ź' | 'ż' | 'Ż' | 'ž' => 'z',
        'í' | 'ï' => 'i',
        'ú' | 'ü' => 'u',
        c => c.to_ascii_lowercase(),
    }
}

/// Polish and English endings, longest first. Stripping them leaves a stem that the inflected
/// forms of one word share; a stem keeps at least four letters so short words stay distinct.
const SUFFIXES: &[&str] = &[
    "owania", "owanie", "ami", "ach", "ego", "emu", "owi", "owa", "owe", "ych", "ymi", "imi",
    "iem", "ing", "ies", "ied", "ion", "ions", "ness", "ment", "ies", "es", "ed", "ly", "om", "ow",
    "ej", "em", "ie", "ia", "iu", "y", "i", "a", "e", "u", "o", "s", "ę", "ą", "ow", "mi", "ym",
    "im",
];
const MIN_STEM: usize = 4;

/// A word reduced to its stem.
pub fn stem(word: &str) -> String {
    let mut w: String = word.chars().map(fold).collect();
    // Two passes catch stacked endings ("rachunkami" → "rachunk").
    for _ in 0..2 {
        let found = SUFFIXES
            .iter()
            .map(|s| s.chars().map(fold).collect::<String>())
            .filter(|s| w.ends_with(s.as_str()) && w.len() - s.len() >= MIN_STEM)
            .max_by_key(String::len);
        match found {
            Some(s) => w.truncate(w.len() - s.len()),
            None => break,
        }
    }
    // Consonant alternation of the locative: "fakturze" → "faktur", "routerze" → "router".
    if w.ends_with("rz") && w.len() > MIN_STEM {
        w.pop();
    }
    w
}

/// Words that say nothing about the department.
const STOP: &[&str] = &[
    "i",
    "a",
    "w",
    "z",
    "na",
    "do",
    "sie",
    "nie",
    "to",
    "jest",
    "mam",
    "moj",
    "moja",
    "moje",
    "chce",
    "chcialbym",
    "chcialabym",
    "prosze",
    "o",
    "the",
    "an",
    "my",
    "i'm",
    "im",
    "to",
    "with",
    "is",
    "of",
    "for",
    "and",
    "want",
    "would",
    "like",
    "please",
    "have",
    "need",
    "about",
    "in",
    "it",
    "me",
];

/// Stems of words every caller says whatever the matter ("dzwonię w sprawie", "a question").
const STOP_STEMS: &[&str] = &[
    "spraw", "dzwon", "dzwoni", "pytan", "zapyta", "zapytac", "chcial", "halo", "dzien", "dobry",
    "call", "calling", "question", "hello", "hell", "thank", "thanks",
];

/// The stems of an utterance, without stop words.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().map(fold).collect::<String>())
        .filter(|w| !STOP.contains(&w.as_str()) && w.len() > 1)
        .map(|w| stem(&w))
        .filter(|s| !STOP_STEMS.contains(&s.as_str()))
        .collect()
}

/// Lidstone smoothing: small, because seed phrases are few and each word in them is strong
/// evidence (add-one smoothing left one matching word at a 55 % posterior among three).
const ALPHA: f64 = 0.1;

/// Multinomial naive Bayes over stems.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Model {
    /// Department → stem → count.
    counts: BTreeMap<String, BTreeMap<String, u32>>,
    /// Department → examples seen (the prior).
    examples: BTreeMap<String, u32>,
}

/// The classifier's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub department: String,
    /// The posterior probability of that department among those offered, 0-1.
    pub probability: f64,
}

impl Model {
    pub fn learn(&mut self, department: &str, text: &str) {
        let words = tokens(text);
        if words.is_empty() {
            return;
        }
        *self.examples.entry(department.to_owned()).or_default() += 1;
        let counts = self.counts.entry(department.to_owned()).or_default();
        for w in words {
            *counts.entry(w).or_default() += 1;
        }
    }

    /// Adds another model's counts (the learned model on top of a script's phrases).
    pub fn merge(&mut self, other: &Model) {
        for (d, n) in &other.examples {
            *self.examples.entry(d.clone()).or_default() += n;
        }
        for (d, counts) in &other.counts {
            let mine = self.counts.entry(d.clone()).or_default();
            for (w, n) in counts {
                *mine.entry(w.clone()).or_default() += n;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The most probable of `offered` departments, or `None` when the utterance holds no word
    /// the model knows (a guess from priors alone would route noise).
    pub fn classify(&self, text: &str, offered: &[&str]) -> Option<Verdict> {
        let words = tokens(text);
        let vocabulary: usize = {
            let mut all: Vec<&String> = self.counts.values().flat_map(|c| c.keys()).collect();
            all.sort();
            all.dedup();
            all.len().max(1)
        };
        // Words no department knows say nothing; scoring them would only favour departments
        // with fewer examples.
        let words: Vec<&String> = words
            .iter()
            .filter(|w| self.counts.values().any(|c| c.contains_key(*w)))
            .collect();
        if words.is_empty() || offered.is_empty() {
            return None;
        }
        let total_examples: u32 = offered
            .iter()
            .map(|d| self.examples.get(*d).copied().unwrap_or(0) + 1)
            .sum();
        let mut scores: HashMap<&str, f64> = HashMap::new();
        for d in offered {
            let counts = self.counts.get(*d);
            let total: u32 = counts.map_or(0, |c| c.values().sum());
            let prior = f64::from(self.examples.get(*d).copied().unwrap_or(0) + 1)
                / f64::from(total_examples);
            let mut log = prior.ln();
            for w in &words {
                let n = counts.and_then(|c| c.get(*w)).copied().unwrap_or(0);
                log +=
                    ((f64::from(n) + ALPHA) / (f64::from(total) + ALPHA * vocabulary as f64)).ln();
            }
            scores.insert(d, log);
        }
        // Softmax of the log scores: the posterior among the departments offered.
        let max = scores.values().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scores.values().map(|s| (s - max).exp()).sum();
        let (best, score) = scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        Some(Verdict {
            department: (*best).to_owned(),
            probability: (score - max).exp() / sum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflected_and_diacritic_free_forms_share_a_stem() {
        let faktura = stem("faktura");
        for form in [
            "fakturę",
            "faktury",
            "fakturze",
            "fakture",
            "FAKTURA",
            "fakturami",
        ] {
            assert_eq!(stem(form), faktura, "{form}");
        }
        assert_eq!(stem("płatność"), stem("platnosci"));
        assert_eq!(
            tokens("Mam problem z fakturą"),
            vec![stem("problem"), faktura.clone()]
        );
    }

    fn model() -> Model {
        let mut m = Model::default();
        for p in [
            "faktura",
            "rachunek",
            "płatność",
            "opłata",
            "invoice",
            "bill",
            "payment",
        ] {
            m.learn("billing", p);
        }
        for p in [
            "internet nie działa",
            "awaria",
            "router",
            "internet",
            "outage",
            "router broken",
        ] {
            m.learn("technical", p);
        }
        m
    }

    #[test]
    fn routes_polish_and_english_utterances() {
        let m = model();
        let offered = ["billing", "technical"];
        for (said, want) in [
            ("chciałbym zapytać o fakturę", "billing"),
            ("faktury za październik", "billing"),
            ("fakture prosze", "billing"),
            ("płatności", "billing"),
            ("platnosc", "billing"),
            ("nie działa mi internet", "technical"),
            ("mam awarię routera", "technical"),
            ("my internet is down", "technical"),
            ("question about my bill", "billing"),
        ] {
            let v = m
                .classify(said, &offered)
                .unwrap_or_else(|| panic!("{said}"));
            assert_eq!(v.department, want, "{said}: {v:?}");
            assert!(v.probability > 0.5, "{said}: {v:?}");
        }
        assert_eq!(
            m.classify("dzień dobry", &offered),
            None,
            "no known word: no guess"
        );
    }
}
