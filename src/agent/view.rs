//! The screen-pop as the agent console and the `/pop/{token}` page show it: the `ScreenPop`
//! facts put into words (factors, risk flags), the caller's number masked unless the viewer is
//! an admin, the queue status, the agent's outcome and the account's recent calls.

use serde::Serialize;

use super::ScreenPop;
use crate::domain::mask_number;
use crate::store::calls::Call;
use crate::store::outcomes::{Outcome, PastCall};
use crate::store::users::{Role, User};
use crate::store::{Db, events};

/// Earlier calls of the account listed in a pop.
const RECENT_CALLS: u32 = 5;

/// Who reads a call, which decides what personal data it shows. Every read of a call's caller
/// number goes through `caller_number`, so the rule lives in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    Agent,
    /// A CRM frame through `/pop/{token}`: no login, an agent's view.
    PopUrl,
    /// The desk's own systems a hand-off goes to: the telephony platform (Flex task attributes,
    /// and Twilio carries the number as the call's `From` anyway) and the desk's CRM webhook,
    /// where the desk matches the caller to its own records.
    Desk,
    /// Reading how calls go rather than who called: reports (counts over many calls that leave
    /// as CSV files and print-outs) and journeys, whoever reads them.
    Analysis,
}

impl Viewer {
    pub fn of(user: &User) -> Self {
        match user.role {
            Role::Admin => Self::Admin,
            Role::Agent => Self::Agent,
        }
    }

    /// The caller's number as this viewer may read it: in full for admins and the desk's own
    /// systems, masked (`+48******567`) for agents, the pop URL, reports and journeys. `withheld` and
    /// `erased` are words, not numbers, and stay as they are.
    pub fn caller_number(self, caller: &str) -> String {
        match self {
            Self::Admin | Self::Desk => caller.to_owned(),
            Self::Agent | Self::PopUrl | Self::Analysis => {
                if matches!(caller, "withheld" | "erased") {
                    caller.to_owned()
                } else {
                    mask_number(caller)
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Labelled {
    pub code: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallView {
    pub call_sid: String,
    /// `+48*****567` for agents; in full for admins.
    pub caller: String,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub verified: bool,
    pub level: &'static str,
    pub level_text: &'static str,
    pub factors: Vec<Labelled>,
    pub risk_flags: Vec<Labelled>,
    pub department: Option<String>,
    /// `[key, value]` pairs, in the order agents see them.
    #[schema(value_type = Vec<Vec<String>>)]
    pub attributes: Vec<(String, String)>,
    pub queue_status: Option<String>,
    pub call_status: String,
    /// Milliseconds since the epoch, for the console's clocks.
    pub started_at: i64,
    pub handed_off_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<Outcome>,
    pub recent_calls: Vec<PastCall>,
}

pub fn factor_text(code: &str) -> &'static str {
    match code {
        "caller_id" => "Caller ID is the account's registered number",
        "account_code" => "Account code",
        "call_code" => "One-time call code from the app",
        "totp" => "Authenticator app code",
        "knowledge" => "Knowledge question",
        _ => "Other factor",
    }
}

pub fn level_text(level: &str) -> &'static str {
    match level {
        "high" => "High: two strong factors",
        "medium" => "Medium: verified",
        "low" => "Low: account code only",
        _ => "None: not verified",
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The risk flags in plain words, most serious first.
pub fn risk_flags(pop: &ScreenPop) -> Vec<Labelled> {
    let r = &pop.risk;
    let mut flags = Vec::new();
    if r.stir_failed {
        flags.push(Labelled {
            code: "stir_failed",
            text: "STIR/SHAKEN validation failed: the caller ID may be spoofed".into(),
        });
    }
    if r.stir_unrecognized {
        flags.push(Labelled {
            code: "stir_unrecognized",
            text: "STIR/SHAKEN status not understood: the caller ID was given no credit".into(),
        });
    }
    if r.caller_withheld {
        flags.push(Labelled {
            code: "caller_withheld",
            text: "Caller ID withheld".into(),
        });
    } else if pop.account.is_some() && !r.caller_id_match {
        flags.push(Labelled {
            code: "caller_id_mismatch",
            text: "Caller ID did not match the account's registered number".into(),
        });
    }
    if r.failed_attempts > 0 {
        flags.push(Labelled {
            code: "failed_attempts",
            text: format!(
                "{} in this call",
                plural(
                    i64::from(r.failed_attempts),
                    "failed attempt",
                    "failed attempts"
                )
            ),
        });
    }
    if r.account_failures_24h > 0 {
        flags.push(Labelled {
            code: "recent_failures",
            text: format!(
                "{} on this account in the last 24 h",
                plural(r.account_failures_24h, "failed attempt", "failed attempts")
            ),
        });
    }
    if r.account_locked_24h {
        flags.push(Labelled {
            code: "account_locked_24h",
            text: "The account was locked in the last 24 h".into(),
        });
    }
    if r.number_changed_recently {
        flags.push(Labelled {
            code: "number_changed",
            text: "The account's phone number changed recently".into(),
        });
    }
    flags
}

impl CallView {
    /// Builds the view of `call` for `viewer`, at `now`.
    pub fn load(db: &dyn Db, call: &Call, viewer: Viewer, now: i64) -> anyhow::Result<Self> {
        let pop = ScreenPop::load(db, call, now, viewer)?;
        let recent_calls = match (&call.account_id, viewer) {
            (Some(id), Viewer::Admin | Viewer::Agent) => {
                db.recent_calls_of(id, &call.call_sid, RECENT_CALLS)?
            }
            _ => Vec::new(),
        };
        Ok(Self {
            call_sid: call.call_sid.clone(),
            caller: pop.caller.clone(),
            account_id: pop.account.as_ref().map(|a| a.id.clone()),
            account_name: pop.account.as_ref().map(|a| a.name.clone()),
            verified: pop.verified,
            level: pop.level,
            level_text: level_text(pop.level),
            factors: pop
                .factors
                .iter()
                .map(|f| Labelled {
                    code: f,
                    text: factor_text(f).to_owned(),
                })
                .collect(),
            risk_flags: risk_flags(&pop),
            department: call.department.clone(),
            attributes: pop
                .account
                .as_ref()
                .map(|a| a.attributes.clone().into_iter().collect())
                .unwrap_or_default(),
            queue_status: db.queue_status(&call.call_sid)?,
            call_status: call.status.clone(),
            started_at: call.started_at,
            handed_off_at: call.handed_off_at,
            ended_at: call.ended_at,
            outcome: db.outcome(&call.call_sid)?,
            recent_calls,
        })
    }

    /// The view of the call `call_sid`, if it exists, at `now`.
    pub fn by_sid(
        db: &dyn Db,
        call_sid: &str,
        viewer: Viewer,
        now: i64,
    ) -> anyhow::Result<Option<Self>> {
        match db.call(call_sid)? {
            Some(call) => Self::load(db, &call, viewer, now).map(Some),
            None => Ok(None),
        }
    }
}

/// The departments whose calls `user` sees: `None` for all (admins, and agents who serve every
/// department).
pub fn departments_of(user: &User) -> Option<Vec<String>> {
    match user.role {
        Role::Admin => None,
        Role::Agent if user.departments.is_empty() => None,
        Role::Agent => Some(user.departments.clone()),
    }
}

/// Whether `user` may see and act on a call filed under `department`.
pub fn may_see(user: &User, department: Option<&str>) -> bool {
    events::visible(departments_of(user).as_deref(), department)
}
