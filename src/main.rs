//! The `obgate` binary: parses the command line and hands over to the library.

/// mimalloc instead of glibc malloc: the gateway allocates per request on every worker thread,
/// and glibc's per-thread arenas both cost time there (about a sixth of the gateway's profile)
/// and keep freed memory (argon2's 19 MiB working sets) resident. Measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    obgate::cli::main()
}
