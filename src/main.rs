//! The `argus` binary: logging, the CPU thread count and the allocator's settings, then the command line
//! ([`argus::cli`]) opens the studio or runs one headless command. Everything it calls lives in the library.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARGUS_LOG").unwrap_or_else(|_| "warn,argus=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = argus::cli::Cli::parse();
    set_threads(cli.global.threads);
    keep_freed_memory();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("argus: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets the CPU thread count of the local models (candle reads `RAYON_NUM_THREADS`): `--threads`, else an
/// existing `RAYON_NUM_THREADS`, else every core (`models::default_threads`).
fn set_threads(threads: Option<usize>) {
    if threads.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let n = threads.unwrap_or_else(argus::models::default_threads).max(1);
    // SAFETY: called at the start of `main`, before any other thread exists, so nothing reads the environment
    // concurrently. This and `keep_freed_memory` are the crate's only unsafe blocks.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Tells glibc's allocator to keep freed memory instead of handing it back to the kernel: candle allocates a fresh
/// buffer for every tensor operation, and page-faulting those in again took about a fifth of a guidance-model
/// training step (`argus bench train`: 22.7 s -> 17.7 s per step). Blocks of any size come from the heap, never
/// from a fresh mmap (whose pages the kernel zeroes again on every use): glibc caps the mmap threshold at 32 MiB,
/// and a training step's attention probabilities and GELU inputs are 67-89 MB each (`perf record`: 16% of the step
/// in page faults and page clearing before this).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called at the start of `main`, before other threads.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
