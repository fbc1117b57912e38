//! The simulation's only source of chance: xoshiro256** seeded through splitmix64, written out
//! here so that a seed means the same run on every machine and every version of every crate
//! (no global RNG, no dependency whose stream could change under us).
//!
//! Each concern draws from a stream of its own ([`Rng::stream`]): the world, the traffic, the
//! people's behaviour, the faults and the scheduling. Turning faults off then leaves the
//! traffic of a seed as it was, which makes a failing seed easier to narrow down.

/// A seeded pseudo-random stream.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// The streams a run draws from.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    World = 1,
    Traffic = 2,
    People = 3,
    Faults = 4,
    Schedule = 5,
    Admin = 6,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut state = seed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        Rng { s }
    }

    /// The stream `stream` of seed `seed`.
    pub fn stream(seed: u64, stream: Stream) -> Rng {
        Rng::new(seed ^ (stream as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// A usize index below `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p` (0 to 1). Floats only decide chances, never money, and IEEE
    /// arithmetic on them is the same everywhere.
    pub fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        unit < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// An exponentially distributed delay with the given mean (Poisson arrivals), at least 1.
    pub fn exponential(&mut self, mean_ms: f64) -> i64 {
        let unit = ((self.next_u64() >> 11) as f64 + 1.0) * (1.0 / ((1u64 << 53) as f64 + 1.0));
        ((-ln(unit) * mean_ms) as i64).max(1)
    }
}

/// The natural logarithm of `x` in (0, 1], from IEEE basic operations only: the platform's
/// `ln` may differ in its last bit between machines, and a seed must replay everywhere.
fn ln(x: f64) -> f64 {
    // x = m · 2^e with m in [1, 2); ln m = 2 atanh((m − 1)/(m + 1)), a fast series there.
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let (mut term, mut sum) = (t, 0.0);
    for k in 0..30 {
        sum += term / f64::from(2 * k + 1);
        term *= t2;
    }
    2.0 * sum + e as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_the_same_stream_every_time_and_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::stream(7, Stream::Faults);
        let mut y = Rng::stream(7, Stream::Traffic);
        assert_ne!(x.next_u64(), y.next_u64());
    }

    #[test]
    fn the_logarithm_is_the_platforms_to_the_last_few_bits() {
        for x in [1e-12, 0.001, 0.25, 0.5, 0.7, 0.999_999, 1.0] {
            assert!((ln(x) - x.ln()).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn ranges_stay_inside_their_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let v = rng.range(-3, 5);
            assert!((-3..=5).contains(&v));
            assert!(rng.below(3) < 3);
            assert!(rng.exponential(10.0) >= 1);
        }
    }
}
