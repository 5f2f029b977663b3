//! Arbitrary bytes as a webhook: `<url>\n<X-Twilio-Signature>\n<form body>`. The form goes
//! through the signature check and `read_call` exactly as a request does: nothing may
//! panic, and a signature computed over the parsed parameters must validate.
#![no_main]

use callgate::domain::Region;
use callgate::twilio::signature;
use callgate::twilio::webhook::{SignedForm, read_call, signed_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let url_bytes = parts.next().unwrap_or_default();
    let header_bytes = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let url_raw = String::from_utf8_lossy(url_bytes);
    let header = String::from_utf8_lossy(header_bytes);
    let tokens = ["12345".to_owned(), String::from_utf8_lossy(&body[..body.len().min(8)]).into_owned()];

    // What the server signs: the public base plus the path and query as received.
    let url = match url_raw.parse::<axum::http::Uri>() {
        Ok(uri) => signed_url("https://cg.example:443/", &uri),
        Err(_) => url_raw.clone().into_owned(),
    };
    let _ = signature::url_variants(&url);

    for is_get in [false, true] {
        let Ok((params, valid)) = SignedForm::check(body, is_get, Some(&tokens), &url, Some(&header))
        else {
            continue;
        };
        // The signature Twilio would send for these parameters is accepted, under every token.
        let signed: &[(String, String)] = if is_get { &[] } else { &params };
        for token in &tokens {
            let good = signature::compute(token, &url, signed);
            let (_, ok) = SignedForm::check(body, is_get, Some(&tokens), &url, Some(&good))
                .expect("the same body parses twice");
            assert!(ok, "a correct signature was refused");
        }
        if valid {
            assert!(tokens.iter().any(|t| {
                signature::url_variants(&url)
                    .iter()
                    .any(|u| signature::compute(t, u, signed) == header.trim())
            }));
        }
        let form = SignedForm { params };
        for region in [Region::default(), Region::parse("US").expect("US is a region")] {
            if let Ok(voice) = read_call(&form, region) {
                let _ = voice.caller.masked();
                let _ = voice.caller.throttle_key();
                if let Some(called) = &voice.called {
                    assert!(called.len() <= 64 && !called.chars().any(char::is_control));
                }
            }
        }
    }
});
