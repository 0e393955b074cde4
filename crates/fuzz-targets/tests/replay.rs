//! The fuzz targets on stable, in every test run: the checked-in seeds, every saved regression, the local
//! libFuzzer corpus when there is one, and a deterministic stream of pseudo-random and mutated inputs.
//! libFuzzer (`cargo xtask fuzz`) explores far more; this keeps what it found from coming back.

use std::path::{Path, PathBuf};

use setpoint_fuzz_targets::TARGETS;

/// Random inputs per target in a test run: enough to hit every op of the stateful target many times,
/// few enough to stay well under a second each in a debug build.
const RANDOM_INPUTS: usize = 3_000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// SplitMix64: tiny, deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A seed with a few bytes flipped, inserted or cut — the cheapest of libFuzzer's mutations.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(3) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            _ => {}
        }
    }
    v
}

#[test]
fn every_target_holds_on_seeds_regressions_corpus_and_random_inputs() {
    let mut report = Vec::new();
    for (name, target) in TARGETS {
        let mut saved = Vec::new();
        for sub in ["seeds", "regressions", "corpus"] {
            saved.extend(files(&fuzz_dir().join(sub).join(name)));
        }
        let inputs: Vec<Vec<u8>> = saved.iter().filter_map(|p| std::fs::read(p).ok()).collect();
        assert!(!inputs.is_empty(), "no seeds for {name}");
        for (path, input) in saved.iter().zip(&inputs) {
            let outcome = std::panic::catch_unwind(|| target(input));
            assert!(outcome.is_ok(), "{name} broke on {}", path.display());
        }
        let mut rng = Rng(0x5E7_901_u64 ^ name.len() as u64);
        for i in 0..RANDOM_INPUTS {
            let input = if i % 2 == 0 {
                let len = rng.below(256);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let seed = &inputs[rng.below(inputs.len())];
                mutate(&mut rng, seed)
            };
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{name} broke on random input {input:?}");
        }
        report.push(format!(
            "{name}: {} saved + {RANDOM_INPUTS} generated",
            inputs.len()
        ));
    }
    println!("{}", report.join("\n"));
}
