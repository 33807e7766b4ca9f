//! The accelerator target: scratchpad capacity, placement alignment, off-chip bandwidth
//! (for cost figures only) and whether weights live in the scratchpad.
//!
//! Built from `--scratchpad 512KiB` or from `--target FILE.toml`:
//!
//! ```toml
//! scratchpad = "512KiB"        # or a plain number of bytes
//! alignment = 64               # bytes, a power of two (default 64)
//! bandwidth = "8GB/s"          # optional: off-chip bytes per second ("8GB/s", "1e9", ...)
//! weights_in_scratchpad = false
//! ```

use optimize_ir::byte_size::parse_size;
use serde::Deserialize;
use std::path::Path;

/// Default placement alignment in bytes.
pub const DEFAULT_ALIGNMENT: u64 = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub scratchpad_bytes: u64,
    pub alignment: u64,
    /// Off-chip bandwidth in bytes per second, used only to turn traffic into time.
    pub bandwidth_bytes_per_s: Option<f64>,
    /// True: weights (initializers, Constant outputs) must be on chip when used, like
    /// activations. False: only activations and graph inputs occupy the scratchpad.
    pub weights_in_scratchpad: bool,
}

impl Target {
    pub fn with_scratchpad(bytes: u64) -> Target {
        Target {
            scratchpad_bytes: bytes,
            alignment: DEFAULT_ALIGNMENT,
            bandwidth_bytes_per_s: None,
            weights_in_scratchpad: false,
        }
    }

    /// Reads a target file (TOML, see the module docs).
    pub fn from_toml_file(path: &Path) -> Result<Target, String> {
        let text = optimize_ir::bounded_read::read_text(
            path,
            "target file",
            optimize_ir::bounded_read::MAX_TEXT_FILE,
        )
        .map_err(|e| match e {
            optimize_ir::error::Error::Input { msg, .. } => msg,
            other => other.to_string(),
        })?;
        Target::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<Target, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            scratchpad: Option<toml::Value>,
            scratchpad_bytes: Option<toml::Value>,
            alignment: Option<toml::Value>,
            bandwidth: Option<toml::Value>,
            weights_in_scratchpad: Option<bool>,
        }
        let raw: Raw = toml::from_str(text).map_err(|e| format!("invalid target file: {e}"))?;
        let cap = match (raw.scratchpad, raw.scratchpad_bytes) {
            (Some(v), None) | (None, Some(v)) => v,
            (Some(_), Some(_)) => {
                return Err("give either `scratchpad` or `scratchpad_bytes`, not both".into())
            }
            (None, None) => return Err("the target file has no `scratchpad` size".into()),
        };
        let scratchpad_bytes = size_value(&cap).map_err(|e| format!("scratchpad: {e}"))?;
        let alignment = match raw.alignment {
            Some(v) => size_value(&v).map_err(|e| format!("alignment: {e}"))?,
            None => DEFAULT_ALIGNMENT,
        };
        let bandwidth_bytes_per_s = match raw.bandwidth {
            Some(v) => Some(bandwidth_value(&v)?),
            None => None,
        };
        let t = Target {
            scratchpad_bytes,
            alignment,
            bandwidth_bytes_per_s,
            weights_in_scratchpad: raw.weights_in_scratchpad.unwrap_or(false),
        };
        t.validate()?;
        Ok(t)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.scratchpad_bytes == 0 {
            return Err("the scratchpad size must be positive".into());
        }
        if self.alignment == 0 || !self.alignment.is_power_of_two() {
            return Err(format!(
                "alignment must be a power of two, got {}",
                self.alignment
            ));
        }
        if let Some(b) = self.bandwidth_bytes_per_s {
            if !(b.is_finite() && b > 0.0) {
                return Err(format!("bandwidth must be positive, got {b}"));
            }
        }
        Ok(())
    }
}

fn size_value(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) if *i > 0 => Ok(*i as u64),
        toml::Value::String(s) => parse_size(s),
        other => Err(format!("expected a positive size, got {other:?}")),
    }
}

fn bandwidth_value(v: &toml::Value) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) if *i > 0 => Ok(*i as f64),
        toml::Value::Float(f) if *f > 0.0 => Ok(*f),
        toml::Value::String(s) => {
            let s = s.trim();
            let s = s.strip_suffix("/s").unwrap_or(s);
            if let Ok(f) = s.parse::<f64>() {
                if f > 0.0 {
                    return Ok(f);
                }
            }
            parse_size(s).map(|b| b as f64)
        }
        other => Err(format!(
            "bandwidth: expected bytes per second, got {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_target() {
        let t = Target::from_toml_str(
            "scratchpad = \"1MiB\"\nalignment = 32\nbandwidth = \"8GB/s\"\nweights_in_scratchpad = true\n",
        )
        .expect("valid");
        assert_eq!(t.scratchpad_bytes, 1 << 20);
        assert_eq!(t.alignment, 32);
        assert_eq!(t.bandwidth_bytes_per_s, Some(8e9));
        assert!(t.weights_in_scratchpad);
        let t = Target::from_toml_str("scratchpad_bytes = 4096\n").expect("valid");
        assert_eq!(t, Target::with_scratchpad(4096));
        assert!(Target::from_toml_str("alignment = 64\n").is_err());
        assert!(Target::from_toml_str("scratchpad = 100\nalignment = 3\n").is_err());
        assert!(Target::from_toml_str("scratchpad = 100\nspeed = 3\n").is_err());
    }
}
