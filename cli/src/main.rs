//! `kubectl-failover`: see the crate documentation and `--help`.

fn main() -> std::process::ExitCode {
    failover_cli::main_with(std::env::args_os())
}
