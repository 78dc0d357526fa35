//! Link options for the `mtlsniff` binary, nothing else (no code is
//! generated here).
//!
//! `-z pack-relative-relocs` (RELR, glibc 2.36, binutils 2.38): the binary
//! is position-independent, and at start the dynamic loader reads every
//! relocation and writes every pointer it fixes. With `.rela.dyn` those
//! pages become resident in every run, and they grow with everything
//! linked in (kube for `--k8s`: 0.8 -> 1.4 MB in the debug binary). Packed,
//! they are a few KB. Measured with the debug binary on a small file at
//! `--memory 32`: peak RSS 20.1 -> 17.6 MiB; tests/secrets.rs's 13 MB
//! DSB case 32.7-34.5 -> 31.3-31.7 MiB (budget 32). Only on Linux with
//! glibc, where the loader understands it.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
