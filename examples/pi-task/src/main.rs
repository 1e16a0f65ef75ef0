//! `pi-task`: one Monte Carlo piece of the `pi` example, a WASI preview 1
//! task. `pi-task --samples N --seed S` draws N points uniformly in the
//! unit square (a SplitMix64 stream from seed S, so a retry repeats the
//! same piece exactly), counts the hits inside the quarter circle, and
//! writes `{"hits":H,"samples":N}` to the file `result` in its sandbox (the
//! current directory) and to stdout. The agent sends that file back as the
//! task's result payload; the `pi` scheduler adds the pieces up:
//! pi ≈ 4 × hits / samples.
//!
//! Exit codes: 0 done, 1 the result could not be written, 2 bad arguments.

use std::process::ExitCode;

/// The file the agent returns as the result payload.
const RESULT_FILE: &str = "result";

#[derive(Debug, PartialEq)]
struct Args {
    samples: u64,
    seed: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut samples = None;
    let mut seed = 0;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut number = || -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--samples" => samples = Some(number()?),
            "--seed" => seed = number()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        samples: samples.ok_or("--samples N is required")?,
        seed,
    })
}

/// SplitMix64: tiny, fast, and good enough for counting darts.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits as a double's mantissa.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Points of `samples` that fall inside the quarter circle.
fn hits(samples: u64, seed: u64) -> u64 {
    let mut rng = SplitMix64(seed);
    let mut hits = 0;
    for _ in 0..samples {
        let (x, y) = (rng.next_f64(), rng.next_f64());
        hits += u64::from(x * x + y * y < 1.0);
    }
    hits
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pi-task: {e}; usage: pi-task --samples N [--seed S]");
            return ExitCode::from(2);
        }
    };
    let result = format!(
        r#"{{"hits":{},"samples":{}}}"#,
        hits(args.samples, args.seed),
        args.samples
    );
    println!("{result}");
    match std::fs::write(RESULT_FILE, &result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-task: cannot write {RESULT_FILE}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(&strings(&["--samples", "10", "--seed", "7"])),
            Ok(Args {
                samples: 10,
                seed: 7
            })
        );
        assert_eq!(parse(&strings(&["--samples", "10"])).map(|a| a.seed), Ok(0));
        for bad in [
            &["--seed", "1"][..],
            &["--samples"],
            &["--samples", "x"],
            &["-v"],
        ] {
            assert!(parse(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_estimate_is_close_and_repeatable() {
        let n = 200_000;
        let h = hits(n, 42);
        let pi = 4.0 * h as f64 / n as f64;
        assert!((pi - std::f64::consts::PI).abs() < 0.02, "{pi}");
        assert_eq!(hits(n, 42), h, "same seed, same piece");
        assert_ne!(hits(n, 43), h, "another seed, another piece");
        assert_eq!(hits(0, 1), 0);
    }
}
