//! A SIP URI a department hands calls to: `sip:` or `sips:`, `user@host[:port]`, then optional
//! `;parameters` and `?headers` (RFC 3261, section 25.1, restricted to what a dial target
//! needs). It ends up as the text of TwiML's `<Dial><Sip>` and in the gateway's INVITE, so a
//! character outside the grammar, above all whitespace or a control character (CR/LF would
//! start a new SIP header line), is refused when the script is checked, never rendered.

use std::fmt;

use super::ParseError;

/// Twilio's own limit on a `<Sip>` noun's headers is 1024 characters; the base URI an admin
/// writes stays well under that, leaving room for the headers callgate appends.
const MAX_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri(String);

impl SipUri {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new(format!(
                "must not contain whitespace or control characters (found {:?})",
                c
            )));
        }
        if s.len() > MAX_LEN {
            return Err(ParseError::new(format!(
                "must be at most {MAX_LEN} characters"
            )));
        }
        let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
        let rest = if lower.starts_with("sip:") {
            &s[4..]
        } else if lower == "sips:" {
            &s[5..]
        } else {
            return Err(ParseError::new("must start with sip: or sips:"));
        };
        let (address, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (rest, None),
        };
        let mut parts = address.split(';');
        let user_host = parts.next().unwrap_or_default();
        let Some((user, host_port)) = user_host.rsplit_once('@') else {
            return Err(ParseError::new(
                "must name a user and a host: sip:user@host",
            ));
        };
        if user.is_empty() || !user.split('%').enumerate().all(escaped_ok(is_user_char)) {
            return Err(ParseError::new(
                "the user part must be letters, digits, -_.!~*'()&=+$, or %XX escapes",
            ));
        }
        host_and_port(host_port)?;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.is_empty()
                || !name.split('%').enumerate().all(escaped_ok(is_param_char))
                || !value.split('%').enumerate().all(escaped_ok(is_param_char))
            {
                return Err(ParseError::new(format!(
                    "parameter {param:?} is not a SIP URI parameter (;name or ;name=value)"
                )));
            }
        }
        if let Some(headers) = headers {
            for header in headers.split('&') {
                let Some((name, value)) = header.split_once('=') else {
                    return Err(ParseError::new(format!(
                        "header {header:?} must be name=value"
                    )));
                };
                if name.is_empty()
                    || !name.split('%').enumerate().all(escaped_ok(is_header_char))
                    || !value.split('%').enumerate().all(escaped_ok(is_header_char))
                {
                    return Err(ParseError::new(format!(
                        "header {header:?} has characters a SIP URI header cannot carry (use %XX)"
                    )));
                }
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for SipUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one piece of a text split at `%`: every piece after the first must start with two
/// hex digits (the escape), and all other characters must pass `allowed`.
fn escaped_ok(allowed: fn(char) -> bool) -> impl Fn((usize, &str)) -> bool {
    move |(i, piece)| {
        let rest = if i == 0 {
            piece
        } else {
            let mut chars = piece.chars();
            match (chars.next(), chars.next()) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => &piece[2..],
                _ => return false,
            }
        };
        rest.chars().all(allowed)
    }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c)
}

fn is_user_char(c: char) -> bool {
    is_unreserved(c) || "&=+$,".contains(c)
}

fn is_param_char(c: char) -> bool {
    is_unreserved(c) || "[]/:&+$".contains(c)
}

fn is_header_char(c: char) -> bool {
    is_unreserved(c) || "[]/?:+$".contains(c)
}

fn host_and_port(s: &str) -> Result<(), ParseError> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(ParseError::new("an IPv6 host must be closed with ]"));
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(ParseError::new(format!("{addr:?} is not an IPv6 address")));
        }
        match after {
            "" => ("", None),
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return Err(ParseError::new("only :port may follow an IPv6 host")),
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if !host.is_empty() || !s.starts_with('[') {
        let labels_ok = !host.is_empty()
            && host.len() <= 253
            && host.trim_end_matches('.').split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(ParseError::new(format!(
                "{host:?} is not a host name or IPv4 address"
            )));
        }
    }
    if let Some(port) = port
        && !(port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p)))
    {
        return Err(ParseError::new(format!("port {port:?} must be 1-65535")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_targets_parse() {
        for ok in [
            "sip:billing@pbx.example.com",
            "sips:billing@pbx.example.com:5061",
            "sip:+48221234567@10.0.0.5;transport=tls",
            "sip:agent%20one@pbx.example.com;transport=udp;lr",
            "sip:queue@[2001:db8::1]:5060",
            "SIP:billing@pbx.example.com",
            "sip:billing@pbx.example.com?X-Desk=billing&X-Site=waw",
        ] {
            assert!(SipUri::parse(ok).is_ok(), "{ok}: {:?}", SipUri::parse(ok));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "sip:billing@pbx.example.com\r\nX-Evil: 1",
            "sip:billing@pbx.example.com\n",
            " sip:billing@pbx.example.com",
            "sip:bill ing@pbx.example.com",
            "sip:billing@pbx.example.com\u{7f}",
            "sip:pbx.example.com",
            "sip:@pbx.example.com",
            "sip:billing@",
            "sip:billing@pbx..example.com",
            "sip:billing@-pbx.example.com",
            "sip:billing@pbx.example.com:0",
            "sip:billing@pbx.example.com:99999",
            "sip:billing@pbx.example.com:50a",
            "sip:bil<ling@pbx.example.com",
            "sip:billing@pbx.example.com;tr\"ansport=tls",
            "sip:billing@pbx.example.com?X-Evil",
            "sip:billing@pbx.example.com?X-A=<b>",
            "sip:billing%2@pbx.example.com",
            "sip:billing@[zz::1]",
            "tel:+48221234567",
            "http://pbx.example.com",
            "",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
