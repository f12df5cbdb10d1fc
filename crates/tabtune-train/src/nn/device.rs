//! Device selection and the one place that names concrete burn backends.
//!
//! `--device auto|cpu|wgpu|cuda[:N]`. `auto` prefers CUDA (probed with cudarc before any CUDA
//! call: burn-cuda panics without a driver), then a wgpu adapter that is a real GPU (lavapipe and
//! llvmpipe are CPU adapters and lose to flex), then the CPU (flex). A backend this binary was
//! built without, a missing driver or a missing device is a clear error, never a panic.
//! [`dispatch`] runs a [`BackendJob`] on the chosen backend (one monomorphised copy per backend
//! compiled in).

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;

use crate::error::{Result, TrainError};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The best device present.
    Auto,
    /// The CPU (flex backend).
    Cpu,
    /// The default wgpu adapter (any kind, lavapipe included).
    Wgpu,
    /// CUDA device N.
    Cuda(usize),
}

impl DeviceRequest {
    /// Parses `auto`, `cpu`, `wgpu`, `cuda` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        match t {
            "auto" => return Ok(Self::Auto),
            "cpu" | "flex" => return Ok(Self::Cpu),
            "wgpu" => return Ok(Self::Wgpu),
            "cuda" => return Ok(Self::Cuda(0)),
            _ => {}
        }
        if let Some(index) = t.strip_prefix("cuda:") {
            // `cuda:N,M` (several devices) is for sweeps; one training run uses one device.
            return index
                .parse()
                .map(Self::Cuda)
                .map_err(|_| TrainError::DeviceRequest {
                    value: text.to_owned(),
                    expected: "cuda:N with a device index N ≥ 0 (one device per training run)",
                });
        }
        Err(TrainError::DeviceRequest {
            value: text.to_owned(),
            expected: "auto, cpu, wgpu, cuda or cuda:N",
        })
    }
}

/// A concrete device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU (flex).
    Cpu,
    /// The default wgpu adapter.
    Wgpu,
    /// A CUDA device.
    Cuda(usize),
}

/// The device picked, with a name for logs and JSON and the reason it was picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChoice {
    /// The device.
    pub device: Device,
    /// `cpu`, `wgpu` or `cuda:N`.
    pub name: String,
    /// Adapter or card name, when known.
    pub adapter: Option<String>,
    /// Why this device (for `auto`) or what was found.
    pub reason: String,
    /// Whether training hands each member's new best weights to the `on_epoch` hook
    /// ([`super::EpochMetrics::best_model`]) so the caller can write best-epoch checkpoints.
    /// Off unless [`Self::with_checkpoints`] (it copies weights to the host on improvement).
    pub checkpoints: bool,
    /// Whether `auto` picked it: a batched GBDT fit that cannot start on it, or cannot hold its
    /// batch, then trains on the CPU instead of failing ([`crate::trees::batch_options`]).
    pub auto: bool,
}

impl DeviceChoice {
    /// The CPU, without probing anything.
    pub fn cpu(reason: &str) -> Self {
        Self {
            device: Device::Cpu,
            name: "cpu".to_owned(),
            adapter: None,
            reason: reason.to_owned(),
            checkpoints: false,
            auto: false,
        }
    }

    /// The same device, with best-epoch weights handed to the `on_epoch` hook.
    #[must_use]
    pub fn with_checkpoints(mut self) -> Self {
        self.checkpoints = true;
        self
    }
}

/// What the machine offers (the probe results `auto` decides on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// CUDA devices, or why none can be used.
    pub cuda: std::result::Result<Vec<String>, String>,
    /// The default wgpu adapter's name and whether it is a CPU adapter, or why none.
    pub wgpu: std::result::Result<(String, bool), String>,
}

/// Picks the device for a request from probe results (pure: tested without hardware).
pub fn decide(request: DeviceRequest, probe: &Probe) -> Result<DeviceChoice> {
    match request {
        DeviceRequest::Cpu => Ok(DeviceChoice::cpu("requested")),
        DeviceRequest::Cuda(i) => match &probe.cuda {
            Ok(cards) if i < cards.len() => Ok(DeviceChoice {
                device: Device::Cuda(i),
                name: format!("cuda:{i}"),
                adapter: Some(cards[i].clone()),
                reason: "requested".to_owned(),
                checkpoints: false,
                auto: false,
            }),
            Ok(cards) => Err(TrainError::NoSuchCudaDevice {
                index: i,
                found: cards.len(),
            }),
            Err(why) => Err(TrainError::DeviceUnavailable {
                device: format!("cuda:{i}"),
                reason: why.clone(),
            }),
        },
        DeviceRequest::Wgpu => match &probe.wgpu {
            Ok((name, cpu)) => Ok(DeviceChoice {
                device: Device::Wgpu,
                name: "wgpu".to_owned(),
                adapter: Some(name.clone()),
                reason: if *cpu {
                    "requested (a CPU adapter: expect it to be slower than --device cpu)".to_owned()
                } else {
                    "requested".to_owned()
                },
                checkpoints: false,
                auto: false,
            }),
            Err(why) => Err(TrainError::DeviceUnavailable {
                device: "wgpu".to_owned(),
                reason: why.clone(),
            }),
        },
        DeviceRequest::Auto => {
            let cuda_why = match &probe.cuda {
                Ok(cards) if !cards.is_empty() => {
                    return Ok(DeviceChoice {
                        device: Device::Cuda(0),
                        name: "cuda:0".to_owned(),
                        adapter: Some(cards[0].clone()),
                        reason: format!("auto: {} CUDA device(s) found", cards.len()),
                        checkpoints: false,
                        auto: true,
                    });
                }
                Ok(_) => "no CUDA device".to_owned(),
                Err(why) => why.clone(),
            };
            let wgpu_why = match &probe.wgpu {
                Ok((name, false)) => {
                    return Ok(DeviceChoice {
                        device: Device::Wgpu,
                        name: "wgpu".to_owned(),
                        adapter: Some(name.clone()),
                        reason: format!("auto: no CUDA ({cuda_why}); wgpu GPU adapter {name}"),
                        checkpoints: false,
                        auto: true,
                    });
                }
                Ok((name, true)) => format!("wgpu adapter {name} is a CPU adapter"),
                Err(why) => why.clone(),
            };
            Ok(DeviceChoice {
                auto: true,
                ..DeviceChoice::cpu(&format!(
                    "auto: no CUDA ({cuda_why}); no wgpu GPU ({wgpu_why})"
                ))
            })
        }
    }
}

impl Default for Probe {
    /// Nothing probed: both backends "not built".
    fn default() -> Self {
        Self {
            cuda: Err("built without the `cuda` feature".to_owned()),
            wgpu: Err("built without the `wgpu` feature".to_owned()),
        }
    }
}

/// Probes the backends compiled in (only those a request can use: `cpu` probes nothing,
/// `cuda:N` only CUDA) and picks the device. Logs the choice and the reason.
pub fn select(request: DeviceRequest) -> Result<DeviceChoice> {
    let mut probe = Probe::default();
    if matches!(request, DeviceRequest::Auto | DeviceRequest::Cuda(_)) {
        probe.cuda = probe_cuda();
    }
    let cuda_found = probe.cuda.as_ref().is_ok_and(|c| !c.is_empty());
    if request == DeviceRequest::Wgpu || (request == DeviceRequest::Auto && !cuda_found) {
        probe.wgpu = probe_wgpu();
    }
    let choice = decide(request, &probe)?;
    tracing::info!(
        device = %choice.name,
        adapter = choice.adapter.as_deref().unwrap_or("-"),
        "device {}: {}",
        choice.name,
        choice.reason
    );
    Ok(choice)
}

#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
fn probe_cuda() -> std::result::Result<Vec<String>, String> {
    // SAFETY: `is_culib_present` only tries to dlopen libcuda; it touches no CUDA state.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("libcuda (the NVIDIA driver) not found".to_owned());
    }
    let count = cudarc::driver::CudaContext::device_count()
        .map_err(|e| format!("CUDA driver present but unusable: {e}"))?;
    (0..count.max(0) as usize)
        .map(|i| {
            cudarc::driver::CudaContext::new(i)
                .and_then(|c| c.name())
                .map_err(|e| format!("CUDA device {i}: {e}"))
        })
        .collect()
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda() -> std::result::Result<Vec<String>, String> {
    Err("this tabtune was built without the `cuda` feature".to_owned())
}

/// The default wgpu adapter, probed once per process: wgpu's setup registers the device's
/// runtime, and a second setup in the same process panics ("Service already initialized"),
/// which two `select` calls (a sweep, then its export; two tests) would otherwise hit.
#[cfg(feature = "wgpu")]
fn probe_wgpu() -> std::result::Result<(String, bool), String> {
    static PROBE: std::sync::OnceLock<std::result::Result<(String, bool), String>> =
        std::sync::OnceLock::new();
    PROBE.get_or_init(probe_wgpu_once).clone()
}

#[cfg(feature = "wgpu")]
fn probe_wgpu_once() -> std::result::Result<(String, bool), String> {
    use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, graphics::AutoGraphicsApi, init_setup};
    // wgpu panics when no adapter exists; turn that into an error.
    let setup = std::panic::catch_unwind(|| {
        init_setup::<AutoGraphicsApi>(&WgpuDevice::DefaultDevice, RuntimeOptions::default())
    })
    .map_err(|_| "no wgpu adapter (no Vulkan/Metal/DX12/GL driver found)".to_owned())?;
    let info = setup.adapter.get_info();
    let kind = format!("{:?}", info.device_type);
    let lower = info.name.to_lowercase();
    let cpu = kind == "Cpu"
        || ["llvmpipe", "lavapipe", "swiftshader", "softpipe"]
            .iter()
            .any(|s| lower.contains(s));
    Ok((format!("{} ({kind}, {:?})", info.name, info.backend), cpu))
}

#[cfg(not(feature = "wgpu"))]
fn probe_wgpu() -> std::result::Result<(String, bool), String> {
    Err("this tabtune was built without the `wgpu` feature".to_owned())
}

/// Work that runs on any autodiff backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs on backend `B` and its device.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the chosen device's backend.
pub fn dispatch<J: BackendJob>(choice: &DeviceChoice, job: J) -> Result<J::Output> {
    match choice.device {
        Device::Cpu => Ok(job.run::<Autodiff<Flex>>(FlexDevice)),
        #[cfg(feature = "wgpu")]
        Device::Wgpu => Ok(job
            .run::<Autodiff<burn::backend::Wgpu>>(burn::backend::wgpu::WgpuDevice::DefaultDevice)),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => {
            Ok(job
                .run::<Autodiff<burn::backend::Cuda>>(burn::backend::cuda::CudaDevice { index: i }))
        }
        #[allow(unreachable_patterns)]
        _ => Err(TrainError::DeviceNotBuilt {
            device: choice.name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        assert_eq!(
            DeviceRequest::parse("auto").expect("ok"),
            DeviceRequest::Auto
        );
        assert_eq!(
            DeviceRequest::parse("cuda:1").expect("ok"),
            DeviceRequest::Cuda(1)
        );
        assert_eq!(
            DeviceRequest::parse("cuda").expect("ok"),
            DeviceRequest::Cuda(0)
        );
        for bad in ["gpu", "cuda:x", "cuda:0,1"] {
            let m = DeviceRequest::parse(bad).expect_err(bad).to_string();
            assert!(m.contains(bad), "{m}");
        }
    }

    #[test]
    fn auto_prefers_cuda_then_a_real_wgpu_gpu_then_the_cpu() {
        let gpu = Probe {
            cuda: Ok(vec!["NVIDIA H100".into()]),
            wgpu: Ok(("NVIDIA H100 (DiscreteGpu, Vulkan)".into(), false)),
        };
        assert_eq!(
            decide(DeviceRequest::Auto, &gpu).expect("ok").name,
            "cuda:0"
        );
        let wgpu_gpu = Probe {
            cuda: Err("libcuda (the NVIDIA driver) not found".into()),
            ..gpu.clone()
        };
        let c = decide(DeviceRequest::Auto, &wgpu_gpu).expect("ok");
        assert_eq!(c.device, Device::Wgpu);
        assert!(c.reason.contains("libcuda"), "{}", c.reason);
        let lavapipe = Probe {
            cuda: Err("libcuda (the NVIDIA driver) not found".into()),
            wgpu: Ok(("llvmpipe (LLVM 15.0.6) (Cpu, Vulkan)".into(), true)),
        };
        let c = decide(DeviceRequest::Auto, &lavapipe).expect("ok");
        assert_eq!(c.device, Device::Cpu);
        assert!(c.reason.contains("CPU adapter"), "{}", c.reason);
        // Explicit wgpu takes even a CPU adapter.
        assert_eq!(
            decide(DeviceRequest::Wgpu, &lavapipe).expect("ok").device,
            Device::Wgpu
        );
        let none = Probe::default();
        assert_eq!(
            decide(DeviceRequest::Auto, &none).expect("ok").device,
            Device::Cpu
        );
    }

    #[test]
    fn missing_drivers_and_devices_are_clear_errors() {
        let no_driver = Probe {
            cuda: Err("libcuda (the NVIDIA driver) not found".into()),
            wgpu: Err("no wgpu adapter".into()),
        };
        let m = decide(DeviceRequest::Cuda(0), &no_driver)
            .expect_err("no driver")
            .to_string();
        assert!(m.contains("cuda:0") && m.contains("libcuda"), "{m}");
        let one = Probe {
            cuda: Ok(vec!["card".into()]),
            ..no_driver.clone()
        };
        let m = decide(DeviceRequest::Cuda(3), &one)
            .expect_err("index")
            .to_string();
        assert!(m.contains("1 CUDA device"), "{m}");
        let m = decide(DeviceRequest::Wgpu, &no_driver)
            .expect_err("no adapter")
            .to_string();
        assert!(m.contains("--device wgpu"), "{m}");
    }

    #[test]
    fn selecting_on_this_build_never_panics() {
        // Whatever this machine has, auto gives a device and cpu gives the CPU.
        let auto = select(DeviceRequest::Auto).expect("auto always finds the CPU");
        assert!(!auto.reason.is_empty());
        assert_eq!(select(DeviceRequest::Cpu).expect("cpu").device, Device::Cpu);
        #[cfg(not(feature = "cuda"))]
        {
            let m = select(DeviceRequest::Cuda(0))
                .expect_err("no cuda feature")
                .to_string();
            assert!(m.contains("`cuda` feature"), "{m}");
        }
    }
}
