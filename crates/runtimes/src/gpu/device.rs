//! Headless wgpu device creation: backend from `WGPU_BACKEND`, adapter forced by a name
//! substring (`--adapter` / `WGPU_ADAPTER_NAME`), all the adapter's limits requested.

use optimize_ir::error::{Error, Result};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Drives a future to completion on this thread (wgpu's native futures resolve at once,
/// so this only spins when something is really pending).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// A wgpu device with its queue and the adapter it came from.
pub struct GpuDevice {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    /// e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub description: String,
}

impl GpuDevice {
    /// Creates a device. `adapter` forces the first adapter whose name contains it
    /// (case-insensitive); otherwise `WGPU_ADAPTER_NAME` does, else wgpu's default choice.
    pub fn new(adapter: Option<&str>) -> Result<GpuDevice> {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            // Silences a harmless warning of the Vulkan loader on headless machines.
            std::env::set_var("XDG_RUNTIME_DIR", "/tmp");
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let wanted = adapter
            .map(|s| s.to_string())
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());
        let backend_note = std::env::var("WGPU_BACKEND")
            .map(|b| format!(" (WGPU_BACKEND={b})"))
            .unwrap_or_default();
        let adapter = match &wanted {
            Some(name) => {
                let all = block_on(instance.enumerate_adapters(wgpu::Backends::all()));
                let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
                let needle = name.to_lowercase();
                all.into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&needle))
                    .ok_or_else(|| {
                        Error::Runtime(format!(
                            "wgpu: no adapter's name contains '{name}'{backend_note}; available: {}",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })?
            }
            None => block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            }))
            .map_err(|e| {
                Error::Runtime(format!(
                    "wgpu: no device can be created{backend_note}: {e} (on a CPU-only machine install \
                     Debian's mesa-vulkan-drivers and libvulkan1 for lavapipe)"
                ))
            })?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("optimize"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|e| {
            Error::Runtime(format!(
                "wgpu: cannot create a device on adapter '{}': {e}",
                info.name
            ))
        })?;
        Ok(GpuDevice {
            device,
            queue,
            limits,
            description: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
        })
    }

    /// Largest tensor, in bytes, a kernel can bind.
    pub fn max_binding_bytes(&self) -> u64 {
        (self.limits.max_storage_buffer_binding_size).min(self.limits.max_buffer_size)
    }

    /// Errors when a tensor held in row blocks (several bindings) is larger than one buffer
    /// may be: the bound on a single tensor's total size, whatever its layout.
    pub fn check_total(&self, tensor: &str, what: &str, bytes: u64) -> Result<()> {
        let l = &self.limits;
        if bytes > l.max_buffer_size {
            return Err(Error::Runtime(format!(
                "wgpu: tensor '{tensor}' ({what}, {bytes} bytes) exceeds the device's max_buffer_size \
                 ({} bytes) on {}",
                l.max_buffer_size, self.description
            )));
        }
        Ok(())
    }

    /// Errors when a tensor of `bytes` cannot be held in one storage binding.
    pub fn check_fits(&self, tensor: &str, what: &str, bytes: u64) -> Result<()> {
        self.check_total(tensor, what, bytes)?;
        let l = &self.limits;
        if bytes > l.max_storage_buffer_binding_size {
            return Err(Error::Runtime(format!(
                "wgpu: tensor '{tensor}' ({what}, {bytes} bytes) exceeds the device's \
                 max_storage_buffer_binding_size ({} bytes) on {}",
                l.max_storage_buffer_binding_size, self.description
            )));
        }
        Ok(())
    }
}
