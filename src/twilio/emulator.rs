//! Twilio's side of a webhook, for callgate's own tools that play Twilio (the softphone and the
//! load generator): the parameters Twilio sends about a call, and the signed POST.

use super::signature;

/// The parameters Twilio sends with every voice webhook of an inbound call.
#[derive(Debug, Clone)]
pub struct CallLeg {
    pub call_sid: String,
    pub from: String,
    pub to: String,
    pub stir_verstat: Option<String>,
}

impl CallLeg {
    /// A new inbound call with a fresh `CA...` CallSid.
    pub fn new(from: &str, to: &str) -> Self {
        Self {
            call_sid: format!("CA{}", uuid::Uuid::new_v4().simple()),
            from: from.to_owned(),
            to: to.to_owned(),
            stir_verstat: None,
        }
    }

    /// The parameters of a webhook in `status`, with `extra` ones (`Digits`, ...) appended.
    pub fn params(&self, status: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", self.call_sid.as_str()),
            ("CallStatus", status),
            ("Called", self.to.as_str()),
            ("Caller", self.from.as_str()),
            ("Direction", "inbound"),
            ("From", self.from.as_str()),
            ("To", self.to.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(stir) = &self.stir_verstat {
            p.push(("StirVerstat".into(), stir.clone()));
        }
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    }
}

/// POSTs `params` to `url` signed with `token`, exactly as Twilio signs (for that URL).
pub async fn post_signed(
    http: &reqwest::Client,
    token: &str,
    url: &str,
    params: &[(String, String)],
) -> reqwest::Result<reqwest::Response> {
    post_signed_via(http, token, url, url, params).await
}

/// Like `post_signed`, signed for `url` (the public URL Twilio knows) but sent to `send_to`,
/// as a balancer in front of several nodes forwards it.
pub async fn post_signed_via(
    http: &reqwest::Client,
    token: &str,
    url: &str,
    send_to: &str,
    params: &[(String, String)],
) -> reqwest::Result<reqwest::Response> {
    let sig = signature::compute(token, url, params);
    http.post(send_to)
        .header("X-Twilio-Signature", sig)
        .header("User-Agent", "TwilioProxy/1.1 (callgate)")
        .form(params)
        .send()
        .await
}
