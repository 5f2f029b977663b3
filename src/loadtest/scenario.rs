//! The calls the generator plays, the way Twilio plays them: signed form posts, following the
//! `<Gather>` actions and `<Redirect>`s of each answer, then the hand-off's action and the
//! status callback. Every answer is checked against what the path expects.

use std::time::{Duration, Instant};

use super::fixtures::{self, Fixture};
use crate::twilio::emulator::{self, CallLeg};
use crate::twilio::twiml::{self, Verb};
use crate::verify::totp;

/// The paths of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// From the account's registered phone: account code, menu, hand-off.
    CallerId,
    /// From a strange number: account code, TOTP, menu, hand-off.
    CodeTotp,
    /// Three wrong codes, then goodbye.
    WrongCodes,
    /// Silence twice, then goodbye.
    Silence,
}

impl Path {
    pub const ALL: [Path; 4] = [
        Path::CallerId,
        Path::CodeTotp,
        Path::WrongCodes,
        Path::Silence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CallerId => "caller_id",
            Self::CodeTotp => "totp",
            Self::WrongCodes => "wrong",
            Self::Silence => "silence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The webhook paths this call makes, in order (what the baseline replays).
    pub fn webhooks(self) -> &'static [&'static str] {
        match self {
            Self::CallerId => &[
                "/twilio/voice",
                "/twilio/ivr/account-code",
                "/twilio/ivr/menu",
                "/twilio/ivr/handoff-result",
                "/twilio/status",
            ],
            Self::CodeTotp => &[
                "/twilio/voice",
                "/twilio/ivr/account-code",
                "/twilio/ivr/totp",
                "/twilio/ivr/menu",
                "/twilio/ivr/handoff-result",
                "/twilio/status",
            ],
            Self::WrongCodes => &[
                "/twilio/voice",
                "/twilio/ivr/account-code",
                "/twilio/ivr/account-code",
                "/twilio/ivr/account-code",
                "/twilio/status",
            ],
            Self::Silence => &[
                "/twilio/voice",
                "/twilio/ivr/account-code",
                "/twilio/ivr/account-code",
                "/twilio/status",
            ],
        }
    }
}

/// One webhook's outcome, for the statistics.
#[derive(Debug)]
pub struct Sample {
    pub latency: Duration,
    pub error: Option<String>,
}

/// What a call needs to talk to the server.
#[derive(Clone)]
pub struct Target {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    /// Replay the path's webhooks without reading the answers (for the bare baseline handler).
    pub blind: bool,
    /// Where the webhooks go, in turn, as a round-robin balancer sends them (each signed for
    /// `base`, the public URL); empty: to `base` itself.
    pub nodes: std::sync::Arc<Vec<String>>,
    pub turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Target {
    /// Where to send a webhook signed for `url`: the next node's address in its place.
    fn send_to(&self, url: &str) -> String {
        let Some(path) = url.strip_prefix(&self.base) else {
            return url.to_owned();
        };
        if self.nodes.is_empty() {
            return url.to_owned();
        }
        let n = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}{path}", self.nodes[n % self.nodes.len()])
    }
}

/// What an answer asked for next.
enum Next {
    Gather(String),
    /// Only a `<Redirect>`: no question asked.
    Redirect,
    Handoff(Option<String>),
    Hangup,
}

fn classify(doc: &twiml::Response) -> Next {
    let mut redirect = false;
    for verb in &doc.verbs {
        match verb {
            Verb::Gather(g) => return Next::Gather(g.action.clone()),
            Verb::Redirect { .. } => redirect = true,
            Verb::Enqueue(e) => return Next::Handoff(e.action.clone()),
            Verb::Dial(d) => return Next::Handoff(d.action.clone()),
            Verb::Hangup => return Next::Hangup,
            _ => {}
        }
    }
    if redirect {
        Next::Redirect
    } else {
        Next::Hangup
    }
}

/// The `<Redirect>` a silent caller falls through to.
fn redirect_of(doc: &twiml::Response) -> Option<String> {
    doc.verbs.iter().find_map(|v| match v {
        Verb::Redirect { url } => Some(url.clone()),
        _ => None,
    })
}

pub struct Call<'a> {
    target: &'a Target,
    leg: CallLeg,
    /// Latency is measured from here: the scheduled start of the webhook (open loop) or the
    /// moment the previous answer arrived (the caller acts at once).
    due: Instant,
    pub samples: Vec<Sample>,
}

impl<'a> Call<'a> {
    pub fn new(target: &'a Target, from: String, due: Instant) -> Self {
        Self {
            target,
            leg: CallLeg::new(&from, "+48221234567"),
            due,
            samples: Vec::with_capacity(6),
        }
    }

    fn params(&self, status: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        self.leg.params(status, extra)
    }

    /// One signed POST; returns the parsed answer, or records an error and returns `None`.
    async fn post(
        &mut self,
        url: &str,
        params: Vec<(String, String)>,
        expect_twiml: bool,
    ) -> Option<twiml::Response> {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.target.base)
        };
        let send_to = self.target.send_to(&url);
        let result = emulator::post_signed_via(
            &self.target.http,
            &self.target.token,
            &url,
            &send_to,
            &params,
        )
        .await;
        let outcome = match result {
            Err(e) if e.is_timeout() => Err("timeout".to_owned()),
            Err(e) if e.is_connect() => Err("connect".to_owned()),
            Err(_) => Err("transport".to_owned()),
            Ok(r) if !r.status().is_success() => Err(format!("http_{}", r.status().as_u16())),
            Ok(r) => match r.text().await {
                Err(_) => Err("transport".to_owned()),
                // The baseline's answers are parsed too, so that the generator spends the same
                // work per webhook in both runs and the ratio measures the servers.
                Ok(body) if self.target.blind => {
                    let _ = twiml::parse(&body);
                    Ok(twiml::Response::default())
                }
                Ok(_) if !expect_twiml => Ok(twiml::Response::default()),
                Ok(body) => twiml::parse(&body).map_err(|_| "bad_twiml".to_owned()),
            },
        };
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.due);
        self.due = now;
        match outcome {
            Ok(doc) => {
                self.samples.push(Sample {
                    latency,
                    error: None,
                });
                Some(doc)
            }
            Err(e) => {
                self.samples.push(Sample {
                    latency,
                    error: Some(e),
                });
                None
            }
        }
    }

    fn unexpected(&mut self, what: &str) {
        if let Some(last) = self.samples.last_mut() {
            last.error
                .get_or_insert_with(|| format!("unexpected_{what}"));
        }
    }

    /// Plays `path` as the account `f` (or a stranger), then reports the end to the status URL.
    pub async fn play(mut self, path: Path, f: &Fixture) -> Vec<Sample> {
        if self.target.blind {
            return self.replay(path).await;
        }
        let Some(doc) = self
            .post("/twilio/voice", self.params("ringing", &[]), true)
            .await
        else {
            return self.samples;
        };
        let Next::Gather(code_url) = classify(&doc) else {
            self.unexpected("greeting");
            return self.finish().await;
        };
        match path {
            Path::CallerId | Path::CodeTotp => {
                let Some(doc) = self
                    .post(
                        &code_url,
                        self.params(
                            "in-progress",
                            &[("Digits", &f.code), ("FinishedOnKey", "#")],
                        ),
                        true,
                    )
                    .await
                else {
                    return self.finish().await;
                };
                let mut next = classify(&doc);
                if path == Path::CodeTotp {
                    let Next::Gather(totp_url) = next else {
                        self.unexpected("after_code");
                        return self.finish().await;
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    let code = f
                        .totp_secret
                        .as_deref()
                        .and_then(|s| totp::code_at(s, now).ok())
                        .unwrap_or_default();
                    let Some(doc) = self
                        .post(
                            &totp_url,
                            self.params("in-progress", &[("Digits", &code)]),
                            true,
                        )
                        .await
                    else {
                        return self.finish().await;
                    };
                    next = classify(&doc);
                    if !matches!(&next, Next::Gather(u) if u.ends_with("/menu")) {
                        // A TOTP step another call already used (a replay), or a locked number.
                        self.unexpected("totp_refused");
                        return self.finish().await;
                    }
                }
                let Next::Gather(menu_url) = next else {
                    self.unexpected("after_code");
                    return self.finish().await;
                };
                if !menu_url.ends_with("/menu") {
                    self.unexpected("no_menu");
                    return self.finish().await;
                }
                let Some(doc) = self
                    .post(
                        &menu_url,
                        self.params("in-progress", &[("Digits", "1")]),
                        true,
                    )
                    .await
                else {
                    return self.finish().await;
                };
                match classify(&doc) {
                    Next::Handoff(Some(action)) => {
                        let params = self.params("in-progress", &[("QueueResult", "bridged")]);
                        if let Some(doc) = self.post(&action, params, true).await
                            && !matches!(classify(&doc), Next::Hangup)
                        {
                            self.unexpected("after_handoff");
                        }
                    }
                    _ => self.unexpected("no_handoff"),
                }
            }
            Path::WrongCodes => {
                let mut url = code_url;
                for attempt in 0..3 {
                    let wrong = fixtures::wrong_code();
                    let Some(doc) = self
                        .post(
                            &url,
                            self.params("in-progress", &[("Digits", &wrong)]),
                            true,
                        )
                        .await
                    else {
                        return self.finish().await;
                    };
                    match (attempt, classify(&doc)) {
                        (0 | 1, Next::Gather(next)) => url = next,
                        (2, Next::Hangup) => {}
                        _ => {
                            self.unexpected("after_wrong_code");
                            return self.finish().await;
                        }
                    }
                }
            }
            Path::Silence => {
                let mut url = redirect_of(&doc).unwrap_or(code_url);
                for attempt in 0..2 {
                    let Some(doc) = self.post(&url, self.params("in-progress", &[]), true).await
                    else {
                        return self.finish().await;
                    };
                    match (attempt, classify(&doc)) {
                        (0, Next::Gather(_)) => url = redirect_of(&doc).unwrap_or(url),
                        (1, Next::Hangup) => {}
                        _ => {
                            self.unexpected("after_silence");
                            return self.finish().await;
                        }
                    }
                }
            }
        }
        self.finish().await
    }

    async fn finish(mut self) -> Vec<Sample> {
        let params = self.params("completed", &[("CallDuration", "30")]);
        self.post("/twilio/status", params, false).await;
        self.samples
    }

    /// The baseline: the same webhooks to the same paths, answers not read.
    async fn replay(mut self, path: Path) -> Vec<Sample> {
        for (i, url) in path.webhooks().iter().enumerate() {
            let digits: &[(&str, &str)] = if i == 0 {
                &[]
            } else {
                &[("Digits", "123456789")]
            };
            self.post(url, self.params("in-progress", digits), false)
                .await;
        }
        self.samples
    }
}
