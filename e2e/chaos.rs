//! Chaos for the e2e tests: when to kill the controller (SIGKILL) and start it again.

use std::time::Duration;

/// Kill the controller with SIGKILL and start it again at random moments, this far apart.
#[derive(Clone, Copy, Debug)]
pub struct Kills {
    pub min: Duration,
    pub max: Duration,
}

/// Kills 0.5-3 s apart: several in one rolling update, with time to act between them.
pub const EVERY_HALF_TO_THREE_SECONDS: Kills = Kills {
    min: Duration::from_millis(500),
    max: Duration::from_millis(3000),
};

/// A small linear congruential generator for kill times (no dependency, seeded from the clock).
pub struct Lcg(u64);

impl Lcg {
    pub fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    /// A duration uniformly between `min` and `max`.
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let span = max.saturating_sub(min).as_millis().max(1) as u64;
        min + Duration::from_millis((self.0 >> 33) % span)
    }
}
