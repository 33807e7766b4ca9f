//! One parser for every size a user writes (`--scratchpad`, `--max-memory`, a target file's
//! sizes and bandwidths), so that `1KB` means the same thing everywhere: SI units (KB, MB,
//! GB, TB) are powers of 1000, binary units (K, KiB, M, MiB, G, GiB, T, TiB) powers of 1024,
//! as the `KiB` convention has it. A bare number is bytes; `B` may follow it.

use std::str::FromStr;

/// A positive number of bytes, parsed from `524288`, `512KiB`, `512K`, `1.5MiB`, `2MB`,
/// `100 B` or `1_000_000` (case-insensitive units).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// The multiplier of a unit (already lower-cased), or `None` for an unknown one.
fn unit_multiplier(unit: &str) -> Option<f64> {
    const KI: f64 = 1024.0;
    Some(match unit {
        "" | "b" => 1.0,
        "k" | "kib" => KI,
        "m" | "mib" => KI * KI,
        "g" | "gib" => KI * KI * KI,
        "t" | "tib" => KI * KI * KI * KI,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    })
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let mult = unit_multiplier(&unit).ok_or_else(|| {
            format!(
                "bad size '{s}': unknown unit '{unit}' (use B, K/KiB, M/MiB, G/GiB, T/TiB = 1024^n, or KB, MB, GB, TB = 1000^n)"
            )
        })?;
        let v: f64 = num
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad size '{s}': expected a number such as 512KiB or 524288"))?;
        let bytes = (v * mult).round();
        if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
            return Err(format!("bad size '{s}': must be at least 1 byte"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

/// Parses a size (see [`ByteSize`]) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>().map(ByteSize::bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn binary_and_si_units_mean_the_same_everywhere() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("200"), Ok(200));
        assert_eq!(parse_size(" 100 B "), Ok(100));
        assert_eq!(parse_size("1_048_576"), Ok(1 << 20));
    }

    #[test]
    fn nonsense_is_refused_with_the_value_named() {
        for bad in [
            "",
            "0",
            "-5",
            "lots",
            "12 parsecs",
            "nan",
            "inf",
            "1e400",
            "0.4",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.starts_with(&format!("bad size '{bad}'")), "{e}");
        }
    }
}
