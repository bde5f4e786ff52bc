fn main() -> std::process::ExitCode {
    sieve_runner::cli::main()
}
