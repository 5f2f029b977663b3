//! TwiML documents: a typed model of the verbs callgate uses, written with quick-xml (so any text
//! from a script or an account is escaped) and read back (for the softphone and the tests).
//! Only verbs, nouns and attributes that Twilio defines appear here.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// Twilio refuses documents larger than this (error 11750).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Gather(Gather),
    Redirect { url: String },
    Hangup,
    Enqueue(Enqueue),
    Dial(Dial),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Say {
    pub text: String,
    pub voice: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub url: String,
}

/// What may be nested in a `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Say(Say),
    Play(Play),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub action: String,
    pub num_digits: Option<u8>,
    /// `None` leaves Twilio's default (`#`); `Some("")` disables the finishing key.
    pub finish_on_key: Option<String>,
    pub timeout_secs: u32,
    pub prompts: Vec<Prompt>,
    /// Listen for speech as well as keys (`input="dtmf speech"`).
    pub speech: Option<SpeechInput>,
}

/// Speech recognition settings of a `<Gather>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechInput {
    /// The recognition language (`pl-PL`, `en-US`).
    pub language: String,
    /// Phrases the recogniser should expect, comma-separated.
    pub hints: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enqueue {
    pub queue: String,
    pub action: Option<String>,
    pub workflow_sid: Option<String>,
    /// JSON attributes of the TaskRouter task; Twilio accepts `<Task>` only with a workflow.
    pub task: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub action: Option<String>,
    pub target: DialTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DialTarget {
    Client {
        identity: String,
        parameters: Vec<(String, String)>,
    },
    Sip {
        uri: String,
    },
    Number {
        number: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TwimlError {
    #[error("TwiML document of {0} bytes exceeds Twilio's 64 kB limit")]
    TooLarge(usize),
    #[error("malformed TwiML: {0}")]
    Malformed(String),
}

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(mut self, verb: Verb) -> Self {
        self.verbs.push(verb);
        self
    }

    /// Writes the document: XML declaration first with nothing before it, `<Response>` root.
    pub fn render(&self) -> Result<String, TwimlError> {
        let mut w = Writer::new(Vec::with_capacity(512));
        let io = |e: std::io::Error| TwimlError::Malformed(e.to_string());
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .map_err(io)?;
        w.write_event(Event::Start(BytesStart::new("Response")))
            .map_err(io)?;
        for verb in &self.verbs {
            write_verb(&mut w, verb).map_err(io)?;
        }
        w.write_event(Event::End(BytesEnd::new("Response")))
            .map_err(io)?;
        let bytes = w.into_inner();
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(TwimlError::TooLarge(bytes.len()));
        }
        String::from_utf8(bytes).map_err(|e| TwimlError::Malformed(e.to_string()))
    }
}

/// XML 1.0 cannot carry most control characters even escaped: drop them from any text that may
/// come from a script or an account so the document is always well-formed.
fn xml_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let ok = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (!c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(ok) {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.chars().filter(|&c| ok(c)).collect())
    }
}

type W = Writer<Vec<u8>>;

fn element<'a>(name: &'a str, attrs: &[(&'a str, Option<&str>)]) -> BytesStart<'a> {
    let mut start = BytesStart::new(name);
    for (key, value) in attrs {
        if let Some(value) = value {
            start.push_attribute((*key, xml_safe(value).as_ref()));
        }
    }
    start
}

fn write_text_element(w: &mut W, start: BytesStart<'_>, text: &str) -> std::io::Result<()> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(&xml_safe(text))))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn write_say(w: &mut W, say: &Say) -> std::io::Result<()> {
    let start = element(
        "Say",
        &[
            ("voice", say.voice.as_deref()),
            ("language", say.language.as_deref()),
        ],
    );
    write_text_element(w, start, &say.text)
}

fn write_play(w: &mut W, play: &Play) -> std::io::Result<()> {
    write_text_element(w, BytesStart::new("Play"), &play.url)
}

fn write_verb(w: &mut W, verb: &Verb) -> std::io::Result<()> {
    match verb {
        Verb::Say(say) => write_say(w, say),
        Verb::Play(play) => write_play(w, play),
        Verb::Gather(g) => {
            let num_digits = g.num_digits.map(|n| n.to_string());
            let timeout = g.timeout_secs.to_string();
            let speech = g.speech.as_ref();
            let start = element(
                "Gather",
                &[
                    ("action", Some(&g.action)),
                    ("method", Some("POST")),
                    (
                        "input",
                        Some(if speech.is_some() {
                            "dtmf speech"
                        } else {
                            "dtmf"
                        }),
                    ),
                    ("numDigits", num_digits.as_deref()),
                    ("finishOnKey", g.finish_on_key.as_deref()),
                    ("timeout", Some(&timeout)),
                    ("language", speech.map(|s| s.language.as_str())),
                    ("hints", speech.and_then(|s| s.hints.as_deref())),
                    ("speechTimeout", speech.map(|_| "auto")),
                ],
            );
            w.write_event(Event::Start(start))?;
            for prompt in &g.prompts {
                match prompt {
                    Prompt::Say(say) => write_say(w, say)?,
                    Prompt::Play(play) => write_play(w, play)?,
                }
            }
            w.write_event(Event::End(BytesEnd::new("Gather")))
        }
        Verb::Redirect { url } => {
            write_text_element(w, element("Redirect", &[("method", Some("POST"))]), url)
        }
        Verb::Hangup => w.write_event(Event::Empty(BytesStart::new("Hangup"))),
        Verb::Enqueue(e) => {
            let start = element(
                "Enqueue",
                &[
                    ("action", e.action.as_deref()),
                    ("method", e.action.as_ref().map(|_| "POST")),
                    ("workflowSid", e.workflow_sid.as_deref()),
                ],
            );
            match &e.task {
                Some(task) => {
                    w.write_event(Event::Start(start))?;
                    write_text_element(w, BytesStart::new("Task"), task)?;
                    w.write_event(Event::End(BytesEnd::new("Enqueue")))
                }
                None => write_text_element(w, start, &e.queue),
            }
        }
        Verb::Dial(d) => {
            let start = element(
                "Dial",
                &[
                    ("action", d.action.as_deref()),
                    ("method", d.action.as_ref().map(|_| "POST")),
                ],
            );
            w.write_event(Event::Start(start))?;
            match &d.target {
                DialTarget::Client {
                    identity,
                    parameters,
                } => {
                    w.write_event(Event::Start(BytesStart::new("Client")))?;
                    write_text_element(w, BytesStart::new("Identity"), identity)?;
                    for (name, value) in parameters {
                        let p =
                            element("Parameter", &[("name", Some(name)), ("value", Some(value))]);
                        w.write_event(Event::Empty(p))?;
                    }
                    w.write_event(Event::End(BytesEnd::new("Client")))?;
                }
                // The checker admits only parsed SIP URIs; this guards the document itself: a
                // CR/LF here would become a header line of the gateway's INVITE.
                DialTarget::Sip { uri }
                    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a <Sip> URI with whitespace or control characters is never rendered",
                    ));
                }
                DialTarget::Sip { uri } => write_text_element(w, BytesStart::new("Sip"), uri)?,
                DialTarget::Number { number } => {
                    write_text_element(w, BytesStart::new("Number"), number)?
                }
            }
            w.write_event(Event::End(BytesEnd::new("Dial")))
        }
    }
}

/// A generic element tree, what `parse` reads before it maps elements to verbs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a TwiML document into its element tree, checking that it is well-formed XML with a
/// `<Response>` root and nothing before the declaration.
pub fn parse_tree(xml: &str) -> Result<Element, TwimlError> {
    let malformed = |m: String| TwimlError::Malformed(m);
    if !xml.starts_with("<?xml") && !xml.starts_with("<Response") {
        return Err(malformed(
            "document must start with <?xml or <Response>".into(),
        ));
    }
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(e.to_string()))?;
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                return Err(malformed(format!(
                    "content after the root: <{}>",
                    String::from_utf8_lossy(start.name().as_ref())
                )));
            }
            Event::Start(start) => stack.push(to_element(&start)?),
            Event::Empty(start) => {
                let el = to_element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| malformed(e.to_string()))?;
                let text =
                    quick_xml::escape::unescape(&text).map_err(|e| malformed(e.to_string()))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root".into())),
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| malformed(e.to_string()))?;
                let resolved = match name.as_ref() {
                    "amp" => "&".to_owned(),
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    other => match r.resolve_char_ref().map_err(|e| malformed(e.to_string()))? {
                        Some(c) => c.to_string(),
                        None => return Err(malformed(format!("unknown entity &{other};"))),
                    },
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            Event::CData(c) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element".into()));
    }
    let root = root.ok_or_else(|| malformed("empty document".into()))?;
    if root.name != "Response" {
        return Err(malformed(format!(
            "root is <{}>, not <Response>",
            root.name
        )));
    }
    Ok(root)
}

fn to_element(start: &BytesStart<'_>) -> Result<Element, TwimlError> {
    let mut el = Element {
        name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| TwimlError::Malformed(e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| TwimlError::Malformed(e.to_string()))?
            .into_owned();
        el.attributes.push((key, value));
    }
    Ok(el)
}

/// Reads a TwiML document into verbs. Anything callgate does not emit is an error, which is how
/// the tests prove that only defined verbs and nouns go out.
pub fn parse(xml: &str) -> Result<Response, TwimlError> {
    let root = parse_tree(xml)?;
    let verbs = root
        .children
        .iter()
        .map(to_verb)
        .collect::<Result<_, _>>()?;
    Ok(Response { verbs })
}

fn to_say(el: &Element) -> Say {
    Say {
        text: el.text.clone(),
        voice: el.attr("voice").map(str::to_owned),
        language: el.attr("language").map(str::to_owned),
    }
}

fn to_verb(el: &Element) -> Result<Verb, TwimlError> {
    let unexpected = |what: &str| TwimlError::Malformed(format!("unexpected <{what}>"));
    Ok(match el.name.as_str() {
        "Say" => Verb::Say(to_say(el)),
        "Play" => Verb::Play(Play {
            url: el.text.trim().to_owned(),
        }),
        "Redirect" => Verb::Redirect {
            url: el.text.trim().to_owned(),
        },
        "Hangup" => Verb::Hangup,
        "Gather" => Verb::Gather(Gather {
            action: el.attr("action").unwrap_or_default().to_owned(),
            num_digits: el.attr("numDigits").and_then(|n| n.parse().ok()),
            finish_on_key: el.attr("finishOnKey").map(str::to_owned),
            timeout_secs: el.attr("timeout").and_then(|n| n.parse().ok()).unwrap_or(5),
            speech: el
                .attr("input")
                .is_some_and(|i| i.contains("speech"))
                .then(|| SpeechInput {
                    language: el.attr("language").unwrap_or("en-US").to_owned(),
                    hints: el.attr("hints").map(str::to_owned),
                }),
            prompts: el
                .children
                .iter()
                .map(|c| match c.name.as_str() {
                    "Say" => Ok(Prompt::Say(to_say(c))),
                    "Play" => Ok(Prompt::Play(Play {
                        url: c.text.trim().to_owned(),
                    })),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<_, _>>()?,
        }),
        "Enqueue" => Verb::Enqueue(Enqueue {
            queue: el.text.trim().to_owned(),
            action: el.attr("action").map(str::to_owned),
            workflow_sid: el.attr("workflowSid").map(str::to_owned),
            task: el
                .children
                .iter()
                .find(|c| c.name == "Task")
                .map(|t| t.text.clone()),
        }),
        "Dial" => {
            let noun = el
                .children
                .first()
                .ok_or_else(|| unexpected("Dial without a noun"))?;
            let target = match noun.name.as_str() {
                "Client" => DialTarget::Client {
                    identity: noun
                        .children
                        .iter()
                        .find(|c| c.name == "Identity")
                        .map_or_else(|| noun.text.trim().to_owned(), |i| i.text.trim().to_owned()),
                    parameters: noun
                        .children
                        .iter()
                        .filter(|c| c.name == "Parameter")
                        .map(|p| {
                            (
                                p.attr("name").unwrap_or_default().to_owned(),
                                p.attr("value").unwrap_or_default().to_owned(),
                            )
                        })
                        .collect(),
                },
                "Sip" => DialTarget::Sip {
                    uri: noun.text.trim().to_owned(),
                },
                "Number" => DialTarget::Number {
                    number: noun.text.trim().to_owned(),
                },
                other => return Err(unexpected(other)),
            };
            Verb::Dial(Dial {
                action: el.attr("action").map(str::to_owned),
                target,
            })
        }
        other => return Err(unexpected(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(text: &str) -> Say {
        Say {
            text: text.into(),
            voice: Some("Polly.Ewa".into()),
            language: Some("pl-PL".into()),
        }
    }

    #[test]
    fn starts_with_declaration_and_round_trips() {
        let doc = Response::new()
            .push(Verb::Gather(Gather {
                action: "https://x.example/twilio/ivr/code".into(),
                num_digits: None,
                finish_on_key: Some("#".into()),
                timeout_secs: 6,
                prompts: vec![Prompt::Say(say("Podaj kod & naciśnij krzyżyk"))],
                speech: None,
            }))
            .push(Verb::Redirect {
                url: "https://x.example/twilio/ivr/code".into(),
            })
            .push(Verb::Hangup);
        let xml = doc.render().unwrap();
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"),
            "{xml}"
        );
        assert!(xml.contains("&amp;"));
        assert_eq!(parse(&xml).unwrap(), doc);
    }

    #[test]
    fn hostile_text_is_escaped_and_control_characters_dropped() {
        let nasty = "</Say><Hangup/><Say>\u{0}\u{1b}\"'";
        let doc = Response::new().push(Verb::Say(say(nasty)));
        let xml = doc.render().unwrap();
        assert!(!xml.contains("<Hangup/>"));
        let back = parse(&xml).unwrap();
        assert_eq!(back.verbs, vec![Verb::Say(say("</Say><Hangup/><Say>\"'"))]);
    }

    #[test]
    fn task_and_client_parameters_round_trip() {
        let doc = Response::new()
            .push(Verb::Enqueue(Enqueue {
                // With a workflow TaskRouter routes the task; the queue name is not sent.
                queue: String::new(),
                action: None,
                workflow_sid: Some("WW0123456789abcdef0123456789abcdef".into()),
                task: Some(r#"{"name":"<Jan & Anna>"}"#.into()),
            }))
            .push(Verb::Dial(Dial {
                action: Some("https://x.example/a".into()),
                target: DialTarget::Client {
                    identity: "agent".into(),
                    parameters: vec![("level".into(), "high \"quoted\"".into())],
                },
            }));
        assert_eq!(parse(&doc.render().unwrap()).unwrap(), doc);
    }

    #[test]
    fn oversized_documents_are_refused() {
        let doc = Response::new().push(Verb::Say(say(&"a".repeat(MAX_DOCUMENT_BYTES))));
        assert!(matches!(doc.render(), Err(TwimlError::TooLarge(_))));
    }

    #[test]
    fn parser_rejects_foreign_documents() {
        assert!(parse(" <?xml version=\"1.0\"?><Response/>").is_err());
        assert!(parse("<?xml version=\"1.0\"?><Html/>").is_err());
        assert!(parse("<?xml version=\"1.0\"?><Response><Sms>x</Sms></Response>").is_err());
        assert!(parse("<?xml version=\"1.0\"?><Response><Say>x</Response>").is_err());
    }
}
