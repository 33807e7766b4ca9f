//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Supported element types: `f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1 c8 c16` in either byte order
//! (`<`, `>`, `|`, and `=` taken as little-endian), plus fixed-width string arrays `U<n>`
//! (UTF-32) and `S<n>` (bytes, must be UTF-8), which load as string tensors.
//! Fortran-ordered arrays are transposed into C order on load. Object (pickled) arrays and
//! structured/void dtypes (`V`, which is also how `ml_dtypes.bfloat16` is saved) are refused.
//!
//! Files are written in C order with format 1.0, or 2.0 when the header does not fit in 1.0's
//! 16-bit length. Numeric data is written little-endian, strings as `<U<n>`.

use super::HostTensor;
use crate::error::{Error, Result};
use crate::ir::DataType;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a `.npy` file into a host tensor.
pub fn read_npy(path: &Path) -> Result<HostTensor> {
    let bytes = crate::bounded_read::read_regular(path, ".npy file")?;
    decode_npy(&bytes).map_err(|m| Error::input(path, format!("not a valid .npy file: {m}")))
}

/// Writes a host tensor as a `.npy` file.
pub fn write_npy(path: &Path, tensor: &HostTensor) -> Result<()> {
    let bytes =
        encode_npy(tensor).map_err(|m| Error::input(path, format!("cannot write as .npy: {m}")))?;
    std::fs::write(path, bytes).map_err(|e| Error::input(path, format!("cannot write file: {e}")))
}

/// The element layout a `descr` string names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Elem {
    /// A numeric type; `swap` is the byte-swap unit (the component width for complex types).
    Num {
        dtype: DataType,
        width: usize,
        swap: usize,
        big_endian: bool,
    },
    /// Fixed-width UTF-32 strings of `chars` characters.
    Unicode { chars: usize, big_endian: bool },
    /// Fixed-width byte strings of `len` bytes.
    Bytes { len: usize },
}

impl Elem {
    fn item_size(self) -> Option<usize> {
        match self {
            Elem::Num { width, .. } => Some(width),
            Elem::Unicode { chars, .. } => chars.checked_mul(4),
            Elem::Bytes { len } => Some(len),
        }
    }
}

fn parse_descr(descr: &str) -> Result<Elem, String> {
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('|', descr),
    };
    let big_endian = order == '>';
    let mut chars = rest.chars();
    let kind = chars
        .next()
        .ok_or_else(|| format!("empty dtype descriptor '{descr}'"))?;
    let size_str = chars.as_str();
    let size: Option<usize> = size_str.parse().ok();
    let num = |dtype: DataType, width: usize, swap: usize| {
        Ok(Elem::Num {
            dtype,
            width,
            swap,
            big_endian,
        })
    };
    match (kind, size) {
        ('b', Some(1)) | ('?', None) => num(DataType::Bool, 1, 1),
        ('i', Some(1)) => num(DataType::Int8, 1, 1),
        ('i', Some(2)) => num(DataType::Int16, 2, 2),
        ('i', Some(4)) => num(DataType::Int32, 4, 4),
        ('i', Some(8)) => num(DataType::Int64, 8, 8),
        ('u', Some(1)) => num(DataType::Uint8, 1, 1),
        ('u', Some(2)) => num(DataType::Uint16, 2, 2),
        ('u', Some(4)) => num(DataType::Uint32, 4, 4),
        ('u', Some(8)) => num(DataType::Uint64, 8, 8),
        ('f', Some(2)) => num(DataType::Float16, 2, 2),
        ('f', Some(4)) => num(DataType::Float, 4, 4),
        ('f', Some(8)) => num(DataType::Double, 8, 8),
        ('c', Some(8)) => num(DataType::Complex64, 8, 4),
        ('c', Some(16)) => num(DataType::Complex128, 16, 8),
        ('U', Some(chars)) => Ok(Elem::Unicode { chars, big_endian }),
        ('S', Some(len)) | ('a', Some(len)) => Ok(Elem::Bytes { len }),
        ('O', _) => Err("object arrays (pickled Python objects) are not supported".into()),
        ('V', _) => Err(format!(
            "dtype '{descr}' is raw/structured data (ml_dtypes bfloat16 is saved this way); \
             save the array as float32 instead"
        )),
        _ => Err(format!("unsupported dtype '{descr}'")),
    }
}

/// A Python literal as found in `.npy` headers.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "header: expected '{}' at offset {}",
                c as char, self.pos
            ))
        }
    }

    /// Parses comma-separated items up to `close`, allowing a trailing comma.
    fn items(&mut self, close: u8) -> Result<(Vec<Lit>, bool), String> {
        let mut v = Vec::new();
        let mut trailing_comma = false;
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok((v, trailing_comma));
            }
            v.push(self.value()?);
            trailing_comma = false;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    trailing_comma = true;
                }
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "header: expected ',' or '{}' at offset {}",
                        close as char, self.pos
                    ))
                }
            }
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(Lit::Dict(entries));
                    }
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    entries.push((k, v));
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => {
                            return Err(format!(
                                "header: expected ',' or '}}' at offset {}",
                                self.pos
                            ))
                        }
                    }
                }
            }
            Some(b'(') => {
                self.pos += 1;
                let (v, trailing_comma) = self.items(b')')?;
                // `(x)` without a comma is just a parenthesized value.
                if v.len() == 1 && !trailing_comma {
                    return v
                        .into_iter()
                        .next()
                        .ok_or_else(|| "header: empty parentheses".to_string());
                }
                Ok(Lit::Tuple(v))
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Lit::List(self.items(b']')?.0))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    let c = *self.s.get(self.pos).ok_or("header: unterminated string")?;
                    self.pos += 1;
                    if c == q {
                        break;
                    }
                    if c == b'\\' {
                        let e = *self.s.get(self.pos).ok_or("header: unterminated string")?;
                        self.pos += 1;
                        out.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            other => other,
                        });
                    } else {
                        out.push(c);
                    }
                }
                String::from_utf8(out)
                    .map(Lit::Str)
                    .map_err(|_| "header: string is not UTF-8".to_string())
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
                let n = text
                    .parse::<u64>()
                    .map_err(|_| format!("header: number '{text}' is too large"))?;
                // Python 2 long suffix, as in files written by old NumPy.
                if matches!(self.s.get(self.pos), Some(b'L' | b'l')) {
                    self.pos += 1;
                }
                Ok(Lit::Int(n))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len()
                    && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    w => Err(format!(
                        "header: unexpected word '{}'",
                        String::from_utf8_lossy(w)
                    )),
                }
            }
            Some(b'-') => Err("header: negative numbers are not valid here".into()),
            Some(c) => Err(format!(
                "header: unexpected character '{}' at offset {}",
                c as char, self.pos
            )),
            None => Err("header: unexpected end".into()),
        }
    }
}

/// The parsed header fields.
struct Header {
    elem: Elem,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = LitParser {
        s: text.as_bytes(),
        pos: 0,
    };
    let dict = match p.value()? {
        Lit::Dict(d) => d,
        _ => return Err("header is not a dictionary".into()),
    };
    if p.peek().is_some() {
        return Err(format!(
            "header: unexpected text after the dictionary at offset {}",
            p.pos
        ));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in dict {
        match (k, v) {
            (Lit::Str(k), v) if k == "descr" => descr = Some(v),
            (Lit::Str(k), v) if k == "fortran_order" => fortran = Some(v),
            (Lit::Str(k), v) if k == "shape" => shape = Some(v),
            _ => {}
        }
    }
    let elem = match descr.ok_or("header has no 'descr'")? {
        Lit::Str(s) => parse_descr(&s)?,
        Lit::List(_) => return Err("structured (record) arrays are not supported".into()),
        other => return Err(format!("header: bad 'descr' {other:?}")),
    };
    let fortran_order = match fortran.ok_or("header has no 'fortran_order'")? {
        Lit::Bool(b) => b,
        other => return Err(format!("header: bad 'fortran_order' {other:?}")),
    };
    let shape = match shape.ok_or("header has no 'shape'")? {
        Lit::Tuple(items) => items
            .into_iter()
            .map(|d| match d {
                Lit::Int(n) => {
                    usize::try_from(n).map_err(|_| format!("dimension {n} is too large"))
                }
                other => Err(format!("header: bad dimension {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Lit::Int(n) => vec![usize::try_from(n).map_err(|_| format!("dimension {n} is too large"))?],
        other => return Err(format!("header: bad 'shape' {other:?}")),
    };
    Ok(Header {
        elem,
        fortran_order,
        shape,
    })
}

/// For each element in C order, its position in Fortran-ordered storage.
fn fortran_positions(shape: &[usize]) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for k in 1..rank {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for _ in 0..n {
        out.push(off);
        // Advance the C-order odometer (last axis fastest).
        for k in (0..rank).rev() {
            idx[k] += 1;
            off += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

/// Decodes the bytes of a `.npy` file. Errors are plain messages for the caller to attach a path to.
pub fn decode_npy(bytes: &[u8]) -> Result<HostTensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("file is truncated".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(format!("unsupported format version {major}.{minor}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or("file is truncated inside the header")?;
    let text = if major == 3 {
        std::str::from_utf8(header)
            .map_err(|_| "header is not UTF-8".to_string())?
            .to_string()
    } else {
        // Versions 1 and 2 use latin-1.
        header.iter().map(|&b| b as char).collect()
    };
    let Header {
        elem,
        fortran_order,
        shape,
    } = parse_header(&text)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let item = elem.item_size().ok_or("element size overflows")?;
    let want = n.checked_mul(item).ok_or("data size overflows")?;
    let data = &bytes[data_start..];
    if data.len() != want {
        return Err(format!(
            "shape {shape:?} of {} needs {want} data bytes but the file holds {}",
            describe_elem(elem),
            data.len()
        ));
    }
    let order: Option<Vec<usize>> =
        (fortran_order && shape.len() > 1).then(|| fortran_positions(&shape));
    match elem {
        Elem::Num {
            dtype,
            width,
            swap,
            big_endian,
        } => {
            let mut out = Vec::with_capacity(want);
            match &order {
                Some(pos) => {
                    for &p in pos {
                        out.extend_from_slice(&data[p * width..(p + 1) * width]);
                    }
                }
                None => out.extend_from_slice(data),
            }
            if big_endian && swap > 1 {
                for chunk in out.chunks_exact_mut(swap) {
                    chunk.reverse();
                }
            }
            if dtype == DataType::Bool {
                for b in &mut out {
                    *b = (*b != 0) as u8;
                }
            }
            Ok(HostTensor::new(dtype, shape, out))
        }
        Elem::Unicode { chars, big_endian } => {
            let mut strings = Vec::with_capacity(n);
            for i in 0..n {
                let p = order.as_ref().map_or(i, |o| o[i]);
                let raw = &data[p * chars * 4..(p + 1) * chars * 4];
                let mut s = String::new();
                for c in raw.chunks_exact(4) {
                    let b = [c[0], c[1], c[2], c[3]];
                    let code = if big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    };
                    s.push(
                        char::from_u32(code)
                            .ok_or_else(|| format!("invalid character code {code:#x}"))?,
                    );
                }
                // NumPy strips trailing NULs from fixed-width strings.
                strings.push(s.trim_end_matches('\0').to_string());
            }
            Ok(HostTensor::from_strings(shape, strings))
        }
        Elem::Bytes { len } => {
            let mut strings = Vec::with_capacity(n);
            for i in 0..n {
                let p = order.as_ref().map_or(i, |o| o[i]);
                let raw = &data[p * len..(p + 1) * len];
                let end = raw.iter().rposition(|&b| b != 0).map_or(0, |e| e + 1);
                let s = std::str::from_utf8(&raw[..end])
                    .map_err(|_| "a byte string is not valid UTF-8".to_string())?;
                strings.push(s.to_string());
            }
            Ok(HostTensor::from_strings(shape, strings))
        }
    }
}

fn describe_elem(e: Elem) -> String {
    match e {
        Elem::Num { dtype, .. } => dtype.name().to_string(),
        Elem::Unicode { chars, .. } => format!("unicode strings of {chars} characters"),
        Elem::Bytes { len } => format!("byte strings of {len} bytes"),
    }
}

/// The little-endian `descr` NumPy uses for a type, if it has one.
fn descr_for(dtype: DataType) -> Option<&'static str> {
    use DataType::*;
    Some(match dtype {
        Float => "<f4",
        Double => "<f8",
        Float16 => "<f2",
        Int8 => "|i1",
        Int16 => "<i2",
        Int32 => "<i4",
        Int64 => "<i8",
        Uint8 => "|u1",
        Uint16 => "<u2",
        Uint32 => "<u4",
        Uint64 => "<u8",
        Bool => "|b1",
        Complex64 => "<c8",
        Complex128 => "<c16",
        _ => return None,
    })
}

/// Encodes a host tensor as the bytes of a `.npy` file (C order, version 1.0 or 2.0).
pub fn encode_npy(t: &HostTensor) -> Result<Vec<u8>, String> {
    t.check_consistent()?;
    let (descr, data): (String, Vec<u8>) = if t.dtype == DataType::String {
        let chars = t
            .strings
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut data = Vec::with_capacity(t.strings.len() * chars * 4);
        for s in &t.strings {
            let mut k = 0;
            for c in s.chars() {
                data.extend_from_slice(&(c as u32).to_le_bytes());
                k += 1;
            }
            data.resize(data.len() + (chars - k) * 4, 0);
        }
        (format!("<U{chars}"), data)
    } else {
        let d = descr_for(t.dtype).ok_or_else(|| {
            format!(
                "{} has no NumPy dtype; convert it to float32 first",
                t.dtype
            )
        })?;
        (d.to_string(), t.bytes.clone())
    };
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad with spaces and a final newline so that the data starts on a 64-byte boundary.
    let padded = |prefix: usize| {
        let unpadded = prefix + dict.len() + 1;
        dict.len() + 1 + (64 - unpadded % 64) % 64
    };
    let (version, prefix) = if padded(10) <= u16::MAX as usize {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    let header_len = padded(prefix);
    let mut out = Vec::with_capacity(prefix + header_len + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        let len = u32::try_from(header_len).map_err(|_| "header is too long".to_string())?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(prefix + header_len - 1, b' ');
    out.push(b'\n');
    out.extend_from_slice(&data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_v1(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn tensor(dtype: DataType, shape: Vec<usize>, bytes: Vec<u8>) -> HostTensor {
        HostTensor::new(dtype, shape, bytes)
    }

    #[test]
    fn hand_written_v1_header() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = npy_v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n",
            &data,
        );
        let t = decode_npy(&bytes).unwrap();
        assert_eq!(t.dtype, DataType::Float);
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.as_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn header_variants() {
        // Scalar, 1-D with trailing comma, double quotes, key order, Python 2 longs.
        let t = decode_npy(&npy_v1(
            "{'shape': (), 'fortran_order': False, 'descr': '<i8'}\n",
            &7i64.to_le_bytes(),
        ))
        .unwrap();
        assert_eq!((t.shape.clone(), t.to_f64().unwrap()), (vec![], vec![7.0]));
        let t = decode_npy(&npy_v1(
            "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (3L,)}",
            &[1, 2, 3],
        ))
        .unwrap();
        assert_eq!((t.dtype, t.shape.clone()), (DataType::Uint8, vec![3]));
    }

    #[test]
    fn big_endian() {
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let t = decode_npy(&npy_v1(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
            &data,
        ))
        .unwrap();
        assert_eq!(t.as_f32().unwrap(), vec![1.5, -2.0]);
        let data: Vec<u8> = [300i16, -5].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = decode_npy(&npy_v1(
            "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }\n",
            &data,
        ))
        .unwrap();
        assert_eq!(t.to_f64().unwrap(), vec![300.0, -5.0]);
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let t = decode_npy(&npy_v1(
            "{'descr': '>c8', 'fortran_order': False, 'shape': (2,), }\n",
            &data,
        ))
        .unwrap();
        let want: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(t.bytes, want);
    }

    #[test]
    fn fortran_order_is_transposed() {
        // The 2x3 matrix [[0,1,2],[3,4,5]] stored column-major: 0 3 1 4 2 5.
        let data: Vec<u8> = [0i32, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = decode_npy(&npy_v1(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }\n",
            &data,
        ))
        .unwrap();
        assert_eq!(t.to_f64().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // 2x3x2 in Fortran order: element (i,j,k) at i + 2j + 6k.
        let vals: Vec<i32> = (0..12).collect();
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = decode_npy(&npy_v1(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 2), }\n",
            &data,
        ))
        .unwrap();
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    want.push((i + 2 * j + 6 * k) as f64);
                }
            }
        }
        assert_eq!(t.to_f64().unwrap(), want);
    }

    #[test]
    fn round_trip_every_dtype() {
        let cases: Vec<HostTensor> = vec![
            HostTensor::from_f32(vec![2, 2], &[1.0, -2.5, f32::NAN, 0.0]),
            tensor(
                DataType::Double,
                vec![3],
                [1.0f64, 2.0, -3.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            tensor(
                DataType::Float16,
                vec![2],
                [half::f16::from_f32(1.5), half::f16::from_f32(-0.25)]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            tensor(DataType::Int8, vec![3], vec![0x80, 0x7f, 0]),
            tensor(
                DataType::Int16,
                vec![1, 2],
                [-300i16, 300]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            tensor(
                DataType::Int32,
                vec![2],
                [-7i32, 1 << 30]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            HostTensor::from_i64(vec![2, 1, 2], &[i64::MIN, -1, 0, i64::MAX]),
            tensor(DataType::Uint8, vec![4], vec![0, 1, 128, 255]),
            tensor(DataType::Uint16, vec![1], 65535u16.to_le_bytes().to_vec()),
            tensor(DataType::Uint32, vec![1], u32::MAX.to_le_bytes().to_vec()),
            tensor(DataType::Uint64, vec![1], u64::MAX.to_le_bytes().to_vec()),
            tensor(DataType::Bool, vec![3], vec![1, 0, 1]),
            tensor(
                DataType::Complex64,
                vec![1],
                [1.0f32, -1.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            HostTensor::from_f32(vec![], &[42.0]),
            HostTensor::from_f32(vec![0, 3], &[]),
            HostTensor::from_strings(vec![3], vec!["héllo".into(), "".into(), "日本".into()]),
        ];
        for t in cases {
            let bytes = encode_npy(&t).unwrap();
            assert_eq!(&bytes[6..8], &[1, 0]);
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "data is 64-byte aligned");
            assert_eq!(bytes[10 + header_len - 1], b'\n');
            let back = decode_npy(&bytes).unwrap();
            assert!(back.bit_identical(&t), "{t:?} came back as {back:?}");
        }
    }

    #[test]
    fn long_header_uses_version_2() {
        let t = HostTensor::new(DataType::Uint8, vec![1; 30000], vec![9]);
        let bytes = encode_npy(&t).unwrap();
        assert_eq!(&bytes[6..8], &[2, 0]);
        let back = decode_npy(&bytes).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn version_3_and_unicode() {
        let header = "{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }\n";
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[3, 0]);
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        for c in ['a', 'b', 'é', '\0'] {
            v.extend_from_slice(&(c as u32).to_le_bytes());
        }
        let t = decode_npy(&v).unwrap();
        assert_eq!(t.strings, vec!["ab".to_string(), "é".to_string()]);
    }

    #[test]
    fn errors_are_clear() {
        let err = |h: &str, d: &[u8]| decode_npy(&npy_v1(h, d)).unwrap_err();
        assert!(err(
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8]
        )
        .contains("object"));
        assert!(err(
            "{'descr': '<V2', 'fortran_order': False, 'shape': (1,), }",
            &[0; 2]
        )
        .contains("float32"));
        assert!(err(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 4]
        )
        .contains("needs 8"));
        assert!(err(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 12]
        )
        .contains("needs 8"));
        assert!(err("{'descr': '<f4', 'shape': (2,), }", &[0; 8]).contains("fortran_order"));
        assert!(err(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
            &[0; 4]
        )
        .contains("structured"));
        assert!(decode_npy(b"PK\x03\x04 not npy")
            .unwrap_err()
            .contains("magic"));
        let bf16 = HostTensor::new(DataType::Bfloat16, vec![1], vec![0, 0]);
        assert!(encode_npy(&bf16).unwrap_err().contains("bfloat16"));
    }
}
