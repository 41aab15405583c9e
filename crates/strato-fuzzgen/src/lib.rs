//! Structured fuzz input, shared by the `fuzz/` targets (libFuzzer hands them bytes) and by
//! the property tests in `cargo test` (a seeded generator hands them bytes).
//!
//! Generators read their choices from a [`Source`]: each choice consumes a few bytes, and an
//! exhausted source answers zeros, so every byte string is a valid input and a short one
//! means "the plain case". Generators build inputs that are valid by construction (a ring
//! at a fixed address, buffers inside guest memory, well-formed headers) and break them
//! only [`Source::rarely`], which keeps the fuzzer deep in the code that parses valid input
//! while still trying every kind of breakage.
//!
//! [`alloc::Meter`] is a global allocator that counts what the current thread holds, so a
//! target can check that hostile input never makes a parser hold more than a fixed bound.

pub mod alloc;

/// Reads choices from fuzz bytes. Once the bytes run out every read is zero.
pub struct Source<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Source<'a> {
    /// A source over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// A coin toss.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// True about one time in 16: the knob for breaking a valid input.
    pub fn rarely(&mut self) -> bool {
        self.u8() & 0xf == 0xf
    }

    /// A value in `0..n` (0 when `n` is 0), from as few bytes as `n` needs.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let v = if n <= 1 << 8 {
            u64::from(self.u8())
        } else if n <= 1 << 16 {
            u64::from(self.u16())
        } else if n <= 1 << 32 {
            u64::from(self.u32())
        } else {
            self.u64()
        };
        v % n
    }

    /// A value in `lo..=hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo).saturating_add(1))
    }

    /// As [`Source::range`], for `usize`.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        // usize is at most 64 bits here.
        self.range(lo as u64, hi as u64) as usize
    }

    /// One of `items` (the first when the source is empty); `None` only for no items.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    /// Up to `n` bytes, fewer where the input ends.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or_default()
    }

    /// Fills `buf` (zeros past the end of the input).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let got = self.bytes(buf.len());
        buf.fill(0);
        if let Some(dst) = buf.get_mut(..got.len()) {
            dst.copy_from_slice(got);
        }
    }

    /// Every byte not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.remaining())
    }
}

/// A small deterministic generator (splitmix64) that makes the property tests' inputs.
pub struct Prng(u64);

impl Prng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5354_5241_544f_4655)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(r.get(..n).unwrap_or(&r));
        }
    }
}

/// Runs `case` on `cases` inputs of up to `max_len` random bytes each, from fixed seeds (the
/// same inputs on every run). A failing case names its seed and length, and its bytes go to
/// `$TMPDIR/strato-fuzzgen-<name>-<seed>`, so it can be replayed through the fuzz target
/// (`cargo fuzz run TARGET FILE`).
pub fn property(name: &str, cases: u64, max_len: usize, mut case: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; max_len];
    for seed in 0..cases {
        let mut rng = Prng::new(seed.wrapping_mul(0x100_0000_01b3) ^ name_hash(name));
        // Short inputs are the common, plain case; long ones reach the deep paths.
        let len = (rng.next_u64() % (max_len as u64 + 1)) as usize;
        let input = buf.get_mut(..len).unwrap_or_default();
        rng.fill(input);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(input)));
        if let Err(panic) = run {
            let path = std::env::temp_dir().join(format!("strato-fuzzgen-{name}-{seed}"));
            let saved = std::fs::write(&path, &*input).is_ok();
            eprintln!(
                "property {name}: case {seed} ({len} bytes) failed{}",
                if saved {
                    format!("; input saved to {}", path.display())
                } else {
                    String::new()
                }
            );
            std::panic::resume_unwind(panic);
        }
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_source_reads_zeros() {
        let mut s = Source::new(&[]);
        assert!(s.is_empty());
        assert_eq!((s.u8(), s.u16(), s.u32(), s.u64()), (0, 0, 0, 0));
        assert!(!s.bool() && !s.rarely());
        assert_eq!(s.range(3, 9), 3);
        assert_eq!(s.pick(&[7, 8]), Some(&7));
        assert_eq!(s.pick::<u8>(&[]), None);
        assert!(s.bytes(4).is_empty());
        let mut b = [9u8; 3];
        s.fill(&mut b);
        assert_eq!(b, [0; 3]);
    }

    #[test]
    fn reads_little_endian_and_bounds_choices() {
        let mut s = Source::new(&[1, 2, 3, 4, 5, 0xff, 0xff]);
        assert_eq!(s.u16(), 0x0201);
        assert_eq!(s.u8(), 3);
        assert_eq!(s.remaining(), 4);
        assert_eq!(s.below(3), 4 % 3);
        assert_eq!(s.range(10, 12), 10 + 5 % 3);
        assert!(s.rarely());
        assert_eq!(s.bytes(5), &[0xff]);
        assert!(s.is_empty());
    }

    #[test]
    fn prng_is_deterministic() {
        let (mut a, mut b) = (Prng::new(7), Prng::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(Prng::new(8).next_u64(), Prng::new(7).next_u64());
    }

    #[test]
    fn property_runs_every_case_and_reports_failures() {
        let mut lens = Vec::new();
        property("count", 20, 64, |b| lens.push(b.len()));
        assert_eq!(lens.len(), 20);
        assert!(lens.iter().all(|&l| l <= 64));
        assert!(lens.iter().any(|&l| l > 0));
        let failed = std::panic::catch_unwind(|| {
            property("fail", 5, 8, |b| assert!(b.len() > 100, "too short"));
        });
        assert!(failed.is_err());
        // The failing case saved its input (seed 0); it is not a finding to keep.
        let saved = std::env::temp_dir().join("strato-fuzzgen-fail-0");
        assert!(saved.exists());
        let _ = std::fs::remove_file(saved);
    }
}
