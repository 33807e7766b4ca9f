//! External data: tensors whose bytes live in a file beside the model.
//!
//! Reading is confined to the model's folder: absolute paths, `..` components and links
//! that leave the folder are refused, and offsets/lengths are checked against the file size.

use crate::error::{Error, Result};
use crate::ir::tensor::is_external;
use crate::ir::DataType;
use onnx_protobuf::{tensor_proto::DataLocation, StringStringEntryProto, TensorProto};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// Where one external tensor's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    pub location: String,
    pub offset: u64,
    pub length: Option<u64>,
}

pub fn parse_external_ref(t: &TensorProto) -> std::result::Result<ExternalRef, String> {
    let mut r = ExternalRef {
        location: String::new(),
        offset: 0,
        length: None,
    };
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => r.location = kv.value.clone(),
            "offset" => {
                r.offset = kv
                    .value
                    .parse()
                    .map_err(|_| format!("bad external data offset '{}'", kv.value))?
            }
            "length" => {
                r.length = Some(
                    kv.value
                        .parse()
                        .map_err(|_| format!("bad external data length '{}'", kv.value))?,
                )
            }
            _ => {}
        }
    }
    if r.location.is_empty() {
        return Err("external data without a location".into());
    }
    Ok(r)
}

/// Resolves `location` inside `model_dir`, refusing anything that could leave it.
pub fn confined_path(model_dir: &Path, location: &str) -> std::result::Result<PathBuf, String> {
    if location.contains('\0') {
        return Err(format!(
            "external data location '{location}' contains a NUL byte"
        ));
    }
    let rel = Path::new(location);
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "external data location '{location}' leaves the model's folder ('..')"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "external data location '{location}' is an absolute path"
                ))
            }
        }
    }
    let dir = model_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve the model's folder: {e}"))?;
    let full = dir.join(rel);
    let real = full
        .canonicalize()
        .map_err(|e| format!("external data file '{location}' cannot be opened: {e}"))?;
    if !real.starts_with(&dir) {
        return Err(format!(
            "external data location '{location}' is a link that leaves the model's folder"
        ));
    }
    Ok(real)
}

/// Loads the external bytes of `t` into `raw_data` and marks it as stored inline; returns
/// the file they were read from (`None` when `t` held its data inline).
pub fn load_external(t: &mut TensorProto, model_path: &Path) -> Result<Option<PathBuf>> {
    if !is_external(t) {
        return Ok(None);
    }
    let err = |m: String| Error::input(model_path, format!("initializer '{}': {m}", t.name));
    let r = parse_external_ref(t).map_err(err)?;
    let dir = model_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = confined_path(dir, &r.location).map_err(err)?;
    // Regular files only: a device or FIFO named as external data is refused, not read.
    let (mut f, meta) =
        crate::bounded_read::open_regular(&path, "external data file").map_err(|e| match e {
            Error::Input { msg, .. } => err(format!("external data '{}': {msg}", r.location)),
            other => other,
        })?;
    let size = meta.len();
    if r.offset > size {
        return Err(err(format!(
            "external data offset {} is past the end of '{}' ({size} bytes)",
            r.offset, r.location
        )));
    }
    let length = r.length.unwrap_or(size - r.offset);
    if r.offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(err(format!(
            "external data range {}+{length} runs past the end of '{}' ({size} bytes)",
            r.offset, r.location
        )));
    }
    let limit = super::limits::max_memory();
    if length > limit {
        return Err(err(format!(
            "external data of {length} bytes is over the memory limit of {} (raise it with --max-memory)",
            super::limits::fmt_bytes(limit)
        )));
    }
    if let Some(dt) = DataType::from_onnx(t.data_type).filter(|d| *d != DataType::String) {
        let expected = super::limits::checked_elements(&t.dims)
            .ok()
            .and_then(|n| super::limits::checked_bytes(dt, n))
            .unwrap_or(u64::MAX);
        if expected != length {
            return Err(err(format!(
                "external data holds {length} bytes, but {dt}{:?} needs {expected}",
                t.dims
            )));
        }
    }
    f.seek(SeekFrom::Start(r.offset))
        .map_err(|e| err(format!("cannot seek in '{}': {e}", r.location)))?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact(&mut buf)
        .map_err(|e| err(format!("cannot read '{}': {e}", r.location)))?;
    t.raw_data = buf;
    t.external_data.clear();
    t.data_location = DataLocation::DEFAULT.into();
    Ok(Some(path))
}

/// Moves the raw bytes of every tensor of at least `threshold` bytes into `data_file`
/// (written to `writer`), replacing them with external references named `location`.
pub fn externalize<'a>(
    tensors: impl Iterator<Item = &'a mut TensorProto>,
    threshold: usize,
    location: &str,
    writer: &mut impl Write,
) -> std::io::Result<u64> {
    let mut offset = 0u64;
    for t in tensors {
        if t.raw_data.len() < threshold || is_external(t) {
            continue;
        }
        // Keep each tensor aligned to 4 KiB, as onnx does, so it can be memory-mapped.
        let pad = offset.next_multiple_of(4096) - offset;
        writer.write_all(&vec![0u8; pad as usize])?;
        offset += pad;
        let len = t.raw_data.len() as u64;
        writer.write_all(&t.raw_data)?;
        t.raw_data = Vec::new();
        t.data_location = DataLocation::EXTERNAL.into();
        t.external_data = vec![
            kv("location", location),
            kv("offset", &offset.to_string()),
            kv("length", &len.to_string()),
        ];
        offset += len;
    }
    Ok(offset)
}

fn kv(k: &str, v: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = k.to_string();
    e.value = v.to_string();
    e
}
