//! One-time call codes: what the customer sees in their logged-in account and types on the
//! phone. Eight random digits (26.6 bits, above NIST's 20-bit floor for look-up secrets), single
//! use, short-lived; stored only as a keyed hash.

use rand::Rng;
use zeroize::Zeroizing;

pub const DIGITS: usize = 8;

pub fn generate() -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    Zeroizing::new(
        (0..DIGITS)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_eight_digits_and_vary() {
        let a = super::generate();
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        let more: std::collections::HashSet<String> =
            (0..50).map(|_| super::generate().to_string()).collect();
        assert!(more.len() > 45, "random codes should rarely repeat");
    }
}
