//! Byte sizes as people write them: `64MiB`, `4GiB`, `512Ki`, `10GB`, `1024`.
//! IEC suffixes (`Ki`, `Mi`, `Gi`, `Ti`, with or without `B`) are powers of
//! two; SI suffixes (`K`/`k`, `M`, `G`, `T`, with or without `B`) are powers of
//! ten, as in Kubernetes.

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size '{0}': expected a number with an optional unit, like 64MiB, 4GiB or 512KiB")]
pub struct ParseSizeError(pub String);

/// Parses a size in bytes.
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let err = || ParseSizeError(text.to_string());
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

/// Formats a size with the largest IEC unit that divides it exactly
/// (`4GiB`, `1536MiB`, `100B`), or one decimal place of the largest unit
/// that keeps it at least 1 (`1.5GiB`) when none does.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == 0 {
        return "0B".to_string();
    }
    for (name, size) in UNITS {
        if bytes.is_multiple_of(size) {
            return format!("{}{name}", bytes / size);
        }
    }
    for (name, size) in UNITS {
        if bytes >= size {
            return format!("{:.1}{name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iec_and_si() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size(" 2 KiB ").unwrap(), 2048);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "MiB", "64XB", "-1", "1e3", "1.2.3GiB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        let msg = parse_size("64XB").unwrap_err().to_string();
        assert!(msg.contains("64XB") && msg.contains("MiB"), "{msg}");
    }

    #[test]
    fn formats_round_trip() {
        for v in [0, 1, 100, 1024, 64 << 20, 4 << 30, 1536 << 20] {
            let s = format_size(v);
            assert_eq!(parse_size(&s).unwrap(), v, "{s}");
        }
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size((1 << 30) + 1), "1.0GiB");
    }
}
