//! The host CPU as the latency model sees it: its model name and the instruction-set flags
//! that decide which kernels onnxruntime runs fast (int8 dot products with VNNI or AMX,
//! fp32 with AVX2/AVX-512). Speed figures print these beside them, and the latency cache is
//! keyed by them: a table measured on one machine is never used on another kind.
//!
//! onnxruntime picks its kernels from the CPUID instruction in its own process, not from
//! `/proc/cpuinfo`. The flags here are those both report: where a hypervisor or a CPUID
//! mask (the speed benchmark's `EMULATE_CPU`, docs/speed.md) hides a flag from processes,
//! the latency tables are keyed by what onnxruntime actually ran on.

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
    /// This machine's CPU, with the flags both `/proc/cpuinfo` and CPUID report.
    pub fn host() -> CpuInfo {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mut info = CpuInfo::parse(&text);
        if let Some(seen) = cpuid_flags() {
            info.flags.retain(|f| seen.contains(&f.as_str()));
        }
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

/// The flags of [`FLAGS_THAT_MATTER`] the CPUID instruction reports to this process (`None`
/// off x86-64); a flag without a bit here counts as reported. Bits from the Intel SDM,
/// volume 2A, CPUID leaves 1 and 7.
#[cfg(target_arch = "x86_64")]
fn cpuid_flags() -> Option<Vec<&'static str>> {
    use std::arch::x86_64::__cpuid_count;
    let bit = |reg: u32, n: u32| reg >> n & 1 == 1;
    let l1 = __cpuid_count(1, 0);
    // Leaf 7 (and its subleaf 1) only where the CPU has it; absent, its bits read 0.
    let l7 = if __cpuid_count(0, 0).eax >= 7 {
        __cpuid_count(7, 0)
    } else {
        std::arch::x86_64::CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    };
    let l7s1 = if l7.eax >= 1 {
        __cpuid_count(7, 1).eax
    } else {
        0
    };
    let reported = |flag: &str| match flag {
        "avx2" => bit(l7.ebx, 5),
        "fma" => bit(l1.ecx, 12),
        "f16c" => bit(l1.ecx, 29),
        "avx512f" => bit(l7.ebx, 16),
        "avx512bw" => bit(l7.ebx, 30),
        "avx512_vnni" => bit(l7.ecx, 11),
        "avx_vnni" => bit(l7s1, 4),
        "amx_tile" => bit(l7.edx, 24),
        "amx_int8" => bit(l7.edx, 25),
        // A flag this table does not read: `/proc/cpuinfo` alone decides it.
        _ => true,
    };
    Some(
        FLAGS_THAT_MATTER
            .iter()
            .copied()
            .filter(|f| reported(f))
            .collect(),
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_flags() -> Option<Vec<&'static str>> {
    None
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
