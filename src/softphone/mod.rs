//! `callgate call`: a terminal softphone. It plays Twilio against a running callgate: signs each
//! request as Twilio does, prints what the caller would hear, reads keys from `--keys` or the
//! keyboard, follows `<Gather>` and `<Redirect>`, and at the end prints the hand-off and the
//! screen-pop.

use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;

use crate::twilio::emulator::{self, CallLeg};
use crate::twilio::twiml::{self, DialTarget, Prompt, Verb};

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The caller ID to present.
    #[arg(long)]
    pub from: String,
    /// The dialed number.
    #[arg(long, default_value = "+48221234567")]
    pub to: String,
    /// Base URL of the callgate server (the public URL it is configured with).
    #[arg(
        long,
        env = "CALLGATE_PUBLIC_URL",
        default_value_t = format!("http://{}", crate::config::DEFAULT_LISTEN)
    )]
    pub url: String,
    /// Auth token to sign with (the first of a comma-separated list is used).
    #[arg(long, env = "CALLGATE_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Agent or admin token, to fetch the screen-pop after the hand-off.
    #[arg(long, env = "CALLGATE_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,
    /// A STIR/SHAKEN verdict to send, e.g. TN-Validation-Failed-A.
    #[arg(long)]
    pub stir: Option<String>,
    /// Keys for the successive prompts, comma-separated (`246810#,1`); an empty item is
    /// silence. After them, keys are read from standard input (end of input hangs up).
    #[arg(long)]
    pub keys: Option<String>,
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let scripted: Vec<String> = args
        .keys
        .as_deref()
        .map(|k| k.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut stdin = std::io::stdin().lines().map_while(Result::ok);
    let mut keys = scripted.into_iter().chain(std::iter::from_fn(move || {
        if interactive {
            print!("keypad> ");
            let _ = std::io::stdout().flush();
        }
        stdin.next()
    }));
    let mut out = std::io::stdout();
    Softphone::new(args)?.call(&mut keys, &mut out).await
}

pub struct Softphone {
    args: CallArgs,
    token: String,
    leg: CallLeg,
    http: reqwest::Client,
}

/// What the call ended with.
enum Next {
    Fetch(String, Vec<(String, String)>),
    Done,
}

impl Softphone {
    pub fn new(args: CallArgs) -> anyhow::Result<Self> {
        let token = args
            .token
            .as_deref()
            .and_then(|t| t.split(',').map(str::trim).find(|t| !t.is_empty()))
            .map(str::to_owned)
            .unwrap_or_default();
        let mut leg = CallLeg::new(&args.from, &args.to);
        leg.stir_verstat = args.stir.clone();
        Ok(Self {
            args,
            token,
            leg,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()?,
        })
    }

    pub fn call_sid(&self) -> &str {
        &self.leg.call_sid
    }

    fn base_params(&self, status: &str) -> Vec<(String, String)> {
        self.leg.params(status, &[])
    }

    async fn post(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<reqwest::Response> {
        emulator::post_signed(&self.http, &self.token, url, params)
            .await
            .with_context(|| format!("POST {url}"))
    }

    /// Plays the whole call, reading keys from `keys` and writing what the caller hears to `out`.
    pub async fn call(
        &self,
        keys: &mut dyn Iterator<Item = String>,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let base = self.args.url.trim_end_matches('/');
        writeln!(
            out,
            "calling {} from {} (CallSid {})",
            self.args.to, self.args.from, self.leg.call_sid
        )?;
        let mut next = Next::Fetch(format!("{base}/twilio/voice"), self.base_params("ringing"));
        let mut handed_off = false;
        for _ in 0..200 {
            let Next::Fetch(url, params) = next else {
                break;
            };
            let response = self.post(&url, &params).await?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                bail!("{url} answered {status}: {body}");
            }
            let doc = twiml::parse(&body)
                .with_context(|| format!("{url} answered with invalid TwiML"))?;
            next = Next::Done;
            for verb in doc.verbs {
                match verb {
                    Verb::Say(s) => writeln!(out, "  said: {}", s.text)?,
                    Verb::Play(p) => writeln!(out, "  plays: {}", p.url)?,
                    Verb::Gather(g) => {
                        for prompt in &g.prompts {
                            match prompt {
                                Prompt::Say(s) => writeln!(out, "  said: {}", s.text)?,
                                Prompt::Play(p) => writeln!(out, "  plays: {}", p.url)?,
                            }
                        }
                        let Some(line) = keys.next() else {
                            writeln!(out, "hung up")?;
                            return self.hang_up(base, out).await;
                        };
                        let (digits, finished) =
                            keypad(&line, g.num_digits, g.finish_on_key.as_deref());
                        if digits.is_empty() && finished.is_empty() {
                            writeln!(out, "  (silence)")?;
                            continue; // Twilio falls through to the next verb.
                        }
                        writeln!(out, "  pressed: {}{}", "*".repeat(digits.len()), finished)?;
                        let mut params = self.base_params("in-progress");
                        params.push(("Digits".into(), digits));
                        params.push(("FinishedOnKey".into(), finished));
                        next = Next::Fetch(resolve(&url, &g.action)?, params);
                        break;
                    }
                    Verb::Redirect { url: target } => {
                        next =
                            Next::Fetch(resolve(&url, &target)?, self.base_params("in-progress"));
                        break;
                    }
                    Verb::Hangup => {
                        writeln!(out, "callgate hung up")?;
                        break;
                    }
                    Verb::Enqueue(e) => {
                        handed_off = true;
                        match &e.workflow_sid {
                            Some(ww) => writeln!(
                                out,
                                "handed off: enqueued to {} via TaskRouter workflow {ww}",
                                e.queue
                            )?,
                            None => writeln!(out, "handed off: enqueued to queue {}", e.queue)?,
                        }
                        if let Some(task) = &e.task {
                            writeln!(out, "  task attributes: {task}")?;
                        }
                        self.print_screen_pop(base, out).await?;
                        next = self.after_handoff(
                            &url,
                            e.action.as_deref(),
                            "QueueResult",
                            "bridged",
                        )?;
                        break;
                    }
                    Verb::Dial(d) => {
                        handed_off = true;
                        match &d.target {
                            DialTarget::Client {
                                identity,
                                parameters,
                            } => {
                                writeln!(out, "handed off: dialing client {identity}")?;
                                for (k, v) in parameters {
                                    writeln!(out, "  parameter {k} = {v}")?;
                                }
                            }
                            DialTarget::Sip { uri } => writeln!(out, "handed off: dialing {uri}")?,
                            DialTarget::Number { number } => {
                                writeln!(out, "handed off: dialing {number}")?
                            }
                        }
                        self.print_screen_pop(base, out).await?;
                        next = self.after_handoff(
                            &url,
                            d.action.as_deref(),
                            "DialCallStatus",
                            "completed",
                        )?;
                        break;
                    }
                }
            }
        }
        if !handed_off {
            writeln!(out, "the call ended without a hand-off")?;
        }
        self.hang_up(base, out).await
    }

    fn after_handoff(
        &self,
        current: &str,
        action: Option<&str>,
        name: &str,
        value: &str,
    ) -> anyhow::Result<Next> {
        Ok(match action {
            Some(action) => {
                let mut params = self.base_params("in-progress");
                params.push((name.into(), value.into()));
                Next::Fetch(resolve(current, action)?, params)
            }
            None => Next::Done,
        })
    }

    async fn print_screen_pop(&self, base: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let Some(token) = &self.args.agent_token else {
            writeln!(out, "(set CALLGATE_AGENT_TOKEN to see the screen-pop)")?;
            return Ok(());
        };
        let response = self
            .http
            .get(format!("{base}/api/calls/{}", self.leg.call_sid))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if status.is_success() {
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(body);
            writeln!(out, "screen-pop:\n{pretty}")?;
        } else {
            writeln!(out, "screen-pop unavailable: {status}")?;
        }
        Ok(())
    }

    async fn hang_up(&self, base: &str, out: &mut dyn Write) -> anyhow::Result<()> {
        let mut params = self.base_params("completed");
        params.push(("CallDuration".into(), "42".into()));
        let response = self.post(&format!("{base}/twilio/status"), &params).await?;
        if !response.status().is_success() {
            writeln!(out, "status callback answered {}", response.status())?;
        }
        Ok(())
    }
}

/// What Twilio would send for a line typed on the keypad: the digits before the finishing key
/// (at most `num_digits`), and the finishing key itself if it was pressed.
fn keypad(line: &str, num_digits: Option<u8>, finish_on_key: Option<&str>) -> (String, String) {
    let finish = finish_on_key.unwrap_or("#");
    let line: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    let (mut digits, finished) = match (finish.is_empty(), line.find(finish)) {
        (false, Some(i)) => (line[..i].to_owned(), finish.to_owned()),
        _ => (line, String::new()),
    };
    if let Some(n) = num_digits {
        digits = digits.chars().take(n.into()).collect();
    }
    (digits, finished)
}

fn resolve(current: &str, target: &str) -> anyhow::Result<String> {
    let base = url::Url::parse(current).with_context(|| format!("bad URL {current}"))?;
    Ok(base
        .join(target)
        .with_context(|| format!("bad URL {target}"))?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypad_lines_become_twilio_parameters() {
        assert_eq!(
            keypad("246810#", None, Some("#")),
            ("246810".into(), "#".into())
        );
        assert_eq!(
            keypad("1234567", Some(6), Some("#")),
            ("123456".into(), "".into())
        );
        assert_eq!(keypad("", None, Some("#")), ("".into(), "".into()));
        assert_eq!(keypad(" 1 ", Some(1), None), ("1".into(), "".into()));
    }

    #[test]
    fn relative_actions_resolve_against_the_document() {
        assert_eq!(
            resolve("http://h:1/twilio/voice", "/twilio/ivr/menu").unwrap(),
            "http://h:1/twilio/ivr/menu"
        );
    }
}
