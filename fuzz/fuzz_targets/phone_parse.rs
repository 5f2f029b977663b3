//! Arbitrary text as a phone number, typed by an admin (`PhoneNumber::parse`) or sent by the
//! network as the caller ID (`CallerId::from_twilio`): never a panic, and a parsed number parses
//! again to itself.
#![no_main]

use callgate::domain::{CallerId, PhoneNumber, Region, mask_number};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let regions = ["PL", "US", "GB", "DE"].map(|r| Region::parse(r).expect("known region"));
    let _ = Region::parse(input);
    let _ = mask_number(input);
    for region in regions {
        if let Ok(number) = PhoneNumber::parse(input, region) {
            assert!(number.as_str().starts_with('+'), "{number} is not E.164");
            let again = PhoneNumber::parse(number.as_str(), region);
            assert_eq!(again.as_ref().ok(), Some(&number), "{input:?} -> {number} -> {again:?}");
            // The same number read in any other region stays the same number.
            for other in regions {
                assert_eq!(PhoneNumber::parse(number.as_str(), other).ok(), Some(number.clone()));
            }
            let _ = number.masked();
        }
        let caller = CallerId::from_twilio(Some(input), region);
        let _ = caller.masked();
        if let CallerId::Number(n) = &caller {
            assert!(n.as_str().starts_with('+'));
            assert_eq!(CallerId::from_twilio(Some(n.as_str()), region), caller);
        }
    }
});
