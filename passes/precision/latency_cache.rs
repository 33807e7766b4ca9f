//! The latency table's cache, in `~/.cache/optimize/latency/` (or `$XDG_CACHE_HOME`, or
//! `$OPTIMIZE_CACHE_DIR`). A table is only valid for the machine, runtime and thread count
//! it was measured with, so the key holds all of them: the CPU model and the flags that
//! matter, onnxruntime's version, the intra-op threads, and a hash of the model and its
//! candidate options. A file is used only when its stored key equals the one asked for.

use optimize_runtimes::host::CpuInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The measurement method's version: whole-model variants per precision, profiled,
/// kernel times scaled to wall time, ≥ 0.3 s of runs per variant. Raised whenever the
/// variants' rewrite changes what runs, so that tables timed on the old form are not
/// reused (v5: channel-first uint8 Resizes, ConvTranspose affines folded, moves sharing
/// their input's int8 parameters, Relu ranges on the int8 outputs they read).
pub const METHOD: &str = "variants-profiled-v5";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// How the table was measured ([`METHOD`]): a table of an older method is not reused.
    pub method: String,
    pub cpu_model: String,
    pub cpu_flags: Vec<String>,
    pub onnxruntime: String,
    pub threads: usize,
    /// sha256 of the model bytes, the input shapes and the candidate options measured.
    pub model_sha256: String,
}

impl CacheKey {
    pub fn new(cpu: &CpuInfo, onnxruntime: &str, threads: usize, model_sha256: String) -> Self {
        CacheKey {
            method: METHOD.to_string(),
            cpu_model: cpu.model.clone(),
            cpu_flags: cpu.flags.clone(),
            onnxruntime: onnxruntime.to_string(),
            threads,
            model_sha256,
        }
    }

    /// The file a table with this key is stored in: a hash of the whole key.
    pub fn file_name(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.json")
    }
}

/// The most tables the cache folder keeps: one per model, input shapes, thread count and
/// machine, a few tens of kB each.
pub const MAX_TABLES: usize = 256;

/// Removes the oldest tables (by modification time, then name) of `folder` beyond `keep`;
/// returns how many it removed. Only `*.json` files are tables.
pub fn prune(folder: &Path, keep: usize) -> std::io::Result<usize> {
    let mut tables: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") && entry.file_type()?.is_file() {
            tables.push((entry.metadata()?.modified()?, path));
        }
    }
    tables.sort();
    let excess = tables.len().saturating_sub(keep);
    for (_, path) in &tables[..excess] {
        std::fs::remove_file(path)?;
    }
    Ok(excess)
}

/// Whether a table came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    Hit,
    /// Measured now and stored.
    Miss,
    /// Measured now; the cache could not be written (the report says why).
    MissNotStored,
}

/// The cache folder: `$OPTIMIZE_CACHE_DIR`, else `$XDG_CACHE_HOME/optimize`, else
/// `~/.cache/optimize`; `None` when none of them is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("OPTIMIZE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("optimize")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("optimize")))
}

/// The table stored for `key` under `dir`, when there is one whose own key (`key_of`) is
/// exactly `key`.
pub fn load<T: DeserializeOwned>(
    dir: &Path,
    key: &CacheKey,
    key_of: impl Fn(&T) -> &CacheKey,
) -> Option<T> {
    let path = dir.join("latency").join(key.file_name());
    let text = std::fs::read_to_string(path).ok()?;
    let table: T = serde_json::from_str(&text).ok()?;
    (key_of(&table) == key).then_some(table)
}

/// Stores `table` under `dir` by `key` (written to a temporary file, then renamed into
/// place).
pub fn store<T: Serialize>(dir: &Path, key: &CacheKey, table: &T) -> std::io::Result<PathBuf> {
    let folder = dir.join("latency");
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(key.file_name());
    let text = serde_json::to_string_pretty(table).map_err(std::io::Error::other)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&folder)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(&path).map_err(|e| e.error)?;
    // The cache is a convenience: a table it fails to drop costs disk space, not results.
    let _ = prune(&folder, MAX_TABLES);
    Ok(path)
}
