//! The jobs scheduler's configuration (`framework deploy --config K=V`),
//! read in `registered` and kept in memory: every fresh instance is told
//! `registered` (with the config) before anything else.

use wasmesos_sdk::Registration;

/// Config key: the delay before a failed attempt's retry, in ms.
pub const RETRY_BACKOFF_MS: &str = "retry-backoff-ms";
/// Config key: the most the delay grows to, in ms.
pub const RETRY_BACKOFF_MAX_MS: &str = "retry-backoff-max-ms";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Delay after a job's first failed attempt; doubles with each further
    /// one. 0 retries at once.
    pub retry_backoff_ms: u64,
    /// Cap on the delay.
    pub retry_backoff_max_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retry_backoff_ms: 1000,
            retry_backoff_max_ms: 60_000,
        }
    }
}

impl Config {
    /// The config in `info`, defaults for keys not given. An error names
    /// the key whose value is not a whole number of milliseconds.
    pub fn from_registration(info: &Registration) -> Result<Config, String> {
        let d = Config::default();
        Ok(Config {
            retry_backoff_ms: info
                .config_parse(RETRY_BACKOFF_MS)?
                .unwrap_or(d.retry_backoff_ms),
            retry_backoff_max_ms: info
                .config_parse(RETRY_BACKOFF_MAX_MS)?
                .unwrap_or(d.retry_backoff_max_ms),
        })
    }

    /// How long the retry after failed attempt `attempt` (from 1) waits:
    /// the base delay doubled per earlier attempt, capped.
    pub fn retry_delay_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(63);
        self.retry_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_backoff_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(config: &[(&str, &str)]) -> Registration {
        Registration {
            framework_id: "fw".into(),
            name: "jobs".into(),
            role: "default".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reregistered: false,
        }
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Config::from_registration(&info(&[])), Ok(Config::default()));
        let c = Config::from_registration(&info(&[
            (RETRY_BACKOFF_MS, "250"),
            (RETRY_BACKOFF_MAX_MS, "900"),
        ]))
        .unwrap();
        assert_eq!((c.retry_backoff_ms, c.retry_backoff_max_ms), (250, 900));
        let err = Config::from_registration(&info(&[(RETRY_BACKOFF_MS, "soon")])).unwrap_err();
        assert!(err.contains(RETRY_BACKOFF_MS), "{err}");
    }

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let c = Config::default();
        let delays: Vec<u64> = (1..=8).map(|n| c.retry_delay_ms(n)).collect();
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(c.retry_delay_ms(u32::MAX), 60_000);
        let none = Config {
            retry_backoff_ms: 0,
            ..c
        };
        assert_eq!(none.retry_delay_ms(5), 0);
    }
}
