//! Numbers for people: 1.2k/s, 145 ms, 2.3 MB.

pub fn count(n: f64) -> String {
    let (value, suffix) = match n.abs() {
        x if x >= 1e9 => (n / 1e9, "G"),
        x if x >= 1e6 => (n / 1e6, "M"),
        x if x >= 1e3 => (n / 1e3, "k"),
        _ => (n, ""),
    };
    if suffix.is_empty() && value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}{suffix}")
    }
}

pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn percent(p: f64) -> String {
    format!("{p:.1}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_for_people() {
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1234.0), "1.2k");
        assert_eq!(count(2_500_000.0), "2.5M");
        assert_eq!(count(12.34), "12.3");
        assert_eq!(millis(145.2), "145 ms");
        assert_eq!(millis(1530.0), "1.53 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2_300_000_000), "2.3 GB");
        assert_eq!(percent(12.345), "12.3%");
    }
}
