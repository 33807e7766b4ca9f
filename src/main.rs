fn main() {
    std::process::exit(optimize::cli::run(std::env::args_os()));
}
