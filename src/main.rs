//! The `pulpo` binary: everything happens in the library's [`pulpo::cli`].

fn main() -> std::process::ExitCode {
    pulpo::cli::main()
}
