//! The counting algorithms a limit can use, by the names the config and every listing give them.
//! What each one admits is the stores' to keep (see `store::meter`); this leaf only names them.

use std::fmt;

/// How a limit counts its hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Windows aligned to the Unix epoch; the count starts over when one ends (the Go service's).
    #[default]
    FixedWindow,
    /// Never more than the limit in any span of one window length.
    SlidingWindow,
    /// GCRA: refills the limit evenly over each window, holds at most `burst` at once.
    TokenBucket,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::TokenBucket,
    ];

    /// The name in the config, `/api/limits`, `/rlconfig` and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::TokenBucket => "token_bucket",
        }
    }

    /// The algorithm of a config name, exactly as [`Algorithm::name`] writes it.
    pub fn parse(text: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == text)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Algorithm;

    #[test]
    fn names_round_trip() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::parse(algorithm.name()), Some(algorithm));
        }
        assert_eq!(Algorithm::parse("Sliding_Window"), None);
        assert_eq!(Algorithm::parse(""), None);
    }
}
