//! Amounts as people write them (`0.5` cpus, `64MiB`), converted to the
//! fixed point of the WIT `resources` record the way the host does it
//! (`wasmesos_api::parse_size`), so a scheduler's config and messages read
//! like the CLI's flags.

/// Bytes in a size such as `64MiB`, `1.5GiB`, `100` or `64M`: IEC suffixes
/// (`Ki`, `Mi`, `Gi`, `Ti`, with or without `B`) are powers of two, SI ones
/// (`k`, `M`, `G`, `T`) powers of ten, as in Kubernetes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let err = || format!("{text:?} is not a size (e.g. 64MiB, 1GiB, 500M)");
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(err());
    }
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        _ => return Err(err()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier).ok_or_else(err);
    }
    let value: f64 = number.parse().map_err(|_| err())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// Thousandths of a cpu in `cpus` (e.g. 0.25 → 250), rounded to the
/// nearest, as the host rounds.
pub fn cpus_milli(cpus: f64) -> Result<u64, String> {
    let milli = cpus * 1000.0;
    if !milli.is_finite() || milli < 0.0 || milli > u64::MAX as f64 {
        return Err(format!("{cpus} is not a number of cpus"));
    }
    Ok(milli.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 100 "), Ok(100));
        assert_eq!(parse_size("64M"), Ok(64_000_000));
        assert_eq!(parse_size("2k"), Ok(2000));
        for bad in ["", "MiB", "12XB", "1..2", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(cpus_milli(0.25), Ok(250));
        assert_eq!(cpus_milli(0.1), Ok(100));
        assert_eq!(cpus_milli(2.0), Ok(2000));
        assert_eq!(cpus_milli(0.0004), Ok(0));
        assert!(cpus_milli(-1.0).is_err());
        assert!(cpus_milli(f64::NAN).is_err());
    }
}
