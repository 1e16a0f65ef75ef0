//! The service scheduler's configuration (`framework deploy --config K=V`)
//! beyond the spec's seed (see `spec`): how restarts back off. Read in
//! `registered`, which every fresh instance gets first.

use wasmesos_sdk::Registration;

/// Config key: the delay before replacing an instance after a failure, ms.
pub const RESTART_BACKOFF_MS: &str = "restart-backoff-ms";
/// Config key: the most the delay grows to, ms.
pub const RESTART_BACKOFF_MAX_MS: &str = "restart-backoff-max-ms";
/// Config key: how long an instance must have run for its failure to count
/// as the first of a new series rather than one more in a crash loop, ms.
pub const STABLE_MS: &str = "stable-ms";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub restart_backoff_ms: u64,
    pub restart_backoff_max_ms: u64,
    pub stable_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            restart_backoff_ms: 1000,
            restart_backoff_max_ms: 60_000,
            stable_ms: 10_000,
        }
    }
}

impl Config {
    pub fn from_registration(info: &Registration) -> Result<Config, String> {
        let d = Config::default();
        Ok(Config {
            restart_backoff_ms: info
                .config_parse(RESTART_BACKOFF_MS)?
                .unwrap_or(d.restart_backoff_ms),
            restart_backoff_max_ms: info
                .config_parse(RESTART_BACKOFF_MAX_MS)?
                .unwrap_or(d.restart_backoff_max_ms),
            stable_ms: info.config_parse(STABLE_MS)?.unwrap_or(d.stable_ms),
        })
    }

    /// The delay after `failures` consecutive failures (from 1): the base
    /// doubled per earlier failure, capped.
    pub fn restart_delay_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        self.restart_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.restart_backoff_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_keys_override() {
        let c = Config::default();
        let delays: Vec<u64> = (1..=8).map(|f| c.restart_delay_ms(f)).collect();
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]
        );
        let info = Registration {
            framework_id: "fw".into(),
            name: "web".into(),
            role: "r".into(),
            config: vec![
                (RESTART_BACKOFF_MS.into(), "10".into()),
                (STABLE_MS.into(), "5".into()),
            ],
            reregistered: false,
        };
        let c = Config::from_registration(&info).unwrap();
        assert_eq!(
            (c.restart_backoff_ms, c.restart_backoff_max_ms, c.stable_ms),
            (10, 60_000, 5)
        );
        let bad = Registration {
            config: vec![(RESTART_BACKOFF_MS.into(), "x".into())],
            ..info
        };
        assert!(Config::from_registration(&bad).is_err());
    }
}
