//! The screen-pop: who is calling, how sure we are and why, and what should worry the agent.
//! The same facts travel by the API (full) and inside the hand-off TwiML (compact, within
//! Twilio's size limits). Nothing secret is ever part of it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::view::Viewer;
use crate::ivr::script::PopFields;
use crate::store::calls::Call;
use crate::store::{Db, settings, to_rfc3339};
use crate::verify::Factor;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScreenPop {
    pub call_sid: String,
    /// The caller's number as the reader may see it: masked for agents, in full for admins.
    pub caller: String,
    pub called: Option<String>,
    pub verified: bool,
    pub level: &'static str,
    pub factors: Vec<&'static str>,
    pub account: Option<PopAccount>,
    /// The department the call was filed under (named `category` in the API since its start).
    pub category: Option<String>,
    pub risk: Risk,
    pub status: String,
    pub step: String,
    pub end_reason: Option<String>,
    pub script: String,
    /// The content hash of the script the call ran (the name is the API's, kept for its users).
    pub script_version: String,
    pub language: String,
    pub started_at: Option<String>,
    pub verified_at: Option<String>,
    pub handed_off_at: Option<String>,
    pub ended_at: Option<String>,
    /// The short-lived signed screen-pop URL (`/pop/{token}`), in what travels with a hand-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pop_url: Option<String>,
}

/// The account on a screen-pop: who the caller proved to be and the attributes agents may see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AccountView)]
pub struct PopAccount {
    pub id: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Risk {
    pub caller_id_match: bool,
    pub stir_verstat: Option<String>,
    /// STIR/SHAKEN reported a failed validation: a spoofing indicator.
    pub stir_failed: bool,
    /// A STIR/SHAKEN value came that could not be read: the caller ID got no credit.
    pub stir_unrecognized: bool,
    /// Wrong codes or TOTPs in this call.
    pub failed_attempts: u32,
    /// Failures counted against the account in the last 24 hours, across calls.
    pub account_failures_24h: i64,
    pub caller_withheld: bool,
    /// The account's keypad verification was locked at some time in the last 24 hours.
    pub account_locked_24h: bool,
    /// The account's registered phone number changed within `NUMBER_CHANGE_RECENT_MS`.
    pub number_changed_recently: bool,
}

/// Twilio's limit for the headers part of a `<Sip>` URI is 1024 characters; some room is kept.
pub const SIP_HEADERS_MAX: usize = 1000;

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A phone change this recent is a risk flag (SIM swaps and account takeovers start there).
pub const NUMBER_CHANGE_RECENT_MS: i64 = 30 * DAY_MS;

/// JSON leaves DEL, the C1 controls and U+FFFE/U+FFFF unescaped, but the TwiML writer must drop
/// them (XML cannot carry them), which would silently change an account's attributes on the way
/// to Flex. They can only occur inside JSON strings, so they are written as `\uXXXX` escapes,
/// which JSON reads back as the same characters. (Found by fuzz/fuzz_targets/twiml_render.rs.)
fn xml_safe_json(json: String) -> String {
    let unsafe_char = |c: char| {
        !matches!(c, '\t' | '\n' | '\r') && (c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}')
    };
    if !json.chars().any(unsafe_char) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

impl ScreenPop {
    /// The pop of `call` as `viewer` may read it (the caller's number by `Viewer::caller_number`).
    pub fn load(db: &dyn Db, call: &Call, now: i64, viewer: Viewer) -> anyhow::Result<Self> {
        let visible = db.visible_attributes()?;
        let account = match &call.account_id {
            Some(id) => db.account(id)?.map(|a| PopAccount {
                id: a.id,
                name: a.name,
                attributes: settings::filter_visible(&a.attributes, visible.as_deref()),
            }),
            None => None,
        };
        let account_failures_24h = match &call.account_id {
            Some(id) => db.recent_account_failures(id, now - DAY_MS)?,
            None => 0,
        };
        let history = match &call.account_id {
            Some(id) => db.account_history(id)?,
            None => Default::default(),
        };
        let level = call.level();
        Ok(Self {
            call_sid: call.call_sid.clone(),
            caller: viewer.caller_number(&call.caller),
            called: call.called.clone(),
            verified: level.is_verified(),
            level: level.as_str(),
            factors: call.factors.iter().map(Factor::as_str).collect(),
            account,
            category: call.department.clone(),
            risk: Risk {
                caller_id_match: call.caller_id_match,
                stir_verstat: call.stir_verstat.clone(),
                stir_failed: call.stir_failed(),
                stir_unrecognized: call.stir_unrecognized(),
                failed_attempts: call.failed_attempts,
                account_failures_24h,
                caller_withheld: call.caller == "withheld",
                account_locked_24h: history.last_locked_at.is_some_and(|t| t >= now - DAY_MS),
                number_changed_recently: history
                    .phone_changed_at
                    .is_some_and(|t| t >= now - NUMBER_CHANGE_RECENT_MS),
            },
            status: call.status.clone(),
            step: call.step.clone(),
            end_reason: call.end_reason.clone(),
            script: call.script.clone(),
            script_version: call.script_sha.clone(),
            language: call.language.clone(),
            started_at: to_rfc3339(call.started_at),
            verified_at: call.verified_at.and_then(to_rfc3339),
            handed_off_at: call.handed_off_at.and_then(to_rfc3339),
            ended_at: call.ended_at.and_then(to_rfc3339),
            pop_url: None,
        })
    }

    /// TaskRouter task attributes for `<Enqueue><Task>`: what Flex shows as the screen-pop.
    /// Kept within `max` characters (Flex's limit is 1024): the account attributes go first,
    /// then the name is shortened; the verification facts always stay.
    pub fn task_attributes(&self, max: usize, fields: PopFields) -> String {
        let account = self.account.as_ref().filter(|_| fields.account);
        let mut name = account.map_or_else(|| self.caller.clone(), |a| a.name.clone());
        let mut attributes = account
            .filter(|_| fields.attributes)
            .map(|a| a.attributes.clone())
            .unwrap_or_default();
        let factors: &[&str] = if fields.factors { &self.factors } else { &[] };
        let risk = fields.risk.then(|| {
            serde_json::json!({
                "caller_id_match": self.risk.caller_id_match,
                "stir_failed": self.risk.stir_failed,
                "stir_unrecognized": self.risk.stir_unrecognized,
                "failed_attempts": self.risk.failed_attempts,
                "account_failures_24h": self.risk.account_failures_24h,
                "account_locked_24h": self.risk.account_locked_24h,
                "number_changed_recently": self.risk.number_changed_recently,
            })
        });
        loop {
            let json = serde_json::json!({
                "type": "inbound",
                "name": name,
                "from": self.caller,
                "call_sid": self.call_sid,
                "verified": self.verified,
                "level": self.level,
                "factors": factors,
                "account_id": account.map(|a| &a.id),
                "category": self.category,
                "risk": risk,
                "attributes": attributes,
                "pop_url": self.pop_url,
            })
            .to_string();
            let json = xml_safe_json(json);
            if json.chars().count() <= max {
                return json;
            }
            if !attributes.is_empty() {
                attributes.clear();
            } else if name.chars().count() > 16 {
                name = name.chars().take(16).collect();
            } else {
                // The fixed facts alone exceed the limit only for absurd limits; send them anyway.
                return json;
            }
        }
    }

    /// `<Parameter>`s for a Voice SDK agent (`<Dial><Client>`). Short values only.
    pub fn client_parameters(&self, fields: PopFields) -> Vec<(String, String)> {
        let mut params = vec![
            ("callgate_call_sid".to_owned(), self.call_sid.clone()),
            ("verified".to_owned(), self.verified.to_string()),
            ("level".to_owned(), self.level.to_owned()),
        ];
        if let Some(url) = &self.pop_url {
            params.push(("pop_url".to_owned(), url.clone()));
        }
        if fields.factors {
            params.push(("factors".to_owned(), self.factors.join(",")));
        }
        if fields.risk {
            params.push((
                "caller_id_match".to_owned(),
                self.risk.caller_id_match.to_string(),
            ));
            params.push((
                "failed_attempts".to_owned(),
                self.risk.failed_attempts.to_string(),
            ));
        }
        if let Some(a) = self.account.as_ref().filter(|_| fields.account) {
            params.push(("account_id".to_owned(), a.id.clone()));
            params.push(("account_name".to_owned(), a.name.chars().take(64).collect()));
        }
        if let Some(c) = &self.category {
            params.push(("category".to_owned(), c.clone()));
        }
        params
    }

    /// `X-` headers appended to a `<Dial><Sip>` URI (kept under Twilio's 1024-character limit
    /// for the headers part; no name, only ids, since SIP headers cross other systems). When
    /// they do not all fit, whole headers are left out from the last, never cut in the middle.
    pub fn sip_uri(&self, base: &str, fields: PopFields) -> String {
        let mut headers = vec![
            ("X-Callgate-Call", self.call_sid.clone()),
            ("X-Callgate-Level", self.level.to_owned()),
            ("X-Callgate-Verified", self.verified.to_string()),
        ];
        if let Some(url) = &self.pop_url {
            headers.push(("X-Callgate-Pop", url.clone()));
        }
        if fields.factors {
            headers.push(("X-Callgate-Factors", self.factors.join(".")));
        }
        if let Some(a) = self.account.as_ref().filter(|_| fields.account) {
            headers.push(("X-Callgate-Account", a.id.clone()));
        }
        if let Some(c) = &self.category {
            headers.push(("X-Callgate-Category", c.clone()));
        }
        let mut query = String::new();
        for (k, v) in &headers {
            let pair = format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            );
            if query.len() + pair.len() + 1 > SIP_HEADERS_MAX {
                break;
            }
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&pair);
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_json_survives_the_twiml_writer_intact() {
        // The fuzzer's input: an attribute value with DEL, a C1 control and U+FFFE.
        let value = "VIP \u{7f}\u{85} \u{fffe} end\u{1}";
        let json = xml_safe_json(serde_json::json!({ "segment": value }).to_string());
        assert!(
            !json.contains(['\u{7f}', '\u{85}', '\u{fffe}', '\u{1}']),
            "{json}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["segment"], value);
        let xml = crate::twilio::twiml::Response::new()
            .push(crate::twilio::twiml::Verb::Enqueue(
                crate::twilio::twiml::Enqueue {
                    queue: String::new(),
                    action: None,
                    workflow_sid: Some("WW1".into()),
                    task: Some(json.clone()),
                },
            ))
            .render()
            .unwrap();
        let doc = crate::twilio::twiml::parse(&xml).unwrap();
        let crate::twilio::twiml::Verb::Enqueue(e) = &doc.verbs[0] else {
            panic!("{xml}")
        };
        assert_eq!(e.task.as_deref(), Some(json.as_str()));
    }
}
