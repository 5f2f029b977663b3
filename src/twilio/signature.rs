//! `X-Twilio-Signature`: HMAC-SHA1 over the full URL followed by the sorted form parameters,
//! keyed with the account's auth token, base64-encoded (see shared/reference/twilio-voice.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Computes the signature Twilio sends for a POST to `url` with form `params`.
/// Parameters are sorted by name in byte order; a repeated name contributes each of its values,
/// sorted. Name and value are appended with no separator.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then(a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    // An HMAC accepts a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL forms Twilio may have signed: as configured, and with the scheme's default port added
/// or removed (Twilio's own validators accept both, because Twilio is not consistent there).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let default_port = if url.starts_with("https://") {
        "443"
    } else if url.starts_with("http://") {
        "80"
    } else {
        return variants;
    };
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let (before, rest) = (&url[..authority_start], &url[authority_end..]);
    // `host:port`, where the port is all digits; `[::1]` has no port even though it has colons.
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some((host, p)) if p == default_port => variants.push(format!("{before}{host}{rest}")),
        Some(_) => {}
        None => variants.push(format!("{before}{authority}:{default_port}{rest}")),
    }
    variants
}

/// True when `header` is the signature of the request under any of `tokens` (a list, so an auth
/// token can be rotated without refusing calls) and any URL variant. Compared in constant time.
pub fn is_valid(tokens: &[String], url: &str, params: &[(String, String)], header: &str) -> bool {
    let header = header.trim().as_bytes();
    let mut valid = subtle::Choice::from(0);
    for token in tokens {
        for variant in url_variants(url) {
            let expected = compute(token, &variant, params);
            valid |= expected.as_bytes().ct_eq(header);
        }
    }
    valid.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn twilio_test_vector_as_given() {
        assert_eq!(
            compute("12345", URL, &vector_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn twilio_test_vectors_with_ports() {
        let p = vector_params();
        assert_eq!(
            compute(
                "12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &p
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            compute("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", &p),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            compute(
                "12345",
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                &p
            ),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
    }

    #[test]
    fn repeated_names_are_sorted_by_value() {
        let p: Vec<(String, String)> = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(compute("12345", URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn default_port_variants_validate_both_ways() {
        let p = vector_params();
        // Signed with :443, configured without it.
        assert!(is_valid(
            &["12345".into()],
            URL,
            &p,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // Signed without the port, configured with :443.
        assert!(is_valid(
            &["12345".into()],
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // A non-default port is never dropped or added.
        assert!(!is_valid(
            &["12345".into()],
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &p,
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn rotated_tokens_and_wrong_signatures() {
        let p = vector_params();
        let tokens = vec!["new-token".to_owned(), "12345".to_owned()];
        assert!(is_valid(&tokens, URL, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!is_valid(
            &["other".into()],
            URL,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!is_valid(&tokens, URL, &p, ""));
        let mut tampered = p.clone();
        tampered[2].1 = "9999".into();
        assert!(!is_valid(
            &tokens,
            URL,
            &tampered,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn url_variants_cover_default_ports() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            vec!["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://a.example:80/x"),
            vec!["http://a.example:80/x", "http://a.example/x"]
        );
        assert_eq!(
            url_variants("http://127.0.0.1:8080/x"),
            vec!["http://127.0.0.1:8080/x"]
        );
    }
}
