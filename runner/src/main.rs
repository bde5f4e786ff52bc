/// Large matrices on huge pages (see `HugePageAllocator`).
#[global_allocator]
static ALLOCATOR: sieve_runner::cli::heap::HugePageAllocator =
    sieve_runner::cli::heap::HugePageAllocator;

fn main() -> std::process::ExitCode {
    sieve_runner::cli::main()
}
