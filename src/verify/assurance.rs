//! How sure we are of who is calling, from the factors the call presented.

use serde::Serialize;

/// One proof the caller gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// The caller ID equals the account's registered phone (and STIR/SHAKEN did not fail). A
    /// risk signal that strengthens a secret, never a proof on its own.
    CallerId,
    /// The permanent account code: something the caller knows.
    AccountCode,
    /// A one-time code issued inside the logged-in account: proves the session, now.
    CallCode,
    /// An authenticator app's code: something the caller has.
    Totp,
    /// A knowledge question answered (date of birth, ...). Weak: over half of fraudsters answer
    /// them, so it is shown to the agent but raises no level.
    Knowledge,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallerId => "caller_id",
            Self::AccountCode => "account_code",
            Self::CallCode => "call_code",
            Self::Totp => "totp",
            Self::Knowledge => "knowledge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::CallerId,
            Self::AccountCode,
            Self::CallCode,
            Self::Totp,
            Self::Knowledge,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }
}

/// The set of factors, kept sorted and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Factors(Vec<Factor>);

impl Factors {
    pub fn add(&mut self, factor: Factor) {
        if !self.0.contains(&factor) {
            self.0.push(factor);
            self.0.sort();
        }
    }

    pub fn contains(&self, factor: Factor) -> bool {
        self.0.contains(&factor)
    }

    pub fn iter(&self) -> impl Iterator<Item = Factor> + '_ {
        self.0.iter().copied()
    }

    /// Comma-separated names, as stored.
    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_db(s: &str) -> Self {
        let mut factors = Self::default();
        for f in s.split(',').filter_map(Factor::parse) {
            factors.add(f);
        }
        factors
    }

    pub fn level(&self) -> AssuranceLevel {
        use Factor::*;
        let has = |f| self.contains(f);
        if has(Totp) && (has(AccountCode) || has(CallCode)) {
            AssuranceLevel::High
        } else if has(CallCode) || has(Totp) || (has(AccountCode) && has(CallerId)) {
            AssuranceLevel::Medium
        } else if has(AccountCode) {
            AssuranceLevel::Low
        } else {
            AssuranceLevel::None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssuranceLevel {
    None,
    Low,
    Medium,
    High,
}

impl AssuranceLevel {
    /// `verified` in the screen-pop means medium or higher.
    pub fn is_verified(self) -> bool {
        self >= Self::Medium
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Factor::*;
    use super::*;

    fn level(fs: &[Factor]) -> AssuranceLevel {
        let mut f = Factors::default();
        fs.iter().for_each(|&x| f.add(x));
        f.level()
    }

    #[test]
    fn levels_follow_the_rules() {
        assert_eq!(level(&[]), AssuranceLevel::None);
        assert_eq!(
            level(&[CallerId]),
            AssuranceLevel::None,
            "caller ID alone proves nothing"
        );
        assert_eq!(level(&[AccountCode]), AssuranceLevel::Low);
        assert_eq!(level(&[AccountCode, CallerId]), AssuranceLevel::Medium);
        assert_eq!(level(&[CallCode]), AssuranceLevel::Medium);
        assert_eq!(level(&[Totp]), AssuranceLevel::Medium);
        assert_eq!(level(&[AccountCode, Totp]), AssuranceLevel::High);
        assert_eq!(
            level(&[AccountCode, Knowledge]),
            AssuranceLevel::Low,
            "a knowledge answer raises no level"
        );
        assert!(!AssuranceLevel::Low.is_verified());
        assert!(AssuranceLevel::Medium.is_verified());
    }

    #[test]
    fn factors_round_trip_through_storage() {
        let mut f = Factors::default();
        f.add(Totp);
        f.add(AccountCode);
        f.add(Totp);
        assert_eq!(f.to_db(), "account_code,totp");
        assert_eq!(Factors::from_db(&f.to_db()), f);
        assert_eq!(Factors::from_db(""), Factors::default());
    }
}
