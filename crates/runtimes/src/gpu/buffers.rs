//! Device buffers: a pool that hands out storage buffers by size class and takes them back
//! when the executor's liveness analysis says a tensor is dead.

use std::collections::HashMap;
use std::sync::Arc;

/// Buffer usages of every tensor buffer.
pub const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Size class of a request: the next power of two (at least 256 bytes), capped at `max`.
pub fn size_class(bytes: u64, max: u64) -> u64 {
    let b = bytes.max(256);
    let p = b.checked_next_power_of_two().unwrap_or(b);
    if p > max {
        b.div_ceil(4) * 4
    } else {
        p
    }
}

/// Free buffers by size class, plus counters for the report.
#[derive(Default)]
pub struct BufferPool {
    free: HashMap<u64, Vec<Arc<wgpu::Buffer>>>,
    /// Buffers created so far, and how many requests were served from the pool.
    pub created: usize,
    pub reused: usize,
    pub bytes_created: u64,
}

impl BufferPool {
    /// A buffer of at least `bytes` bytes (4 at the least, as bindings need).
    pub fn take(&mut self, device: &wgpu::Device, bytes: u64, max: u64) -> Arc<wgpu::Buffer> {
        let class = size_class(bytes.max(4), max);
        if let Some(b) = self.free.get_mut(&class).and_then(|v| v.pop()) {
            self.reused += 1;
            return b;
        }
        self.created += 1;
        self.bytes_created += class;
        Arc::new(device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: class,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        }))
    }

    /// Returns a buffer for reuse by later tensors.
    pub fn give(&mut self, b: Arc<wgpu::Buffer>) {
        self.free.entry(b.size()).or_default().push(b);
    }
}
