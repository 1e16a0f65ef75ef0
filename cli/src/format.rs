//! How the CLI prints things: aligned tables, sizes, ages and durations.

use wasmesos_api::{Resources, format_size, now_ms};

/// A table printed with columns padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `1.5s`, `3m04s`, `2h05m`, `120ms`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    if s < 3600 {
        return format!("{}m{:02}s", s / 60, s % 60);
    }
    format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
}

/// How long ago a timestamp was (`12s ago`), or `-` for none.
pub fn ago(ts_ms: i64) -> String {
    if ts_ms <= 0 {
        return "-".to_string();
    }
    let d = now_ms() - ts_ms;
    if d < 1000 {
        "just now".to_string()
    } else {
        format!("{} ago", duration_ms(d - d % 1000))
    }
}

/// `0.5/2` cpus, `64MiB/4GiB` memory: used of total.
pub fn used_of(used: &Resources, total: &Resources) -> [String; 3] {
    [
        format!("{}/{}", trim(used.cpus()), trim(total.cpus())),
        format!(
            "{}/{}",
            format_size(used.mem_bytes),
            format_size(total.mem_bytes)
        ),
        format!(
            "{}/{}",
            format_size(used.disk_bytes),
            format_size(total.disk_bytes)
        ),
    ]
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `500ms`, `30s`, `5m`, `2h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid duration '{text}': expected e.g. 500ms, 30s, 5m, 2h or 7d")
    })?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "d" => value * 86400.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration '{text}': expected e.g. 500ms, 30s, 5m, 2h or 7d"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration '{text}'"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.row(vec!["job-1.1".into(), "RUNNING".into()]);
        t.row(vec!["j".into(), "FAILED".into()]);
        assert_eq!(
            t.render(),
            "ID       STATE\njob-1.1  RUNNING\nj        FAILED\n"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ms(120), "120ms");
        assert_eq!(duration_ms(1500), "1.5s");
        assert_eq!(duration_ms(184_000), "3m04s");
        assert_eq!(duration_ms(7_500_000), "2h05m");
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86400);
        assert!(parse_duration("5w").is_err());
    }
}
