//! Per-tenant request rates: a token bucket per tenant, refilled at its
//! `max_requests_per_second` and holding as many (so a burst of one
//! second's worth passes). A tenant over its rate is refused at once,
//! before any work, and nobody else notices.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use wasmesos_api::TenantId;

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// Whether `tenant`, allowed `per_second` requests (0: any number),
    /// may make one more at `now`.
    pub fn admit(&self, tenant: &TenantId, per_second: u32, now: Instant) -> bool {
        if per_second == 0 {
            return true;
        }
        let rate = f64::from(per_second);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_tenant() {
        let limiter = RateLimiter::default();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        let t0 = Instant::now();
        let passed = (0..20).filter(|_| limiter.admit(&a, 10, t0)).count();
        assert_eq!(passed, 10, "a burst of one second's worth");
        assert!(limiter.admit(&b, 10, t0), "another tenant is not affected");
        assert!(!limiter.admit(&a, 10, t0 + Duration::from_millis(50)));
        assert!(limiter.admit(&a, 10, t0 + Duration::from_millis(150)));
        assert!(limiter.admit(&a, 0, t0), "0 is no limit");
    }
}
