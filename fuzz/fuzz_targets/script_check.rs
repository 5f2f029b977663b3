//! Arbitrary text as an IVR script: the checker never panics, is deterministic, and places every
//! problem on a real line and column of the text.
#![no_main]

use callgate::ivr::script::{Env, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let first = check(text, Env::default());
    let lines = text.split('\n').count();
    for p in &first.problems {
        assert!(p.line >= 1 && p.col >= 1, "problem at {}:{}", p.line, p.col);
        assert!(p.line <= lines, "problem on line {} of {lines}", p.line);
        let line_chars = text.split('\n').nth(p.line - 1).map_or(0, |l| l.chars().count());
        assert!(p.col <= line_chars + 1, "problem at col {} of a {line_chars}-char line", p.col);
    }
    let again = check(text, Env::default());
    assert_eq!(first.problems, again.problems, "problems differ between two checks");
    assert_eq!(first.script.is_some(), again.script.is_some());
    if let (Some(a), Some(b)) = (&first.script, &again.script) {
        assert_eq!(
            serde_json::to_string(a).ok(),
            serde_json::to_string(b).ok(),
            "scripts differ between two checks"
        );
    }
});
