//! The host CPU as the latency model sees it: its model name and the instruction-set flags
//! that decide which kernels onnxruntime runs fast (int8 dot products with VNNI or AMX,
//! fp32 with AVX2/AVX-512). Speed figures print these beside them, and the latency cache is
//! keyed by them: a table measured on one machine is never used on another kind.

use serde::{Deserialize, Serialize};

/// The CPU flags that change onnxruntime's kernel choice or speed on x86.
pub const FLAGS_THAT_MATTER: &[&str] = &[
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// `model name` of `/proc/cpuinfo` ("unknown" where it is not readable).
    pub model: String,
    /// The flags of [`FLAGS_THAT_MATTER`] this CPU has, in that order.
    pub flags: Vec<String>,
    /// Logical cores this process may use.
    pub cores: usize,
}

impl CpuInfo {
    /// This machine's CPU.
    pub fn host() -> CpuInfo {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mut info = CpuInfo::parse(&text);
        info.cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        info
    }

    /// Reads the first processor's model name and flags from `/proc/cpuinfo` text.
    pub fn parse(cpuinfo: &str) -> CpuInfo {
        let field = |key: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let model = field("model name").unwrap_or_else(|| "unknown".into());
        let have: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let flags = FLAGS_THAT_MATTER
            .iter()
            .filter(|f| have.iter().any(|h| h == *f))
            .map(|f| f.to_string())
            .collect();
        CpuInfo {
            model,
            flags,
            cores: 1,
        }
    }

    /// `avx2 avx512_vnni …`, or `none of avx2/avx512/vnni/amx`.
    pub fn flags_line(&self) -> String {
        flags_line(&self.flags)
    }

    /// Whether int8 dot products have a hardware instruction (VNNI or AMX).
    pub fn has_int8_dot(&self) -> bool {
        self.flags
            .iter()
            .any(|f| f == "avx512_vnni" || f == "avx_vnni" || f == "amx_int8")
    }
}

/// Flags as printed beside a speed figure: `avx2 avx512_vnni …`, or `none of
/// avx2/avx512/vnni/amx`.
pub fn flags_line(flags: &[String]) -> String {
    if flags.is_empty() {
        "none of avx2/avx512/vnni/amx".into()
    } else {
        flags.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_and_flags_that_matter_only() {
        let text = "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile\nprocessor\t: 1\n";
        let c = CpuInfo::parse(text);
        assert_eq!(c.model, "Some Xeon");
        assert_eq!(
            c.flags,
            ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"]
        );
        assert!(c.has_int8_dot());
        let plain = CpuInfo::parse("model name : Old\nflags : sse sse2 avx2\n");
        assert_eq!(plain.flags, ["avx2"]);
        assert!(!plain.has_int8_dot());
        assert_eq!(CpuInfo::parse("").model, "unknown");
        assert_eq!(
            CpuInfo::parse("").flags_line(),
            "none of avx2/avx512/vnni/amx"
        );
    }
}
