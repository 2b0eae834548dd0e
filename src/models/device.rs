//! Which device the models run on: `auto`, `cpu`, `cuda[:N]` or `metal`, chosen once at start.
//!
//! `auto` picks CUDA when the binary was built with the `cuda` feature and a GPU answers, else Metal likewise, else
//! the CPU. Asking for a device the binary was not built for, or that does not answer, is a clear error, never a
//! crash.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{ModelError, Result};

/// The device asked for on the command line or in settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| format!("`{s}`: expected cuda:N with N a number")),
                None => Err(format!("`{s}`: expected auto, cpu, cuda, cuda:N or metal")),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl DeviceChoice {
    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => open_cuda(n),
            Self::Metal => open_metal(),
            Self::Auto => {
                if cfg!(feature = "cuda")
                    && let Ok(device) = open_cuda(0)
                {
                    return Ok(device);
                }
                if cfg!(feature = "metal")
                    && let Ok(device) = open_metal()
                {
                    return Ok(device);
                }
                Ok(Device::Cpu)
            }
        }
    }
}

/// A short human name of a device, for the status bar and logs.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "CUDA GPU".to_owned(),
        Device::Metal(_) => "Metal GPU".to_owned(),
    }
}

fn open_cuda(ordinal: usize) -> Result<Device> {
    if !cfg!(feature = "cuda") {
        return Err(ModelError::Device {
            device: format!("cuda:{ordinal}"),
            reason: "this build of Argus has no CUDA support (build with `--features cuda`)".into(),
        });
    }
    // cudarc may panic rather than return an error (no driver, no such GPU): turn either into a message, without
    // the panic's backtrace on the terminal.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    match opened {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(ModelError::Device { device: format!("cuda:{ordinal}"), reason: e.to_string() }),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ModelError::Device {
                device: format!("cuda:{ordinal}"),
                reason: format!("no such CUDA device, or the driver could not be loaded ({what})"),
            })
        }
    }
}

fn open_metal() -> Result<Device> {
    if !cfg!(feature = "metal") {
        return Err(ModelError::Device {
            device: "metal".into(),
            reason: "this build of Argus has no Metal support (build with `--features metal` on macOS)".into(),
        });
    }
    Device::new_metal(0).map_err(|e| ModelError::Device { device: "metal".into(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert_eq!("CPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:2".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(2)));
        assert_eq!("metal".parse::<DeviceChoice>(), Ok(DeviceChoice::Metal));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn auto_falls_back_to_cpu_without_gpu_support() {
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(DeviceChoice::Auto.open().unwrap().is_cpu());
            let err = DeviceChoice::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("no CUDA support"), "{err}");
        }
    }
}
