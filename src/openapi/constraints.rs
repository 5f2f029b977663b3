//! What the handlers' annotations do not say, added to the generated description in one place:
//!
//! - the statuses answered before a handler runs: the refusals of the JSON API's extractors
//!   (`crate::api::extract`: 400, 415, 422), of the body intake (`crate::intake`: 408, 413, 429)
//!   and of the in-flight limit and the request timeout (503);
//! - every rule the server checks a value against (the parsers in `crate::domain`, the
//!   handlers' own checks), as JSON Schema: patterns, lengths, bounds, which fields one of
//!   which must be given.
//!
//! The patterns restate the parsers' rules; the tests below hold each pattern to its parser on
//! generated input, so the two cannot drift apart unnoticed. Where the server trims a value
//! before checking it, the pattern allows the whitespace `str::trim` removes around it.
//!
//! What JSON Schema cannot state is said in words (and the conformance run's configuration,
//! `.ci/schemathesis.toml`, names it): a phone number valid by the numbering plan (format
//! `phone`), a script that passes the checker, a report period's `from` before its `to`.

use serde_json::{Map, Value, json};

/// Whitespace as `str::trim` reads it (Unicode White_Space), as the body of a regex class.
const WS: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`), as the body of a regex class.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// A character that is neither a control character nor whitespace.
const VISIBLE: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// `AccountId::parse`.
const ACCOUNT_ID: &str = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
/// `AttributeKey::parse`.
const ATTRIBUTE_KEY: &str = "[A-Za-z0-9_.-]{1,40}";
/// `CallSid::parse`.
const CALL_SID: &str = "[A-Za-z0-9_-]{2,64}";
/// One department of `users::parse_departments` (any case; empty parts are skipped).
const DEPARTMENT_PART: &str = "[A-Za-z0-9_-]{0,32}";
/// A knowledge question of `POST /api/accounts`: `QuestionId::parse`, the checker's identifier
/// rule (a question no script can ask, such as `1dob`, is refused).
const KNOWLEDGE_QUESTION: &str = "[a-z][a-z0-9_-]{0,39}";
/// A knowledge answer: digits as typed on a keypad.
const KNOWLEDGE_ANSWER: &str = "[0-9]{1,20}";
/// The keys of the simulator's keypad.
const KEYPAD: &str = "[0-9*#]{0,32}";
/// The largest script source the API takes (`admin::scripts`), in bytes.
const MAX_SOURCE_BYTES: u64 = 60 * 1024;

fn exact(inner: &str) -> String {
    format!("^{inner}$")
}

/// A value the server trims before checking it.
fn trimmed(inner: &str) -> String {
    format!("^[{WS}]*{inner}[{WS}]*$")
}

/// Printable text of 1 to `max` characters once trimmed: no control characters.
fn text(max: usize) -> String {
    format!(
        "{VISIBLE}(?:[^{CONTROL}]{{0,{}}}{VISIBLE})?",
        max.saturating_sub(2)
    )
}

/// `users::parse_departments` of a comma-separated list.
fn department_list() -> String {
    let part = format!("[{WS}]*{DEPARTMENT_PART}[{WS}]*");
    format!("^{part}(?:,{part})*$")
}

/// An account code as `POST /api/accounts` reads it: 6-12 digits, or nothing (empty or blank).
fn optional_code() -> String {
    format!("^[{WS}]*(?:[0-9]{{6,12}}[{WS}]*)?$")
}

/// What a number of a `u32` parameter may be.
fn u32_bounds() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })
}

/// Adds every constraint to the description.
pub fn refine(doc: &mut Value) {
    refused_before_the_handler(doc);
    people(doc);
    scripts(doc);
    simulator(doc);
    agent(doc);
    reports(doc);
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The statuses of `crate::api::extract`, `crate::intake` and the layers of `crate::startup`,
/// on every operation they can answer.
fn refused_before_the_handler(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let media: Vec<String> = op
                .get("requestBody")
                .and_then(|b| b.get("content"))
                .and_then(Value::as_object)
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            let has_parameters = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" || p["in"] == "query"));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            // A body taken by the `Json` extractor (JSON its only media type).
            if media == ["application/json"] {
                respond(
                    responses,
                    400,
                    "The body is not JSON; `error` says where it stopped.",
                );
                respond(
                    responses,
                    415,
                    "The body is not sent as `Content-Type: application/json`.",
                );
                respond(
                    responses,
                    422,
                    "The JSON does not have the body's shape (a missing field, a value of the wrong type); `error` says which.",
                );
            }
            if has_parameters {
                respond(
                    responses,
                    400,
                    "A path or query parameter does not parse (not a number, not UTF-8); `error` says which.",
                );
            }
            if !media.is_empty() {
                respond(
                    responses,
                    408,
                    "The body did not arrive within `--body-read-timeout`.",
                );
                respond(responses, 413, "The body is larger than 64 KiB.");
                respond(
                    responses,
                    429,
                    "Too many unfinished bodies from this address at once (`--max-body-reads-per-address`).",
                );
            }
            respond(
                responses,
                503,
                "Overloaded (`--max-in-flight` requests at once), or not answered within 10 s.",
            );
        }
    }
}

/// Documents `status` with the JSON error body; a status already documented keeps its own
/// words, with these added.
fn respond(responses: &mut Map<String, Value>, status: u16, why: &str) {
    let key = status.to_string();
    match responses.get_mut(&key) {
        Some(existing) => {
            let said = existing["description"].as_str().unwrap_or_default();
            if !said.contains(why) {
                existing["description"] = Value::String(format!("{said} Or: {why}"));
            }
            if existing.get("content").is_none() {
                existing["content"] = error_body();
            }
        }
        None => {
            responses.insert(key, json!({ "description": why, "content": error_body() }));
        }
    }
}

fn error_body() -> Value {
    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } })
}

fn people(doc: &mut Value) {
    refine_parameter(
        doc,
        "/api/accounts",
        "get",
        "limit",
        u32_bounds(),
        "At most this many accounts (default 100); above 500 counts as 500, 0 as 1.",
    );
    refine_parameter(
        doc,
        "/api/accounts",
        "get",
        "q",
        json!({ "type": "string" }),
        "A part of the name, id or phone (its first 64 characters, trimmed).",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "id",
        json!({ "pattern": trimmed(ACCOUNT_ID) }),
        "1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit (surrounding whitespace is trimmed).",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "name",
        json!({ "pattern": trimmed(&text(200)) }),
        "1-200 characters once trimmed, no control characters.",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "phone",
        json!({ "format": "phone", "maxLength": 40 }),
        "A phone number valid by the numbering plan, at most 40 characters: E.164 (`+48601555777`), or \
         national (`601 555 777`), read in the server's region (`--region`).",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "code",
        json!({ "pattern": optional_code() }),
        "The permanent account code: 6-12 digits; absent, null, empty or blank for none. A code another \
         account has is refused with 409.",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "attributes",
        json!({
            "maxProperties": 32,
            "propertyNames": { "type": "string", "pattern": exact(ATTRIBUTE_KEY) },
            "additionalProperties": { "type": "string", "pattern": format!("^[^{CONTROL}]{{0,200}}$") },
        }),
        "At most 32 attributes: keys of 1-40 letters, digits, `_`, `-` or `.`; values of at most 200 \
         characters, no control characters.",
    );
    refine_property(
        doc,
        "NewAccountBody",
        "knowledge",
        json!({
            "maxProperties": 16,
            "propertyNames": { "type": "string", "pattern": trimmed(KNOWLEDGE_QUESTION) },
            "additionalProperties": { "type": "string", "pattern": exact(KNOWLEDGE_ANSWER) },
        }),
        "At most 16 knowledge answers, question → digits as typed on a keypad (`{\"dob\": \"14031985\"}`): \
         questions of 1-40 lowercase letters, digits, `-` or `_`, starting with a letter (as a script's \
         `question` is named); answers of 1-20 digits.",
    );
    for (path, method) in [
        ("/api/accounts/{id}", "delete"),
        ("/api/accounts/{id}/unlock", "post"),
    ] {
        refine_parameter(
            doc,
            path,
            method,
            "id",
            json!({ "type": "string", "pattern": exact(ACCOUNT_ID) }),
            "The account id (1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit).",
        );
    }
    refine_property(
        doc,
        "NewUserBody",
        "name",
        json!({ "pattern": trimmed(&text(64)) }),
        "1-64 characters once trimmed, no control characters; unique (409 otherwise).",
    );
    refine_property(
        doc,
        "NewUserBody",
        "role",
        json!({ "pattern": trimmed("(?:agent|admin)") }),
        "`agent` or `admin`.",
    );
    refine_property(
        doc,
        "NewUserBody",
        "departments",
        json!({ "items": { "type": "string", "pattern": department_list() } }),
        "The departments an agent serves (none: all): entries each a name or a comma-separated list of \
         names of up to 32 letters, digits, `_` or `-` (read in lowercase; empty parts are skipped and a \
         name given twice counts once); at most 32 departments in all, however many entries name them \
         (400 otherwise).",
    );
}

fn scripts(doc: &mut Value) {
    let source = format!(
        "The script's TOML text, at most {MAX_SOURCE_BYTES} bytes (60 KiB); saved or published, it must \
         pass the checker (422 with every problem otherwise)."
    );
    refine_property(
        doc,
        "SourceBody",
        "source",
        json!({ "maxLength": MAX_SOURCE_BYTES }),
        &source,
    );
    for (path, method) in [
        ("/api/scripts/check", "post"),
        ("/api/scripts/{name}", "put"),
    ] {
        let body = &mut operation(doc, path, method)["requestBody"];
        for media in ["application/toml", "text/plain"] {
            merge(
                &mut body["content"][media]["schema"],
                json!({ "maxLength": MAX_SOURCE_BYTES, "description": source }),
            );
        }
    }
    // The live check takes an empty body too (an empty script, with its problems).
    operation(doc, "/api/scripts/check", "post")["requestBody"]["required"] = json!(false);
    refine_parameter(
        doc,
        "/api/audit",
        "get",
        "limit",
        u32_bounds(),
        "At most this many entries (default 100); above 1000 counts as 1000, 0 as 1.",
    );
}

fn simulator(doc: &mut Value) {
    // A draft (`source`) or a saved script (`script`): one of them, as a string.
    merge(
        schema(doc, "StartBody"),
        json!({
            "anyOf": [
                { "required": ["source"], "properties": { "source": { "type": "string" } } },
                { "required": ["script"], "properties": { "script": { "type": "string" } } },
            ]
        }),
    );
    refine_property(
        doc,
        "StartBody",
        "source",
        json!({}),
        "A draft to run (unsaved text from the editor); it must pass the checker (422 otherwise). \
         Either `source` or `script` is required.",
    );
    refine_property(
        doc,
        "StartBody",
        "script",
        json!({}),
        "... or a saved script (404 if there is none): its published version, or `version`.",
    );
    refine_property(
        doc,
        "StepBody",
        "digits",
        json!({ "pattern": exact(KEYPAD) }),
        "Keys pressed, up to 32 of 0-9, `*` and `#` (`#` ends a code entry, as on the phone); absent = the \
         caller stays silent.",
    );
}

fn agent(doc: &mut Value) {
    for (path, method) in [
        ("/api/calls/{call_sid}", "get"),
        ("/api/calls/{call_sid}/journey", "get"),
        ("/api/calls/{call_sid}/outcome", "post"),
    ] {
        refine_parameter(
            doc,
            path,
            method,
            "call_sid",
            json!({ "type": "string", "pattern": exact(CALL_SID) }),
            "The call's CallSid (Twilio's are `CA` and 32 hex digits; 2-64 letters, digits, `-` or `_`).",
        );
    }
    refine_property(
        doc,
        "OutcomeForm",
        "category",
        json!({ "pattern": trimmed("[A-Za-z0-9_-]{1,32}") }),
        "The department the call really was for: one name of up to 32 letters, digits, `_` or `-` (read in \
         lowercase).",
    );
    refine_property(
        doc,
        "OutcomeForm",
        "note",
        json!({ "maxLength": 2000 }),
        "The agent's note, at most 2000 characters once trimmed.",
    );
    refine_property(
        doc,
        "VisibleAttributes",
        "attributes",
        json!({ "items": { "type": "string", "pattern": trimmed(ATTRIBUTE_KEY) } }),
        "The keys agents see (1-40 letters, digits, `_`, `-` or `.`); `null` for every attribute.",
    );
    // A reconnecting browser sends what it has: a value that is not an event number is
    // ignored, not refused.
    let lenient = json!({ "anyOf": [
        { "type": "integer", "format": "int64", "minimum": 0 },
        { "type": "string" },
    ] });
    refine_parameter(
        doc,
        "/api/agent/events",
        "get",
        "since",
        lenient.clone(),
        "The first connection's starting point (the queue's `last_seq`); a reconnection's `Last-Event-ID` \
         takes precedence. Anything but a non-negative integer is ignored.",
    );
    refine_parameter(
        doc,
        "/api/agent/events",
        "get",
        "Last-Event-ID",
        lenient,
        "The last event received, when reconnecting. Anything but a non-negative integer is ignored.",
    );
}

fn reports(doc: &mut Value) {
    let names: Vec<&str> = crate::reports::NAMES.iter().map(|(n, _)| *n).collect();
    refine_parameter(
        doc,
        "/api/reports/{name}",
        "get",
        "name",
        json!({ "type": "string", "enum": names }),
        "The report's name, from `GET /api/reports`.",
    );
    let moment = json!({ "anyOf": [
        { "type": "string", "format": "date" },
        { "type": "string", "format": "date-time" },
    ] });
    refine_parameter(
        doc,
        "/api/reports/{name}",
        "get",
        "from",
        moment.clone(),
        "`YYYY-MM-DD` (the start of that day, UTC) or RFC 3339; default: 7 days before `to`. It must be \
         before `to`, at most 400 days before it (400 otherwise).",
    );
    refine_parameter(
        doc,
        "/api/reports/{name}",
        "get",
        "to",
        moment,
        "Exclusive; `YYYY-MM-DD` (the end of that day, UTC) or RFC 3339. Default: now.",
    );
    refine_parameter(
        doc,
        "/api/reports/{name}",
        "get",
        "table",
        json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }),
        "With `format=csv`: which table, from 0 (default 0; 404 past the last).",
    );
}

/// The named schema of `components`. The names are the code's: a missing one is a bug the
/// tests catch, never something a request causes.
fn schema<'a>(doc: &'a mut Value, name: &str) -> &'a mut Value {
    doc.pointer_mut(&format!("/components/schemas/{name}"))
        .filter(|s| s.is_object())
        .unwrap_or_else(|| panic!("the description has no schema {name}"))
}

fn operation<'a>(doc: &'a mut Value, path: &str, method: &str) -> &'a mut Value {
    doc.get_mut("paths")
        .and_then(|p| p.get_mut(path))
        .and_then(|p| p.get_mut(method))
        .filter(|op| op.is_object())
        .unwrap_or_else(|| panic!("the description has no operation {method} {path}"))
}

/// Adds `constraints` to a property's schema and replaces its description.
fn refine_property(
    doc: &mut Value,
    schema_name: &str,
    property: &str,
    constraints: Value,
    why: &str,
) {
    let target = schema(doc, schema_name)
        .get_mut("properties")
        .and_then(|p| p.get_mut(property))
        .unwrap_or_else(|| panic!("the schema {schema_name} has no property {property}"));
    merge(target, constraints);
    target["description"] = Value::String(why.to_owned());
}

/// Replaces a parameter's schema and description.
fn refine_parameter(
    doc: &mut Value,
    path: &str,
    method: &str,
    name: &str,
    parameter_schema: Value,
    why: &str,
) {
    let parameter = operation(doc, path, method)
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .and_then(|ps| ps.iter_mut().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    parameter["schema"] = parameter_schema;
    parameter["description"] = Value::String(why.to_owned());
}

/// Sets every key of `add` on the object `target`.
fn merge(target: &mut Value, add: Value) {
    if !target.is_object() {
        *target = json!({});
    }
    if let (Some(target), Value::Object(add)) = (target.as_object_mut(), add) {
        target.extend(add);
    }
}

#[cfg(test)]
mod tests {
    //! Each pattern against the rule it restates, on generated strings made of the characters
    //! the rules are about (edges of the classes, whitespace that trims and whitespace that
    //! does not, control characters, non-ASCII letters).

    use super::*;
    use crate::domain::{AccountCode, AccountId, AccountName, AttributeKey, CallSid};
    use proptest::prelude::*;

    /// The pattern as JSON Schema validators read it: Rust's `regex` and ECMA 262 agree on
    /// these (explicit classes, `\uXXXX` escapes, `^`/`$` at the ends of the text).
    fn compile(pattern: &str) -> regex::Regex {
        regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    /// Strings of the characters the rules are about, up to `max` of them.
    fn tricky(max: usize) -> impl Strategy<Value = String> {
        let chars = prop_oneof![
            4 => proptest::char::range('a', 'z'),
            2 => proptest::char::range('0', '9'),
            1 => proptest::char::range('A', 'Z'),
            1 => proptest::sample::select(vec![
                '-', '_', '.', ',', '*', '#', ':', '+', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}',
                '\u{0}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}', '\u{1680}', '\u{2000}',
                '\u{200a}', '\u{200b}', '\u{2028}', '\u{202f}', '\u{3000}', '\u{feff}', 'é', 'ł',
                'Ω', '\u{1f600}',
            ]),
        ];
        proptest::collection::vec(chars, 0..=max).prop_map(|v| v.into_iter().collect())
    }

    /// Lengths around the limits, with a long run of one safe character.
    fn long(c: char, around: usize) -> impl Strategy<Value = String> {
        (around.saturating_sub(3)..=around + 3, tricky(3), tricky(3))
            .prop_map(move |(n, a, b)| format!("{a}{}{b}", c.to_string().repeat(n)))
    }

    fn departments_ok(list: &str) -> bool {
        crate::store::users::parse_departments(list).is_ok()
    }

    /// The use case's reading of a user name (`usecases::users::ValidUser`).
    fn user_name_ok(name: &str) -> bool {
        crate::usecases::users::ValidUser::parse(name, "agent", &[]).is_ok()
    }

    /// The use case's reading of a knowledge question: trimmed, then `QuestionId::parse`.
    fn question_ok(q: &str) -> bool {
        crate::domain::QuestionId::parse(q.trim()).is_ok()
    }

    fn attribute_value_ok(v: &str) -> bool {
        v.chars().count() <= 200 && !v.chars().any(char::is_control)
    }

    fn code_ok(c: &str) -> bool {
        let c = c.trim();
        c.is_empty() || AccountCode::parse(c).is_ok()
    }

    fn outcome_category_ok(c: &str) -> bool {
        crate::store::users::parse_departments(c).is_ok_and(|l| l.len() == 1)
    }

    /// Each pattern (compiled once: the long bounded repetitions are slow to build) with the
    /// rule it restates.
    type Rule = fn(&str) -> bool;

    static RULES: std::sync::LazyLock<Vec<(regex::Regex, Rule)>> = std::sync::LazyLock::new(|| {
        let rules: Vec<(String, Rule)> = vec![
            (trimmed(ACCOUNT_ID), |s| AccountId::parse(s.trim()).is_ok()),
            (exact(ACCOUNT_ID), |s| AccountId::parse(s).is_ok()),
            (trimmed(&text(200)), |s| AccountName::parse(s).is_ok()),
            (optional_code(), code_ok),
            (exact(ATTRIBUTE_KEY), |s| AttributeKey::parse(s).is_ok()),
            (trimmed(ATTRIBUTE_KEY), |s| {
                AttributeKey::parse(s.trim()).is_ok()
            }),
            (format!("^[^{CONTROL}]{{0,200}}$"), attribute_value_ok),
            (trimmed(KNOWLEDGE_QUESTION), question_ok),
            (exact(KNOWLEDGE_ANSWER), |s| {
                (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
            }),
            (exact(CALL_SID), |s| CallSid::parse(s).is_ok()),
            (trimmed(&text(64)), user_name_ok),
            (trimmed("(?:agent|admin)"), |s| {
                crate::store::users::Role::parse(s.trim()).is_some()
            }),
            (department_list(), departments_ok),
            (exact(KEYPAD), |s| {
                s.len() <= 32
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            }),
        ];
        rules
            .into_iter()
            .map(|(p, rule)| (compile(&p), rule))
            .collect()
    });

    fn check(s: &str) -> Result<(), TestCaseError> {
        for (pattern, rule) in RULES.iter() {
            prop_assert_eq!(pattern.is_match(s), rule(s), "{} on {:?}", pattern, s);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_pattern_says_what_its_rule_checks(s in tricky(12)) {
            check(&s)?;
        }

        #[test]
        fn the_length_limits_match(
            a in long('a', 200),
            b in long('b', 64),
            c in long('1', 40),
            d in long('d', 32),
            e in long('7', 12),
            f in long('c', 20),
        ) {
            for s in [a, b, c, d, e, f] {
                check(&s)?;
            }
        }
    }

    /// The outcome's category is described as one department name; the rule also takes a
    /// list naming one department several times or with empty parts, which the pattern does
    /// not mention (an edge no client means).
    #[test]
    fn an_outcome_category_pattern_value_is_always_accepted() {
        let pattern = compile(&trimmed("[A-Za-z0-9_-]{1,32}"));
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&tricky(12), |s| {
                if pattern.is_match(&s) {
                    prop_assert!(outcome_category_ok(&s), "{:?}", s);
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn every_refinement_finds_its_target() {
        // `json()` panics on a schema, operation, property or parameter that is not there.
        let doc: Value = serde_json::from_str(&super::super::json()).unwrap();
        assert_eq!(
            doc["paths"]["/api/accounts"]["post"]["responses"]["415"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(
            doc["components"]["schemas"]["NewAccountBody"]["properties"]["id"]["pattern"]
                .is_string()
        );
    }
}
