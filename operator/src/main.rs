//! `failover-operator`: see the crate documentation and `--help`.

fn main() -> std::process::ExitCode {
    failover_operator::run::main_with(std::env::args_os())
}
